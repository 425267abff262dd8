//! All file writes of the harness go through here, so every error names its path, and a
//! report is never left half-written (write to a temporary file, then rename).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically, creating parent directories.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically with what `fill` streams into it (see [`Staged`]).
pub(crate) fn write_with(path: &Path, fill: impl FnOnce(&mut Staged) -> std::io::Result<()>) -> Result<(), String> {
    let mut file = Staged::create(path)?;
    fill(&mut file).map_err(|e| file.error(&e))?;
    file.commit()
}

/// Copies `from` to `to` atomically (as [`write_file`] writes).
pub(crate) fn copy_file(from: &Path, to: &Path) -> Result<(), String> {
    let mut source = std::fs::File::open(from).map_err(|e| format!("failed to read {}: {e}", from.display()))?;
    write_with(to, |file| std::io::copy(&mut source, file).map(drop))
}

/// A file being written: a temporary file beside its path, buffered, renamed into place by
/// [`Staged::commit`] — so a report is streamed to disk as it is rendered, never held whole in
/// memory, and a failed write (a full disk) leaves no half-written file behind: dropped
/// without a commit, the temporary file is removed.
#[derive(Debug)]
pub(crate) struct Staged {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl Staged {
    /// Starts writing `path`, creating its parent directories.
    pub(crate) fn create(path: &Path) -> Result<Staged, String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("failed to create {}: {e}", parent.display()))?;
        }
        // The whole name plus a suffix: report.json and report.html, written at once, must not
        // share a temporary file (`with_extension` would give both `report.tmp<pid>`).
        let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
        name.push(format!(".tmp{}", std::process::id()));
        let tmp = path.with_file_name(name);
        let file = std::fs::File::create(&tmp).map_err(|e| format!("failed to write {}: {e}", tmp.display()))?;
        let out = Some(std::io::BufWriter::with_capacity(64 * 1024, file));
        Ok(Staged { path: path.to_path_buf(), tmp, out })
    }

    /// The message for a write that failed.
    pub(crate) fn error(&self, err: &std::io::Error) -> String {
        format!("failed to write {}: {err}", self.tmp.display())
    }

    /// Flushes and moves the file into place.
    pub(crate) fn commit(mut self) -> Result<(), String> {
        let Some(out) = self.out.take() else { return Err(format!("{} was already written", self.path.display())) };
        out.into_inner().map_err(|e| self.error(e.error()))?;
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| format!("failed to move {} to {}: {e}", self.tmp.display(), self.path.display()))
    }
}

impl std::io::Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.out {
            Some(out) => out.write(buf),
            None => Err(std::io::Error::other("already committed")),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match &mut self.out {
            Some(out) => out.write_all(buf),
            None => Err(std::io::Error::other("already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
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
    // Streamed like the reports: the durations of 10,000 tests were a 0.5 MB buffer.
    write_with(path, |file| serde_json::to_writer_pretty(file, value).map_err(std::io::Error::from))?;
    Ok(path.to_path_buf())
}

/// Appends `bytes` to `path` (for `$GITHUB_STEP_SUMMARY`, which other steps write too).
pub(crate) fn append_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
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

    /// A staged file is not there until committed, and a dropped one leaves nothing behind.
    #[test]
    fn a_staged_file_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("sub").join("report.json");
        let mut staged = Staged::create(&path).unwrap_or_else(|e| panic!("{e}"));
        staged.write_all(&vec![b'x'; 300_000]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!path.exists(), "visible before the commit");
        staged.commit().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&path).map(|b| b.len()).unwrap_or_default(), 300_000);
        let mut dropped = Staged::create(&path).unwrap_or_else(|e| panic!("{e}"));
        dropped.write_all(b"half").unwrap_or_else(|e| panic!("{e}"));
        drop(dropped);
        assert_eq!(std::fs::read(&path).map(|b| b.len()).unwrap_or_default(), 300_000, "the old file stays");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap_or(dir.path()))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

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
