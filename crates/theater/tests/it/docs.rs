//! The user docs say what the code does: the README's embedding example is
//! a compiled example, and docs/actors.md lists the worlds that exist.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path)).unwrap()
}

/// The README's embedding example is `examples/embed.rs`, which cargo
/// builds with the tests, and it leaves nothing in a durable home.
#[test]
fn the_readme_embedding_example_compiles_and_keeps_nothing() {
    let readme = read("README.md");
    let example = read("crates/theater/examples/embed.rs");
    let code = example
        .split_once("\n\n")
        .map(|(_, code)| code)
        .expect("a header, then the code");
    assert!(
        readme.contains(code),
        "README.md and examples/embed.rs differ"
    );
    assert!(code.contains("RuntimeConfig::ephemeral()"), "{code}");
    assert!(!code.contains("RuntimeConfig::embedded()"), "{code}");
}

/// Every world of `wit/worlds.wit` is in the table of docs/actors.md, and
/// the walkthrough starts from `theater create`.
#[test]
fn the_worlds_table_and_walkthrough_match_the_code() {
    let worlds = read("wit/worlds.wit");
    let actors = read("docs/actors.md");
    let names: Vec<&str> = worlds
        .lines()
        .filter_map(|line| line.trim().strip_prefix("world "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(names.len() > 5, "{names:?}");
    for name in names {
        assert!(
            actors.contains(&format!("| `{name}` |")),
            "docs/actors.md does not list world `{name}`"
        );
    }
    assert!(
        !actors.contains("not provided yet"),
        "a world said not to run"
    );
    assert!(actors.contains("theater create greeter"));
    assert!(!actors.contains("cp -r"), "wit/ copied by hand");
}
