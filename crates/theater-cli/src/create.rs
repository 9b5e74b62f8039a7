//! `theater create`: a new actor crate, ready to build and start.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::output::{Failure, print_json};

include!(concat!(env!("OUT_DIR"), "/wit_files.rs"));

/// Create a new actor crate from a template: Cargo.toml, src/lib.rs, a
/// manifest.toml, its WIT world (wit/world.wit) and the `ntwk:theater`
/// WIT package (wit/deps/theater). Build it with `theater build`, run it
/// with `theater run`, or both, on every change, with `theater dev`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater create greeter && theater build greeter && theater run greeter --request '{}'\n  theater create notes --template http\n  theater create greeter --format 2025"
)]
pub struct CreateArgs {
    /// The actor's name: lowercase letters, digits and dashes.
    name: String,
    /// Directory to create (default: ./<name>).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// What the actor starts as.
    #[arg(long, value_enum, default_value_t = Template::Message)]
    template: Template,
    /// The manifest's form: `current` (`component_path`, `[[handlers]]`
    /// with a `config` table) or `2025` (`component`, `[[handler]]` with
    /// settings inline). Theater reads both.
    #[arg(long, value_enum, default_value_t = Format::Current)]
    format: Format,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The templates `theater create` knows.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Template {
    /// Takes messages and requests, and keeps a count (world `app` with
    /// `actor` and `message-server-client`).
    Message,
    /// Serves notes over HTTP, keeps them in a content store and announces
    /// them over a WebSocket.
    Http,
    /// A supervisor and its child worker, two crates built together.
    Supervisor,
}

impl Template {
    /// The template's own files: (path in the new crate, contents).
    fn files(self) -> &'static [(&'static str, &'static str)] {
        macro_rules! files {
            ($dir:literal: $($path:literal),+) => {
                &[$(($path, include_str!(concat!("../templates/", $dir, "/", $path)))),+]
            };
        }
        match self {
            Self::Message => {
                files!("message": "Cargo.toml", "manifest.toml", "src/lib.rs", "wit/world.wit")
            }
            Self::Http => files!(
                "http": "Cargo.toml",
                "manifest.toml",
                "init.json",
                "src/lib.rs",
                "wit/world.wit"
            ),
            Self::Supervisor => files!(
                "supervisor": "Cargo.toml",
                "manifest.toml",
                "src/lib.rs",
                "wit/world.wit",
                "child/Cargo.toml",
                "child/manifest.toml",
                "child/src/lib.rs"
            ),
        }
    }

    /// What to try first once it is built.
    fn first_run(self) -> &'static str {
        match self {
            Self::Message => r#"--send '{"hello": "world"}' --request '{}'"#,
            Self::Http => "(then: curl -d 'a note' http://127.0.0.1:8080/notes)",
            Self::Supervisor => {
                r#"--request '{"ping": 1}' --send '"crash"' --request '{"status": null}'"#
            }
        }
    }
}

pub fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        return Err(Failure::input(format!(
            "{} already exists and is not empty; pick another --dir",
            dir.display()
        ))
        .into());
    }
    let files = scaffold(&args.name, args.template, args.format);
    for (path, contents) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        print_json(&json!({
            "name": args.name,
            "dir": dir.display().to_string(),
            "files": files.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        }));
    } else {
        outln!("created actor `{}` in {}", args.name, dir.display());
        outln!("next:");
        outln!("  theater build {}", dir.display());
        outln!(
            "  theater run {} {}",
            dir.display(),
            args.template.first_run()
        );
        outln!("or rebuild and restart it on every change:");
        outln!("  theater dev {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> Result<(), Failure> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(Failure::input(format!(
            "`{name}` is not a usable actor name: start with a lowercase letter and use only lowercase letters, digits and dashes (e.g. `my-actor`)"
        )));
    }
    Ok(())
}

/// The forms of manifest `create` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Current,
    #[value(name = "2025")]
    Y2025,
}

/// Every file of a new actor crate, by path relative to its directory.
fn scaffold(name: &str, template: Template, format: Format) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = template
        .files()
        .iter()
        .map(|(path, contents)| {
            let mut contents = contents.replace("{{name}}", name);
            if format == Format::Y2025 && path.ends_with("manifest.toml") {
                contents = in_2025_form(&contents);
            }
            ((*path).to_owned(), contents)
        })
        .collect();
    files.push((".gitignore".to_owned(), "/target\n*.wasm\n".to_owned()));
    for (file, contents) in WIT_FILES {
        files.push((format!("wit/deps/theater/{file}"), (*contents).to_owned()));
    }
    files
}

/// A template's manifest in the 2025 form: `component` for
/// `component_path`, and each `[[handlers]]` table's `config` as settings
/// of its own `[[handler]]` table. Templates keep each `config` inline on
/// one line, which is all this has to read.
fn in_2025_form(manifest: &str) -> String {
    let mut out = String::with_capacity(manifest.len());
    for line in manifest.lines() {
        if let Some(rest) = line.strip_prefix("component_path = ") {
            out.push_str(&format!("component = {rest}\n"));
        } else if line == "[[handlers]]" {
            out.push_str("[[handler]]\n");
        } else if let Some(inline) = line.strip_prefix("config = ") {
            let settings: toml::Table = toml::from_str(&format!("config = {inline}"))
                .ok()
                .and_then(|mut table: toml::Table| table.remove("config"))
                .and_then(|config| config.as_table().cloned())
                .expect("template configs are inline tables");
            out.push_str(&toml::to_string(&settings).expect("a table serializes"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("greeter").is_ok());
        assert!(check_name("my-actor2").is_ok());
        for bad in ["", "Greeter", "9lives", "a_b", "a-", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_template_carries_the_whole_wit_package_and_its_name() {
        for template in [Template::Message, Template::Http, Template::Supervisor] {
            let files = scaffold("greeter", template, Format::Current);
            let file = |name: &str| files.iter().find(|(p, _)| p == name).map(|(_, c)| c);
            assert!(file("wit/deps/theater/worlds.wit").is_some());
            assert!(
                file("wit/deps/theater/message-server.wit")
                    .unwrap()
                    .contains("handle-send")
            );
            assert!(file("wit/world.wit").unwrap().contains("world "));
            let manifest = file("manifest.toml").unwrap();
            assert!(
                manifest.contains("component_path = \"greeter.wasm\""),
                "{manifest}"
            );
            assert!(
                files.iter().all(|(_, c)| !c.contains("{{name}}")),
                "{template:?}"
            );
        }
    }

    #[test]
    fn both_manifest_forms_parse_to_the_same_actor() {
        for template in [Template::Message, Template::Http, Template::Supervisor] {
            for manifest in ["manifest.toml", "child/manifest.toml"] {
                // On disk: a manifest may name a file beside it (`init.json`).
                let parsed = |format| {
                    let dir = tempfile::tempdir().unwrap();
                    for (path, contents) in scaffold("greeter", template, format) {
                        let path = dir.path().join(path);
                        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                        std::fs::write(path, contents).unwrap();
                    }
                    let path = dir.path().join(manifest);
                    let text = std::fs::read_to_string(&path).ok()?;
                    let base = path.parent().unwrap();
                    let mut parsed = theater::Manifest::parse(&text, &path, base).unwrap();
                    // Compared across the two directories.
                    parsed.component_path = parsed
                        .component_path
                        .strip_prefix(dir.path())
                        .unwrap()
                        .into();
                    Some(parsed)
                };
                let (Some(current), Some(y2025)) = (parsed(Format::Current), parsed(Format::Y2025))
                else {
                    continue;
                };
                assert!(current.warnings.is_empty() && y2025.warnings.is_empty());
                assert_eq!(current.component_path, y2025.component_path);
                assert!(y2025.line_of("handler").is_some(), "{template:?}");
                let handlers = |m: &theater::Manifest| {
                    m.handlers
                        .iter()
                        .map(|h| (h.kind.clone(), h.config.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(handlers(&current), handlers(&y2025), "{template:?}");
            }
        }
    }
}
