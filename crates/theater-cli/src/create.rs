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
    after_help = "Examples:\n  theater create greeter && theater build greeter && theater run greeter --request '{}'\n  theater create notes --template http"
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
    let files = scaffold(&args.name, args.template);
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

/// Every file of a new actor crate, by path relative to its directory.
fn scaffold(name: &str, template: Template) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = template
        .files()
        .iter()
        .map(|(path, contents)| ((*path).to_owned(), contents.replace("{{name}}", name)))
        .collect();
    files.push((".gitignore".to_owned(), "/target\n*.wasm\n".to_owned()));
    for (file, contents) in WIT_FILES {
        files.push((format!("wit/deps/theater/{file}"), (*contents).to_owned()));
    }
    files
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
            let files = scaffold("greeter", template);
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
}
