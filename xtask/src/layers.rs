//! `cargo xtask layers`: checks that every import of the library points
//! down its layers.
//!
//! The layers are the list at the top of `crates/theater/src/lib.rs`,
//! repeated in [`LAYERS`]. A source file of one top-level module may name
//! (`crate::<module>`, or a group `crate::{a::X, b::Y}`) its own module and
//! modules of lower layers only. Test code (`#[cfg(test)] mod … { … }`
//! blocks, `tests/` directories, `tests.rs` files) is not checked: a test
//! may reach anything.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The library's top-level modules, bottom layer first. Keep in step with
/// the rule at the top of `lib.rs`.
pub const LAYERS: &[&[&str]] = &[
    &["id", "files", "packages", "admission", "tasks"],
    &["web", "cluster"],
    &["manifest"],
    &["chain"],
    &["storage"],
    &["wasm"],
    &["error"],
    &["telemetry", "metrics"],
    &["actor"],
    &["host"],
    &["replay"],
    &["runtime"],
    &["validate"],
    &["server", "dashboard"],
];

/// Imports that still point up or sideways, as (importing module, imported
/// module): work to remove, never to add to.
const ALLOWED: &[(&str, &str)] = &[];

/// One import that points the wrong way.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    /// Relative to the library's `src/`.
    pub file: String,
    pub line: usize,
    pub from: String,
    pub to: String,
}

/// The module layers with what the crate root re-exports, to check
/// sources against.
pub struct Rule {
    rank: BTreeMap<String, usize>,
    /// Names the crate root re-exports (`pub use runtime::TheaterRuntime`),
    /// each with the module it comes from.
    reexports: BTreeMap<String, String>,
}

impl Rule {
    /// The rule of [`LAYERS`], with the re-exports and module list of
    /// `lib_rs` (the crate root's text). Fails if `lib.rs` declares a
    /// module no layer holds.
    pub fn new(layers: &[&[&str]], lib_rs: &str) -> Result<Self> {
        let rank: BTreeMap<String, usize> = layers
            .iter()
            .enumerate()
            .flat_map(|(rank, modules)| modules.iter().map(move |m| (m.to_string(), rank)))
            .collect();
        let mut reexports = BTreeMap::new();
        for line in lib_rs.lines().map(str::trim) {
            if let Some(module) = declared_module(line)
                && !rank.contains_key(module)
            {
                bail!(
                    "lib.rs declares module `{module}`, which no layer holds: add it to LAYERS in xtask/src/layers.rs and to the rule in lib.rs"
                );
            }
            if let Some(rest) = line.strip_prefix("pub use ") {
                let (module, names) = rest.split_once("::").unwrap_or((rest, ""));
                for name in names.trim_end_matches(';').split([',', '{', '}', ' ']) {
                    if !name.is_empty() && rank.contains_key(module) {
                        reexports.insert(name.to_owned(), module.to_owned());
                    }
                }
            }
        }
        Ok(Self { rank, reexports })
    }

    /// The violations in one file, `path` relative to `src/`.
    pub fn check(&self, path: &str, text: &str) -> Vec<Violation> {
        let from = path
            .split('/')
            .next()
            .unwrap_or(path)
            .trim_end_matches(".rs");
        let Some(&own) = self.rank.get(from) else {
            return Vec::new();
        };
        let text = without_test_blocks(text);
        let mut found = Vec::new();
        for (offset, name) in crate_references(&text) {
            let to = self.reexports.get(&name).unwrap_or(&name);
            let Some(&rank) = self.rank.get(to.as_str()) else {
                continue;
            };
            if to != from && rank >= own {
                found.push(Violation {
                    file: path.to_owned(),
                    line: text[..offset].matches('\n').count() + 1,
                    from: from.to_owned(),
                    to: to.clone(),
                });
            }
        }
        found
    }

    fn rank(&self, module: &str) -> usize {
        self.rank[module]
    }
}

/// `mod x;` or `pub mod x;` at the crate root: the module `x`.
fn declared_module(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("pub mod ")
        .or_else(|| line.strip_prefix("mod "))?;
    rest.strip_suffix(';')
}

/// `text` with each `#[cfg(test)]` module block blanked out (newlines kept,
/// so that line numbers still hold).
fn without_test_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let next_opens_module = lines.peek().is_some_and(|next| {
            let next = next.trim();
            (next.starts_with("mod ") || next.starts_with("pub mod ")) && next.ends_with('{')
        });
        if line.trim() != "#[cfg(test)]" || !next_opens_module {
            out.push_str(line);
            continue;
        }
        out.push('\n');
        let mut depth = 0usize;
        for line in lines.by_ref() {
            depth += line.matches('{').count();
            depth = depth.saturating_sub(line.matches('}').count());
            out.push('\n');
            if depth == 0 {
                break;
            }
        }
    }
    out
}

/// Every top-level name reached through `crate::`, with its byte offset:
/// `crate::a::X` gives `a`; `crate::{a::X, b::{Y, Z}}` gives `a` and `b`.
fn crate_references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (start, _) in text.match_indices("crate::") {
        let after = start + "crate::".len();
        // `super::crate::` cannot occur; `$crate::` is a macro's own path.
        if text[..start].ends_with('$') || text[..start].ends_with(|c: char| ident_char(c)) {
            continue;
        }
        let rest = &text[after..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if item_start && ident_char(c) => {
                        let name = ident_at(&group[i..]);
                        found.push((after + 1 + i, name.to_owned()));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                found.push((start, name.to_owned()));
            }
        }
    }
    found
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident_at(text: &str) -> &str {
    let end = text.find(|c: char| !ident_char(c)).unwrap_or(text.len());
    &text[..end]
}

/// Every non-test source file under `src`, relative to it.
fn sources(src: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default();
            if path.is_dir() {
                if name != "tests" {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") && name != "tests.rs" {
                files.push(path.strip_prefix(src)?.to_owned());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Checks the library under `src`; fails listing each import that points
/// up or sideways, unless [`ALLOWED`] still lists it, and each entry of
/// [`ALLOWED`] no longer needed.
pub fn check(src: &Path) -> Result<()> {
    let lib_rs = fs::read_to_string(src.join("lib.rs")).context("reading lib.rs")?;
    let rule = Rule::new(LAYERS, &lib_rs)?;
    let mut problems = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    for file in sources(src)? {
        let path = file.to_string_lossy().replace('\\', "/");
        if path == "lib.rs" {
            continue;
        }
        let text = fs::read_to_string(src.join(&file))
            .with_context(|| format!("reading {}", file.display()))?;
        for v in rule.check(&path, &text) {
            let allowed = ALLOWED
                .iter()
                .position(|&(from, to)| from == v.from && to == v.to);
            match allowed {
                Some(i) => used[i] = true,
                None => problems.push(format!(
                    "src/{}:{}: `{}` (layer {}) imports `{}` (layer {}), {}",
                    v.file,
                    v.line,
                    v.from,
                    rule.rank(&v.from),
                    v.to,
                    rule.rank(&v.to),
                    match rule.rank(&v.from) == rule.rank(&v.to) {
                        true => "a module of its own layer",
                        false => "a layer above it",
                    }
                )),
            }
        }
    }
    for (&(from, to), used) in ALLOWED.iter().zip(used) {
        if !used {
            problems.push(format!(
                "`{from}` no longer imports `{to}`: remove the pair from ALLOWED in xtask/src/layers.rs"
            ));
        }
    }
    if problems.is_empty() {
        println!("layers: every import points down");
        return Ok(());
    }
    bail!(
        "{} import(s) break the layer rule at the top of lib.rs; move the code to the right layer, or pass what it needs down from above:\n{}",
        problems.len(),
        problems.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "mod admission;\npub mod actor;\npub mod runtime;\npub mod id;\n\
                       pub use runtime::{RuntimeConfig, TheaterRuntime};\n";
    const LAYERS: &[&[&str]] = &[&["id", "admission"], &["actor"], &["runtime"]];

    fn rule() -> Rule {
        Rule::new(LAYERS, LIB).unwrap()
    }

    #[test]
    fn an_import_from_above_is_named_with_its_line() {
        let text = "//! An actor.\n\nuse crate::{\n    id::ActorId,\n    runtime::WeakRuntime,\n};\nfn f() -> crate::TheaterRuntime { todo!() }\n";
        let found = rule().check("actor/store.rs", text);
        let at: Vec<(usize, &str)> = found.iter().map(|v| (v.line, v.to.as_str())).collect();
        assert_eq!(at, [(5, "runtime"), (7, "runtime")]);
        assert_eq!(found[0].from, "actor");
    }

    #[test]
    fn a_sideways_import_is_refused_and_its_own_module_is_not() {
        let text = "use crate::admission::Seat;\nuse crate::id::ActorId;\n";
        let found = rule().check("id.rs", text);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].from.as_str(), found[0].to.as_str()),
            ("id", "admission")
        );
    }

    #[test]
    fn downward_imports_and_test_blocks_pass() {
        let text = "use crate::id::ActorId;\nuse crate::actor::{self, ActorStore};\n\n\
                    #[cfg(test)]\nmod tests {\n    use crate::runtime::X;\n    fn f() { if true { } }\n}\n";
        assert_eq!(rule().check("runtime/mod.rs", text), []);
        assert_eq!(rule().check("actor/x.rs", &text.replace("actor", "id")), []);
    }

    #[test]
    fn a_module_outside_the_layers_is_an_error() {
        let err = Rule::new(LAYERS, "pub mod stray;\n").err().unwrap();
        assert!(err.to_string().contains("`stray`"), "{err}");
    }
}
