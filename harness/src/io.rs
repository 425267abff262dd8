//! All file writes of the harness go through here, so every error names its path, and a
//! report is never left half-written (write to a temporary file, then rename).

use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically, creating parent directories.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("failed to create {}: {e}", parent.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
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
