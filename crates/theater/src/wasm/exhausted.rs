//! Which limit of the process an instantiation ran into. Each instance
//! takes memory mappings and address space; when the kernel refuses more,
//! wasmtime reports only `Cannot allocate memory`, which does not say that
//! the cause is a process limit nor which one.

use std::path::Path;

/// Where Linux keeps the most memory mappings a process may have.
const MAX_MAP_COUNT: &str = "/proc/sys/vm/max_map_count";
/// The mappings of this process, one a line.
const MAPS: &str = "/proc/self/maps";
/// Mappings an instantiation may need: when fewer than this are left, a
/// failed instantiation is put down to the mapping limit.
const MAPPINGS_PER_INSTANCE: usize = 64;

/// The error of a failed instantiation, led by the process limit it hit
/// when one is exhausted.
pub fn instantiation_failure(error: &wasmtime::Error) -> String {
    let detail = format!("{error:#}");
    match out_of_mappings(Path::new(MAX_MAP_COUNT), Path::new(MAPS)) {
        Some(limit) => format!("{limit} ({detail})"),
        None => detail,
    }
}

/// Says so when the mappings in use are within [`MAPPINGS_PER_INSTANCE`]
/// of the kernel's limit.
fn out_of_mappings(max_map_count: &Path, maps: &Path) -> Option<String> {
    let max: usize = std::fs::read_to_string(max_map_count)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let used = std::fs::read_to_string(maps).ok()?.lines().count();
    (used + MAPPINGS_PER_INSTANCE >= max).then(|| {
        format!(
            "the process is out of memory mappings (vm.max_map_count = {max}, {used} in use): \
             run fewer actors in this process, or raise the limit, e.g. \
             `sysctl -w vm.max_map_count={}`",
            max.saturating_mul(4)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_limit_is_named_only_when_it_is_reached() {
        let dir = tempfile::tempdir().unwrap();
        let max = dir.path().join("max_map_count");
        let maps = dir.path().join("maps");
        std::fs::write(&maps, "m\n".repeat(100)).unwrap();
        std::fs::write(&max, "65530\n").unwrap();
        assert_eq!(out_of_mappings(&max, &maps), None);
        std::fs::write(&max, "150\n").unwrap();
        let message = out_of_mappings(&max, &maps).unwrap();
        assert!(
            message.starts_with(
                "the process is out of memory mappings (vm.max_map_count = 150, 100 in use)"
            ),
            "{message}"
        );
        assert!(message.contains("vm.max_map_count=600"), "{message}");
    }
}
