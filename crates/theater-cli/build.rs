//! Embeds the repository's WIT package so `theater create` can write it
//! into a new actor crate wherever the binary runs.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let wit = manifest_dir.join("../../wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&wit)
        .unwrap_or_else(|e| panic!("reading {}: {e}", wit.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wit"))
        .collect();
    files.sort();
    let mut out = String::from(
        "/// The `ntwk:theater` WIT package: (file name, contents).\npub const WIT_FILES: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().expect("a file name").to_string_lossy();
        let absolute = path.canonicalize().expect("the WIT file exists");
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            absolute.display().to_string()
        )
        .expect("writing to a string");
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out_dir.join("wit_files.rs"), out).expect("writing wit_files.rs");
}
