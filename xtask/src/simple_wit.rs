//! The `theater:simple` WIT package, generated from `wit/`: the same
//! interfaces under the package name actors of mid/late 2025 were built
//! against, with `shutdown` in `runtime` as that package has it. The
//! example actors written for that era build against the generated copy,
//! so there is no second copy of the interfaces to keep in step.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use wit_parser::Resolve;

const CANONICAL_PACKAGE: &str = "package ntwk:theater;";
const SIMPLE_PACKAGE: &str = "package theater:simple;";
const RUNTIME: &str = "interface runtime {";
/// `runtime-control.shutdown`, moved into `runtime` as `theater:simple` has it.
const SHUTDOWN: &str = "\n    /// Asks the runtime to stop this actor once the current call returns.\n    shutdown: func(data: option<list<u8>>) -> result<_, string>;\n";

/// Writes the `theater:simple` package made from the `.wit` files of `wit`
/// into `out` (emptied first), and checks it: every interface and function
/// of `ntwk:theater` is there, and `runtime.shutdown` too.
pub fn generate(wit: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("emptying {}", out.display()))?;
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut moved_shutdown = false;
    for entry in fs::read_dir(wit).with_context(|| format!("reading {}", wit.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "wit") {
            continue;
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        if !text.contains(CANONICAL_PACKAGE) {
            bail!("{} does not declare `{CANONICAL_PACKAGE}`", path.display());
        }
        let mut text = text.replace(CANONICAL_PACKAGE, SIMPLE_PACKAGE);
        if let Some(start) = text.find(RUNTIME) {
            let end = start
                + text[start..]
                    .find("\n}")
                    .with_context(|| format!("`{RUNTIME}` is not closed in {}", path.display()))?;
            text.insert_str(end, SHUTDOWN);
            moved_shutdown = true;
        }
        let name = path.file_name().expect("a file name");
        fs::write(out.join(name), text)?;
    }
    if !moved_shutdown {
        bail!("no `{RUNTIME}` in {}", wit.display());
    }
    check(wit, out)
}

/// The generated package is `theater:simple`, with every
/// `interface.function` of `ntwk:theater`, `runtime.shutdown`, and nothing
/// else.
fn check(wit: &Path, out: &Path) -> Result<()> {
    let (_, mut expected) = functions(wit)?;
    expected.insert("runtime.shutdown".to_owned());
    let (name, generated) = functions(out)?;
    if name != "theater:simple" {
        bail!("the package generated in {} is `{name}`", out.display());
    }
    if generated != expected {
        bail!(
            "the generated theater:simple package differs from ntwk:theater: missing {:?}, extra {:?}",
            expected.difference(&generated).collect::<Vec<_>>(),
            generated.difference(&expected).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// The name of the package in `dir`, and `interface.function` for each of
/// its functions.
fn functions(dir: &Path) -> Result<(String, BTreeSet<String>)> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(dir)
        .with_context(|| format!("parsing the WIT package in {}", dir.display()))?;
    let package = &resolve.packages[package];
    let mut found = BTreeSet::new();
    for (name, id) in &package.interfaces {
        for function in resolve.interfaces[*id].functions.keys() {
            found.insert(format!("{name}.{function}"));
        }
    }
    Ok((package.name.to_string(), found))
}
