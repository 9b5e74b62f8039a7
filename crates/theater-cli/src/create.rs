//! `theater create`: a new actor crate, ready to build and start.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

use crate::remote::print_json;

include!(concat!(env!("OUT_DIR"), "/wit_files.rs"));

/// Create a new actor crate: Cargo.toml, the `ntwk:theater` WIT package,
/// src/lib.rs for world `actor-world` and a manifest.toml. Build it with
/// `theater build` (or `cargo build --release --target wasm32-wasip2`).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater create greeter && theater build greeter && theater start greeter/manifest.toml\n  theater create greeter --format 2025"
)]
pub struct CreateArgs {
    /// The actor's name: lowercase letters, digits and dashes.
    name: String,
    /// Directory to create (default: ./<name>).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The manifest's form: `current` (`component_path`, `[[handlers]]`
    /// with a `config` table) or `2025` (`component`, `[[handler]]` with
    /// settings inline). Theater reads both.
    #[arg(long, value_enum, default_value_t = Format::Current)]
    format: Format,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} already exists and is not empty; pick another --dir",
            dir.display()
        );
    }
    let files = scaffold(&args.name, args.format);
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
        println!("created actor `{}` in {}", args.name, dir.display());
        println!("next:");
        println!("  theater build {}", dir.display());
        println!("  theater start {}", dir.join("manifest.toml").display());
    }
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        bail!(
            "`{name}` is not a usable actor name: start with a lowercase letter and use only lowercase letters, digits and dashes (e.g. `my-actor`)"
        );
    }
    Ok(())
}

/// The crate's library file name: dashes become underscores.
pub fn artifact_name(name: &str) -> String {
    format!("{}.wasm", name.replace('-', "_"))
}

/// The forms of manifest `create` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Current,
    #[value(name = "2025")]
    Y2025,
}

/// Every file of a new actor crate, by path relative to its directory.
fn scaffold(name: &str, format: Format) -> Vec<(String, String)> {
    let mut files = vec![
        ("Cargo.toml".to_owned(), cargo_toml(name)),
        ("manifest.toml".to_owned(), manifest_toml(name, format)),
        ("src/lib.rs".to_owned(), LIB_RS.to_owned()),
        (".gitignore".to_owned(), "/target\n".to_owned()),
    ];
    for (file, contents) in WIT_FILES {
        files.push((format!("wit/{file}"), (*contents).to_owned()));
    }
    files
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = "0.61"
serde_json = "1"

# Small components; a panic becomes a trap.
[profile.release]
opt-level = "s"
lto = true
panic = "abort"
codegen-units = 1

# A crate of its own, even inside another workspace.
[workspace]
"#
    )
}

fn manifest_toml(name: &str, format: Format) -> String {
    let artifact = artifact_name(name);
    let head = format!(
        r#"name = "{name}"
version = "0.1.0"
description = "Counts the messages it gets; requests answer the count"
# Where `cargo build --release --target wasm32-wasip2` puts the component
# (`theater build` copies it here when the target directory is elsewhere)."#
    );
    match format {
        Format::Current => format!(
            r#"{head}
component_path = "target/wasm32-wasip2/release/{artifact}"

[[handlers]]
type = "runtime"
config = {{}}
"#
        ),
        Format::Y2025 => format!(
            r#"{head}
component = "target/wasm32-wasip2/release/{artifact}"

# One table per capability, its settings beside `type`, e.g.
# [[handler]]
# type = "timing"
# max_sleep_duration = 60000
[[handler]]
type = "runtime"
"#
        ),
    }
}

const LIB_RS: &str = r#"//! A Theater actor. Its state is JSON: `{"messages": N, "last": <message>}`.
//! Every message sent to it is counted and kept; every request is answered
//! with the state.

wit_bindgen::generate!({
    path: "wit",
    world: "actor-world",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::runtime::log;
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

fn load(state: &State) -> Result<Value, String> {
    match state {
        None => Ok(json!({ "messages": 0, "last": null })),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| format!("state is not JSON: {e}")),
    }
}

fn save(value: &Value) -> State {
    Some(serde_json::to_vec(value).expect("JSON values serialize"))
}

/// Counts a message and keeps it; a message that is not JSON is refused
/// and leaves the state as it was.
fn receive(state: State, message: &[u8]) -> Result<(State,), String> {
    let message: Value =
        serde_json::from_slice(message).map_err(|e| format!("message is not JSON: {e}"))?;
    let mut value = load(&state)?;
    let count = value["messages"].as_u64().unwrap_or(0) + 1;
    value["messages"] = count.into();
    value["last"] = message;
    Ok((save(&value),))
}

struct Component;

impl Actor for Component {
    fn init(state: State, params: (String,)) -> Result<(State,), String> {
        log(&format!("starting as {}", params.0));
        let value = load(&state)?;
        Ok((save(&value),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        receive(state, &params.0)
    }

    fn handle_request(state: State, _params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let reply = serde_json::to_vec(&load(&state)?).expect("JSON values serialize");
        Ok((state, (reply,)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let accept = ChannelAccept {
            accepted: true,
            message: None,
        };
        Ok((state, accept))
    }

    fn handle_channel_message(state: State, params: (String, Vec<u8>)) -> Result<(State,), String> {
        receive(state, &params.1)
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
"#;

/// Where a crate made by `create` keeps its manifest.
pub fn manifest_of(dir: &Path) -> PathBuf {
    dir.join("manifest.toml")
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
    fn the_scaffold_carries_the_whole_wit_package() {
        let files = scaffold("greeter", Format::Current);
        assert!(files.iter().any(|(p, _)| p == "wit/worlds.wit"));
        assert!(
            files
                .iter()
                .any(|(p, c)| p == "wit/message-server.wit" && c.contains("handle-send"))
        );
        let manifest = &files.iter().find(|(p, _)| p == "manifest.toml").unwrap().1;
        assert!(manifest.contains("release/greeter.wasm"), "{manifest}");
    }

    #[test]
    fn both_manifest_forms_parse_to_the_same_actor() {
        let parsed = |format| {
            let files = scaffold("greeter", format);
            let text = &files.iter().find(|(p, _)| p == "manifest.toml").unwrap().1;
            let dir = Path::new("/greeter");
            theater::Manifest::parse(text, &dir.join("manifest.toml"), dir).unwrap()
        };
        let (current, y2025) = (parsed(Format::Current), parsed(Format::Y2025));
        assert!(current.warnings.is_empty() && y2025.warnings.is_empty());
        assert_eq!(current.component_path, y2025.component_path);
        assert_eq!(y2025.handlers.len(), 1);
        assert_eq!(y2025.handlers[0].kind, "runtime");
        assert!(y2025.line_of("handler").is_some());
    }
}
