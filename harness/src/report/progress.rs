//! Live progress on a terminal, for long runs: tests done of the total, the tests running now
//! with their elapsed time, and an ETA from the last recorded durations (`durations.json`).
//!
//! libtest prints a line per test; the progress line lives below them, on the terminal's last
//! row, which a scroll region keeps out of their way (as apt does): the region is every row
//! but the last, and each redraw saves the cursor, writes the last row and restores it, so
//! the line libtest is writing is never split. Drawn only on a terminal, in the pretty format,
//! and from the first second on (short runs never see it; `RELIABILITY_PROGRESS=always` draws
//! from the start, and at least once); `--list`, `--format json|terse`, one-test processes
//! (cargo-nextest, IDEs) and `RELIABILITY_PROGRESS=off` never do.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::run::live::Live;

/// Formats seconds as `m:ss` (or `h:mm:ss`).
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s >= 3600 {
        true => format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
        false => format!("{}:{:02}", s / 60, s % 60),
    }
}

/// The progress line, at most `width` characters (pure).
pub fn line(done: usize, total: usize, running: &[(String, Duration)], eta: Option<Duration>, width: usize) -> String {
    let mut out = format!("[{done:>w$}/{total}]", w = total.to_string().len());
    if let Some(eta) = eta {
        out.push_str(&format!(" ETA {}", clock(eta)));
    }
    if !running.is_empty() {
        out.push_str(&format!(" {} running:", running.len()));
        for (name, elapsed) in running {
            out.push_str(&format!(" {name} ({:.1}s)", elapsed.as_secs_f64()));
        }
    }
    if out.chars().count() <= width {
        return out;
    }
    let mut short: String = out.chars().take(width.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// Time left: the recorded durations of the tests not done yet (a test without one counts as
/// the mean of those with one), less what the running ones have run, spread over `parallel`.
pub fn eta(
    pending: &[&str],
    running: &[(String, Duration)],
    durations: &BTreeMap<String, f64>,
    parallel: usize,
) -> Option<Duration> {
    if durations.is_empty() {
        return None;
    }
    let mean = durations.values().sum::<f64>() / durations.len() as f64;
    let expected = |name: &str| durations.get(name).copied().unwrap_or(mean);
    let mut left: f64 = pending.iter().map(|n| expected(n)).sum();
    for (name, elapsed) in running {
        left += (expected(name) - elapsed.as_secs_f64()).max(0.0);
    }
    Duration::try_from_secs_f64(left / parallel.max(1) as f64).ok()
}

/// A drawing progress line; stops (and gives the terminal back) when dropped.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing `live` for a run of `tests` (in schedule order), if stdout is a terminal
    /// tall enough for it.
    pub fn start(
        live: Arc<Live>,
        tests: Vec<String>,
        durations: BTreeMap<String, f64>,
        parallel: usize,
        from_start: bool,
    ) -> Option<Progress> {
        let term = console::Term::stdout();
        if !term.is_term() {
            return None;
        }
        let (rows, cols) = term.size_checked()?;
        if rows < 4 || cols < 20 {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("reliability-progress".into())
            .spawn(move || {
                let delay = if from_start { Duration::ZERO } else { Duration::from_secs(1) };
                draw(&live, &tests, &durations, parallel, (rows, cols), delay, &flag)
            })
            .ok()?;
        Some(Progress { stop, thread: Some(thread) })
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The drawing loop: nothing for the first second, then a redraw every 250 ms.
fn draw(
    live: &Live,
    tests: &[String],
    durations: &BTreeMap<String, f64>,
    parallel: usize,
    (rows, cols): (u16, u16),
    delay: Duration,
    stop: &AtomicBool,
) {
    let begun = Instant::now();
    let mut drawn = false;
    let mut last = begun;
    loop {
        // Checks the stop often and redraws every 250 ms after `delay`. A line once drawn is
        // drawn a last time when the run ends, so it shows the finished count however the
        // redraws fell; with no delay it is drawn at least that once, however soon the run
        // ends. A run over before `delay` draws nothing.
        let stopping = stop.load(Ordering::Acquire);
        if stopping && !drawn && !delay.is_zero() {
            break;
        }
        if !stopping {
            std::thread::sleep(Duration::from_millis(50));
            if begun.elapsed() < delay || (drawn && last.elapsed() < Duration::from_millis(250)) {
                continue;
            }
        }
        last = Instant::now();
        let running = live.running();
        let done = live.done();
        let started: std::collections::HashSet<&str> = running.iter().map(|(n, _)| n.as_str()).collect();
        // Not done and not running: the tests after the first `done + running` in order are
        // an estimate of those still to come (the schedule runs them in this order).
        let pending: Vec<&str> = tests.iter().skip(done).map(String::as_str).filter(|n| !started.contains(n)).collect();
        let text = line(done, tests.len(), &running, eta(&pending, &running, durations, parallel), usize::from(cols));
        let mut out = std::io::stdout().lock();
        if !drawn {
            // Room for the line, then the scroll region: every row but the last.
            let _ = write!(out, "\n\x1b7\x1b[1;{}r\x1b8\x1b[1A", rows - 1);
            drawn = true;
        }
        let _ = write!(out, "\x1b7\x1b[{rows};1H\x1b[2K{text}\x1b8");
        let _ = out.flush();
        if stopping {
            break;
        }
    }
    if drawn {
        // The whole screen scrolls again; the last row is cleared.
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b7\x1b[r\x1b[{rows};1H\x1b[2K\x1b8");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_done_eta_and_running_and_fits_the_width() {
        let running = vec![("a::slow".to_owned(), Duration::from_millis(3200)), ("b::x".to_owned(), Duration::ZERO)];
        let full = line(12, 100, &running, Some(Duration::from_secs(75)), 200);
        assert_eq!(full, "[ 12/100] ETA 1:15 2 running: a::slow (3.2s) b::x (0.0s)");
        let cut = line(12, 100, &running, None, 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with('…'));
        assert_eq!(line(1, 1, &[], None, 80), "[1/1]");
    }

    #[test]
    fn eta_spreads_the_recorded_time_left_over_the_slots() {
        let durations: BTreeMap<String, f64> =
            [("a", 10.0), ("b", 20.0)].into_iter().map(|(k, v)| (k.into(), v)).collect();
        // c has no record: the mean, 15 s. a has run 4 of its 10 s.
        let running = vec![("a".to_owned(), Duration::from_secs(4))];
        let left = eta(&["b", "c"], &running, &durations, 2);
        assert_eq!(left, Some(Duration::from_secs_f64((20.0 + 15.0 + 6.0) / 2.0)));
        assert_eq!(eta(&["b"], &[], &BTreeMap::new(), 2), None, "no record, no guess");
    }
}
