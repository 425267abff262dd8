//! A run as one trace (what pytest-opentelemetry gives Python users): the ids of the run's
//! root span and of each test attempt's span, and when each attempt started and ended. The
//! spans themselves are built and sent after the run (`publish::trace`).
//!
//! Ids: the trace id is random per run — or the caller's, when `TRACEPARENT` is set, so a CI
//! job's trace contains the run — and each attempt's span id is derived from the trace id, the
//! test's name and the attempt's number, so the parent can hand a child process its span's
//! `TRACEPARENT` before the child starts, and spans a test creates nest under its test span.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// The ids and attempt times of a traced run.
#[derive(Debug)]
pub struct RunTrace {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The run's root span.
    pub root: [u8; 8],
    /// The caller's span, when `TRACEPARENT` named one.
    pub parent: Option<[u8; 8]>,
    /// When the run started.
    pub started: SystemTime,
    times: Mutex<HashMap<(String, u32), (SystemTime, SystemTime)>>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if from_os.is_err() {
        // No /dev/urandom: the clock and pid, mixed (ids need to be unique, not secret).
        let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (mix(seed.wrapping_add(i as u64)) & 0xff) as u8;
        }
    }
    bytes
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A W3C `traceparent` (`00-<trace>-<span>-<flags>`), if valid: not all-zero ids.
pub fn parse_traceparent(text: &str) -> Option<([u8; 16], [u8; 8])> {
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [version, trace, span, flags] = parts.as_slice() else { return None };
    if *version == "ff" || version.len() != 2 || flags.len() != 2 {
        return None;
    }
    let (trace, span) = (unhex::<16>(trace)?, unhex::<8>(span)?);
    (trace != [0; 16] && span != [0; 8]).then_some((trace, span))
}

impl RunTrace {
    /// A new run's trace, under `traceparent` when the caller gave a valid one.
    pub fn start(traceparent: Option<&str>) -> RunTrace {
        let caller = traceparent.and_then(parse_traceparent);
        let trace_id = caller.map_or_else(random_bytes::<16>, |(t, _)| t);
        RunTrace {
            trace_id,
            root: random_bytes::<8>(),
            parent: caller.map(|(_, s)| s),
            started: SystemTime::now(),
            times: Mutex::new(HashMap::new()),
        }
    }

    /// The span id of attempt `attempt` (from 1) of `test`: never zero, the same wherever it
    /// is computed.
    pub fn attempt_span(&self, test: &str, attempt: u32) -> [u8; 8] {
        // FNV-1a over the trace id, the name and the attempt, then mixed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.trace_id.iter().chain(test.as_bytes()).chain(&attempt.to_le_bytes()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let id = mix(h ^ u64::from_le_bytes(self.root)).to_be_bytes();
        if id == [0; 8] { [1, 0, 0, 0, 0, 0, 0, 0] } else { id }
    }

    /// The `TRACEPARENT` a child running that attempt gets (sampled).
    pub fn traceparent(&self, test: &str, attempt: u32) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.attempt_span(test, attempt)))
    }

    /// Records when an attempt ran.
    pub fn record(&self, test: &str, attempt: u32, start: SystemTime, end: SystemTime) {
        self.times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((test.to_owned(), attempt), (start, end));
    }

    /// When an attempt ran, if it was recorded.
    pub fn times(&self, test: &str, attempt: u32) -> Option<(SystemTime, SystemTime)> {
        self.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&(test.to_owned(), attempt)).copied()
    }

    /// Lowercase hex of the trace id.
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_traceparent_is_adopted_and_bad_ones_are_not() {
        let t = RunTrace::start(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        assert_eq!(t.trace_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(t.parent, Some([0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]));
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "garbage",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        assert_eq!(RunTrace::start(Some("garbage")).parent, None);
    }

    #[test]
    fn attempt_spans_are_distinct_and_stable() {
        let t = RunTrace::start(None);
        let mut seen = std::collections::HashSet::new();
        for test in ["a::x", "a::y", "b::x"] {
            for attempt in 1..=3 {
                assert!(seen.insert(t.attempt_span(test, attempt)));
                assert_eq!(t.attempt_span(test, attempt), t.attempt_span(test, attempt));
            }
        }
        let parent = t.traceparent("a::x", 2);
        assert_eq!(parse_traceparent(&parent), Some((t.trace_id, t.attempt_span("a::x", 2))));
        assert_ne!(RunTrace::start(None).trace_id, t.trace_id, "random per run");
    }
}
