//! A manifest named on the command line: its file, or a directory holding
//! a `manifest.toml` (as `theater create` makes).

use std::path::{Path, PathBuf};

use crate::output::Failure;

/// The file name of a manifest in an actor's directory.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// `path` itself, or `path/manifest.toml` when `path` is a directory.
pub fn manifest_file(path: &Path) -> Result<PathBuf, Failure> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    let file = path.join(MANIFEST_FILE);
    if file.is_file() {
        Ok(file)
    } else {
        Err(Failure::new(
            "bad_manifest",
            format!(
                "{} is a directory without a {MANIFEST_FILE}; give the manifest's path, or create an actor there with `theater create`",
                path.display()
            ),
        ))
    }
}
