//! Where the rig finds its files when no flag names them: the bench folder, the working
//! directory or the nearest parent of it that holds `rig-config/` and `scenarios/` (as git
//! finds its repository). Never the build tree: an installed `rig` works from any bench folder.

use std::path::{Path, PathBuf};

/// Environment variable naming the default rig config (else `rig-config/sim.toml`).
pub const RIG_ENV: &str = "GAUGE_RIG";
pub const RIG_CONFIG_DIR: &str = "rig-config";
pub const SCENARIOS_DIR: &str = "scenarios";
pub const DEFAULT_RIG_CONFIG: &str = "sim.toml";
pub const DBC_FILE: &str = "oil_temp.dbc";

/// The bench folder around `start`: `start` or its nearest parent holding both
/// `rig-config/` and `scenarios/`.
pub fn find_from(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(RIG_CONFIG_DIR).is_dir() && d.join(SCENARIOS_DIR).is_dir())
        .map(Path::to_path_buf)
}

/// The bench folder around the working directory. `None` when there is none: the defaults
/// below are then relative to the working directory, so a load error names the path it tried.
pub fn find() -> Option<PathBuf> {
    std::env::current_dir().ok().and_then(|d| find_from(&d))
}

fn in_bench(relative: &Path) -> PathBuf {
    match find() {
        Some(root) => root.join(relative),
        None => relative.to_path_buf(),
    }
}

/// The rig config used when none is given: `$GAUGE_RIG`, else the simulated bench's
/// `rig-config/sim.toml`.
pub fn default_rig_config() -> PathBuf {
    match std::env::var_os(RIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => in_bench(&Path::new(RIG_CONFIG_DIR).join(DEFAULT_RIG_CONFIG)),
    }
}

/// The scenarios folder used when none is given.
pub fn default_scenarios() -> PathBuf {
    in_bench(Path::new(SCENARIOS_DIR))
}

/// The DBC that describes the oil-temperature broadcast, used when none is given.
pub fn default_dbc() -> PathBuf {
    in_bench(&Path::new(SCENARIOS_DIR).join(DBC_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bench_folder_from_a_subfolder_and_not_without_one() {
        let root = std::env::temp_dir().join(format!("bench-folder-{}", std::process::id()));
        let deep = root.join("scenarios/sub");
        std::fs::create_dir_all(&deep).expect("temp dir");
        assert_eq!(find_from(&deep), None, "no rig-config/ yet");
        std::fs::create_dir_all(root.join(RIG_CONFIG_DIR)).expect("temp dir");
        assert_eq!(find_from(&deep).as_deref(), Some(root.as_path()));
        let _ = std::fs::remove_dir_all(&root);
    }
}
