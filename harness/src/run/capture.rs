//! A child's output, read by the parent from a pipe and kept within fixed bounds however much
//! the test prints: [`OUTPUT_KEPT`] from each end in memory (for the reports), and at most
//! [`OUTPUT_ON_DISK`] plus the tail on disk (for the reader who wants more). A test that prints
//! a gigabyte fills neither the parent's memory nor the disk of a CI machine.
//!
//! Captured mode reads one pipe that is both the child's stdout and stderr, so their
//! interleaving is kept. `--nocapture` reads each stream from its own pipe and echoes it to
//! the parent's matching stream as it arrives; nothing goes to disk then.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How much of a child's output is kept in memory and in the reports: this much from the start
/// and this much from the end.
pub(crate) const OUTPUT_KEPT: usize = 64 * 1024;

/// How much of a child's output is written to disk from its start; the last [`OUTPUT_KEPT`]
/// bytes follow it when the output was longer.
pub(crate) const OUTPUT_ON_DISK: u64 = 8 << 20;

/// How long the parent waits for the pipes to close once the child's process group is dead.
/// Only a process that escaped the group (setsid) still holds them then; its later output is
/// not kept.
const DRAIN_BOUND: Duration = Duration::from_secs(10);

/// What the parent kept of a child's output.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// Whole when it is at most 2 × [`OUTPUT_KEPT`]; else the head and tail around a marker.
    pub(crate) text: String,
    /// Every byte the child wrote, counted as it arrived.
    pub(crate) bytes: u64,
}

#[derive(Default)]
struct State {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    bytes: u64,
    file: Option<File>,
    on_disk: u64,
    /// Set when the parent has taken the result: a late reader stops.
    closed: bool,
}

impl State {
    fn take(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        let to_head = OUTPUT_KEPT.saturating_sub(self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..to_head]);
        // The tail holds what came after the head, at most OUTPUT_KEPT of it.
        let rest = &chunk[to_head..];
        let rest = &rest[rest.len().saturating_sub(OUTPUT_KEPT)..];
        let excess = (self.tail.len() + rest.len()).saturating_sub(OUTPUT_KEPT);
        self.tail.drain(..excess);
        self.tail.extend(rest);
        if let Some(file) = &mut self.file {
            let room = usize::try_from(OUTPUT_ON_DISK.saturating_sub(self.on_disk)).unwrap_or(usize::MAX);
            let part = &chunk[..room.min(chunk.len())];
            if !part.is_empty() && file.write_all(part).is_ok() {
                self.on_disk += part.len() as u64;
            } else if !part.is_empty() {
                // A full disk: keep counting and keep the ends in memory; stop writing.
                self.file = None;
            }
        }
    }
}

/// One stream of a child's output, and where to echo it as it arrives (if anywhere).
pub(crate) type Stream = (Box<dyn Read + Send>, Option<Box<dyn Write + Send>>);

/// The reader threads of one child's output.
pub(crate) struct Capture {
    state: Arc<Mutex<State>>,
    done: Receiver<()>,
    readers: usize,
    file: Option<PathBuf>,
}

impl Capture {
    /// Starts reading `streams`, each echoed to its sink if it has one; the bounded copy
    /// goes to `file` if given (created now; an error names it).
    pub(crate) fn start(streams: Vec<Stream>, file: Option<&Path>) -> Result<Capture, String> {
        let mut state = State::default();
        if let Some(path) = file {
            state.file = Some(File::create(path).map_err(|e| format!("failed to create {}: {e}", path.display()))?);
        }
        let state = Arc::new(Mutex::new(state));
        let (tx, done) = std::sync::mpsc::channel();
        let readers = streams.len();
        for (from, echo) in streams {
            let (state, tx) = (Arc::clone(&state), tx.clone());
            std::thread::spawn(move || read_into(from, echo, &state, &tx));
        }
        Ok(Capture { state, done, readers, file: file.map(Path::to_path_buf) })
    }

    /// Waits (bounded) for the streams to close and returns what was kept. Output longer than
    /// the reports hold is kept on disk as `<keep_dir>/<slug of test>.output`.
    pub(crate) fn finish(self, keep_dir: &Path, test: &str) -> Captured {
        let deadline = std::time::Instant::now() + DRAIN_BOUND;
        for _ in 0..self.readers {
            if self.done.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).is_err() {
                break;
            }
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        let head_and_tail = (state.head.len() + state.tail.len()) as u64;
        let (head, tail) = (state.head.clone(), Vec::from(std::mem::take(&mut state.tail)));
        let whole = state.bytes == head_and_tail;
        let mut file = state.file.take();
        let (bytes, on_disk) = (state.bytes, state.on_disk);
        drop(state);
        let Some(path) = self.file else {
            return Captured { text: String::from_utf8_lossy(&[head, tail].concat()).into_owned(), bytes };
        };
        if whole {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Captured { text: String::from_utf8_lossy(&[head, tail].concat()).into_owned(), bytes };
        }
        // The file holds the first `on_disk` bytes; when that is not all, the tail follows.
        let mut complete = file.is_some() && on_disk == bytes;
        if let (Some(f), false) = (&mut file, complete) {
            let marker = format!("\n[... {} bytes of output not kept on disk ...]\n", bytes - on_disk);
            complete = f.write_all(marker.as_bytes()).and_then(|()| f.write_all(&tail)).is_ok();
        }
        let written = file.is_some() && complete;
        drop(file);
        let slug: String = test.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
        let kept = keep_dir.join(format!("{slug}.output"));
        let place = if written && std::fs::rename(&path, &kept).is_ok() {
            format!("{} is in {}", if on_disk == bytes { "the whole output" } else { "more of it" }, kept.display())
        } else {
            let _ = std::fs::remove_file(&path);
            "the output could not be kept on disk".to_string()
        };
        let left_out = bytes - head_and_tail;
        Captured {
            text: format!(
                "{}\n[... {left_out} bytes of output left out; {place} ...]\n{}",
                String::from_utf8_lossy(&head),
                String::from_utf8_lossy(&tail)
            ),
            bytes,
        }
    }
}

fn read_into(
    mut from: Box<dyn Read + Send>,
    mut echo: Option<Box<dyn Write + Send>>,
    state: &Mutex<State>,
    done: &Sender<()>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if let Some(to) = &mut echo {
            let _ = to.write_all(&buf[..n]).and_then(|()| to.flush());
        }
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            break;
        }
        state.take(&buf[..n]);
    }
    let _ = done.send(());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(chunks: &[&[u8]], keep: &Path) -> Captured {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (reader, mut writer) = (File::from(read), File::from(write));
        let file = keep.join("scratch.output");
        let capture = Capture::start(vec![(Box::new(reader), None)], Some(&file)).unwrap();
        for chunk in chunks {
            writer.write_all(chunk).unwrap();
        }
        drop(writer);
        capture.finish(keep, "suite::test")
    }

    #[test]
    fn short_output_is_whole_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = captured(&[b"one\n", b"two\n"], dir.path());
        assert_eq!((out.text.as_str(), out.bytes), ("one\ntwo\n", 8));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn exactly_two_windows_is_still_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2 * OUTPUT_KEPT).map(|i| b'a' + (i % 26) as u8).collect();
        let out = captured(&[&data], dir.path());
        assert_eq!(out.text.as_bytes(), &data[..]);
    }

    #[test]
    fn long_output_keeps_both_ends_in_memory_and_a_bounded_copy_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let block = vec![b'x'; 1 << 20];
        let mut chunks: Vec<&[u8]> = vec![b"first\n"];
        chunks.extend(std::iter::repeat_n(&block[..], 12));
        chunks.push(b"\nlast\n");
        let out = captured(&chunks, dir.path());
        let total = 6 + 12 * (1 << 20) + 6;
        assert_eq!(out.bytes, total);
        assert!(out.text.starts_with("first\n") && out.text.ends_with("\nlast\n"));
        assert!(out.text.len() < 2 * OUTPUT_KEPT + 512, "{}", out.text.len());
        let kept = std::fs::read(dir.path().join("suite__test.output")).unwrap();
        assert!(kept.len() as u64 > OUTPUT_ON_DISK && (kept.len() as u64) < OUTPUT_ON_DISK + 2 * OUTPUT_KEPT as u64);
        assert!(kept.starts_with(b"first\n") && kept.ends_with(b"\nlast\n"));
        assert!(!dir.path().join("scratch.output").exists());
    }

    #[test]
    fn output_between_the_windows_and_the_disk_bound_is_kept_whole_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(1 << 20)).map(|i| b'a' + (i % 26) as u8).collect();
        let out = captured(&[&data], dir.path());
        assert_eq!(out.bytes, 1 << 20);
        assert_eq!(std::fs::read(dir.path().join("suite__test.output")).unwrap(), data);
    }
}
