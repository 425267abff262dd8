//! All file writes of the harness go through here, so every error names its path, and a
//! report is never left half-written (write to a temporary file, then rename).

use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically, creating parent directories.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("failed to create {}: {e}", parent.display()))?;
    }
    // The whole name plus a suffix: report.json and report.html, written at once, must not
    // share a temporary file (`with_extension` would give both `report.tmp<pid>`).
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(name);
    // A failed write (a full disk) leaves no half-written file behind.
    let written =
        std::fs::write(&tmp, bytes).map_err(|e| format!("failed to write {}: {e}", tmp.display())).and_then(|()| {
            std::fs::rename(&tmp, path)
                .map_err(|e| format!("failed to move {} to {}: {e}", tmp.display(), path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Where reports and caches go: `RELIABILITY_OUTPUT_DIR`, else `reliability/` in the cargo
/// target directory (`CARGO_TARGET_DIR`, or the `target` that holds this executable), else
/// `target/reliability` under the current directory.
pub(crate) fn output_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env("RELIABILITY_OUTPUT_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = env("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("reliability");
    }
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().find(|dir| dir.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf));
    from_exe.unwrap_or_else(|| PathBuf::from("target")).join("reliability")
}

/// Reads a JSON cache; a missing file is the default, an unreadable one too (with a warning:
/// a cache must never stop a run).
pub(crate) fn load_cache<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            eprintln!("warning: ignoring unreadable {}: {err}", path.display());
            T::default()
        }),
        Err(_) => T::default(),
    }
}

/// Writes a JSON cache.
pub(crate) fn save_cache<T: serde::Serialize>(path: &Path, value: &T) -> Result<PathBuf, String> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| format!("failed to encode {}: {e}", path.display()))?;
    write_file(path, &json)?;
    Ok(path.to_path_buf())
}

/// Appends `bytes` to `path` (for `$GITHUB_STEP_SUMMARY`, which other steps write too).
pub(crate) fn append_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("failed to open {}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("failed to append to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files that differ only in their extension, written at once from two threads, each end
    /// up whole (they once shared a temporary file).
    #[test]
    fn same_stem_files_written_at_once_stay_whole() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (dir.path().join("report.json"), dir.path().join("report.html"));
        for round in 0..200u32 {
            let (one, two) = (vec![b'j'; 4096 + round as usize], vec![b'h'; 8192 + round as usize]);
            std::thread::scope(|s| {
                s.spawn(|| write_file(&a, &one));
                s.spawn(|| write_file(&b, &two));
            });
            assert_eq!(std::fs::read(&a).unwrap_or_default(), one, "round {round}");
            assert_eq!(std::fs::read(&b).unwrap_or_default(), two, "round {round}");
        }
    }
}
