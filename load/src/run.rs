//! The generator: plays a profile in real time against a pool of worker threads, one
//! iteration per due time, and counts everything where it happens.
//!
//! Open model, as k6's arrival-rate executors: an iteration starts at its due time if a worker
//! is free, and is counted as *missed* otherwise — never started late, never queued — so a
//! slow target cannot slow the offered load down. Latency runs from the due time, not from
//! when a worker picked the iteration up, so coordinated omission cannot hide a stall.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::schedule::Profile;

/// This generator's share of a plan run by several (k6's execution segments): iteration `k`
/// of the schedule (and user `k` of the closed model) belongs to segment `k % count`, so N
/// segments split the rate, the users and the iteration indices (hence span ids) exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// This one, from 0.
    pub index: u64,
    /// How many.
    pub count: u64,
}

impl Default for Segment {
    fn default() -> Self {
        Segment { index: 0, count: 1 }
    }
}

impl Segment {
    /// Whether iteration (or user) `k` is this segment's.
    pub fn owns(&self, k: u64) -> bool {
        k % self.count.max(1) == self.index
    }

    /// Parses `i/N` (0 <= i < N).
    pub fn parse(text: &str) -> Result<Segment, String> {
        let bad = || format!("a segment is i/N with 0 <= i < N, not {text:?}");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Segment { index, count })
    }
}

/// How one iteration ended, by the answer it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 2xx.
    Ok,
    /// 400.
    BadRequest,
    /// 413: the request was too large.
    TooLarge,
    /// 429.
    TooManyRequests,
    /// 503.
    Unavailable,
    /// Any other 4xx.
    OtherClientError,
    /// Any other 5xx.
    OtherServerError,
    /// No answer in time.
    Timeout,
    /// The connection could not be made or broke.
    ConnectionError,
}

impl Status {
    /// Every status, in the order reports list them.
    pub const ALL: [Status; 9] = [
        Status::Ok,
        Status::BadRequest,
        Status::TooLarge,
        Status::TooManyRequests,
        Status::Unavailable,
        Status::OtherClientError,
        Status::OtherServerError,
        Status::Timeout,
        Status::ConnectionError,
    ];

    /// A short label for graphs.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "2xx",
            Status::BadRequest => "400",
            Status::TooLarge => "413",
            Status::TooManyRequests => "429",
            Status::Unavailable => "503",
            Status::OtherClientError => "other 4xx",
            Status::OtherServerError => "other 5xx",
            Status::Timeout => "timeout",
            Status::ConnectionError => "conn. error",
        }
    }

    /// The class of an HTTP status code.
    pub fn of(code: u16) -> Status {
        match code {
            200..=299 => Status::Ok,
            400 => Status::BadRequest,
            413 => Status::TooLarge,
            429 => Status::TooManyRequests,
            503 => Status::Unavailable,
            401..=412 | 414..=428 | 430..=499 => Status::OtherClientError,
            _ => Status::OtherServerError,
        }
    }
}

/// What one iteration did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Spans it sent.
    pub spans: u64,
    /// Of those, spans the target refused in a 2xx answer (OTLP partial success).
    pub rejected: u64,
    /// Request bytes sent.
    pub bytes: u64,
    /// Which scenario of the mix it was (0 without a mix).
    pub scenario: usize,
}

/// One scenario's share of a run.
#[derive(Clone, Debug)]
pub struct ScenarioFigures {
    /// Ended iterations by status.
    pub by_status: BTreeMap<Status, Tally>,
    /// Request bytes.
    pub bytes: u64,
    /// From due time to end, µs.
    pub latency: Histogram<u64>,
}

/// One second of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Second {
    /// Iterations due in this second.
    pub offered: u64,
    /// Of those, started.
    pub started: u64,
    /// Of those, missed (every worker busy).
    pub missed: u64,
    /// Iterations that ended in this second.
    pub completed: u64,
    /// Spans in those iterations.
    pub spans: u64,
    /// Request bytes in those iterations.
    pub bytes: u64,
    /// Latency of those iterations (from their due time), µs.
    pub latency_us: SecondLatency,
}

/// The latency quantiles of the iterations that ended in one second, µs (0 when none did).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SecondLatency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

impl SecondLatency {
    fn of(h: &Histogram<u32>) -> SecondLatency {
        if h.is_empty() {
            return SecondLatency::default();
        }
        let q = |p: f64| h.value_at_quantile(p);
        SecondLatency { p50: q(0.5), p90: q(0.9), p95: q(0.95), p99: q(0.99), max: h.max() }
    }
}

/// Iterations and spans of one status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Iterations.
    pub iterations: u64,
    /// Spans they carried.
    pub spans: u64,
}

/// Everything a run counted.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Iterations due (the profile's count; when interrupted, those due before the stop).
    pub offered: u64,
    /// The run was stopped before its last due time.
    pub interrupted: bool,
    /// Started at their due time.
    pub started: u64,
    /// Due while every worker was busy.
    pub missed: u64,
    /// Spans in the started iterations, counted by the generator.
    pub generated_spans: u64,
    /// Started and ended, by status.
    pub by_status: BTreeMap<Status, Tally>,
    /// Spans refused inside 2xx answers.
    pub rejected_spans: u64,
    /// Request bytes sent.
    pub bytes: u64,
    /// The largest request answered 2xx, bytes.
    pub largest_ok_bytes: u64,
    /// The smallest request answered 413, bytes.
    pub smallest_too_large_bytes: Option<u64>,
    /// From due time to end, µs.
    pub latency: Histogram<u64>,
    /// Per second, from the start.
    pub seconds: Vec<Second>,
    /// Per scenario of the mix (one entry without a mix).
    pub by_scenario: Vec<ScenarioFigures>,
    /// The generator's lateness past due times (it slept too long), µs.
    pub lateness: Histogram<u64>,
    /// From the first due time until the last iteration ended.
    pub elapsed: Duration,
}

impl Figures {
    /// Iterations that ended (any status).
    pub fn completed(&self) -> u64 {
        self.by_status.values().map(|t| t.iterations).sum()
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

pub(crate) struct Shared {
    largest_ok: u64,
    smallest_too_large: Option<u64>,
    by_scenario: Vec<ScenarioFigures>,
    by_status: BTreeMap<Status, Tally>,
    rejected: u64,
    bytes: u64,
    latency: Histogram<u64>,
    seconds: Vec<Second>,
    /// Latency of the iterations that ended in each of the last few seconds (2 significant
    /// digits); older seconds are folded into `seconds` as they close, so a long run holds a
    /// handful of histograms, not one per second.
    open_seconds: BTreeMap<usize, Histogram<u32>>,
}

/// Seconds a per-second latency window stays open after it ends (an iteration is recorded
/// when a worker gets the lock, a little after it ended).
const OPEN_SECONDS: usize = 3;

fn second_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2)
        .unwrap_or_else(|_| Histogram::new(2).unwrap_or_else(|_| unreachable!()))
}

impl Shared {
    pub(crate) fn new(scenarios: usize) -> Shared {
        let blank = ScenarioFigures { by_status: BTreeMap::new(), bytes: 0, latency: histogram() };
        Shared {
            largest_ok: 0,
            smallest_too_large: None,
            by_scenario: vec![blank; scenarios.max(1)],
            by_status: BTreeMap::new(),
            rejected: 0,
            bytes: 0,
            latency: histogram(),
            seconds: Vec::new(),
            open_seconds: BTreeMap::new(),
        }
    }

    /// Counts one ended iteration: latency from `from` (its due time, or its start in the
    /// closed model) to `ended`.
    pub(crate) fn record(&mut self, outcome: &Outcome, from: Duration, ended: Duration) {
        let tally = self.by_status.entry(outcome.status).or_default();
        tally.iterations += 1;
        tally.spans += outcome.spans;
        self.rejected += outcome.rejected;
        match outcome.status {
            Status::Ok => self.largest_ok = self.largest_ok.max(outcome.bytes),
            Status::TooLarge => {
                self.smallest_too_large = Some(self.smallest_too_large.map_or(outcome.bytes, |b| b.min(outcome.bytes)))
            }
            _ => {}
        }
        self.bytes += outcome.bytes;
        let micros = ended.saturating_sub(from).as_micros().max(1) as u64;
        self.latency.saturating_record(micros);
        let last = self.by_scenario.len() - 1;
        let scenario = &mut self.by_scenario[outcome.scenario.min(last)];
        let tally = scenario.by_status.entry(outcome.status).or_default();
        tally.iterations += 1;
        tally.spans += outcome.spans;
        scenario.bytes += outcome.bytes;
        scenario.latency.saturating_record(micros);
        let sec = second(&mut self.seconds, ended);
        sec.completed += 1;
        sec.spans += outcome.spans;
        sec.bytes += outcome.bytes;
        // A record later than its window's close goes into the oldest open window.
        let closed_below = self.open_seconds.keys().next().copied().unwrap_or(0);
        let i = (ended.as_secs() as usize).max(closed_below);
        self.open_seconds.entry(i).or_insert_with(second_histogram).saturating_record(micros);
        while let Some(entry) = self.open_seconds.first_entry() {
            if *entry.key() + OPEN_SECONDS > i {
                break;
            }
            let (j, h) = entry.remove_entry();
            second(&mut self.seconds, Duration::from_secs(j as u64)).latency_us = SecondLatency::of(&h);
        }
    }
}

pub(crate) fn second(seconds: &mut Vec<Second>, at: Duration) -> &mut Second {
    let i = at.as_secs() as usize;
    if seconds.len() <= i {
        seconds.resize(i + 1, Second::default());
    }
    &mut seconds[i]
}

/// Runs `profile` in real time with `workers` iterations in flight at most; `iteration(i)`
/// does iteration `i` (it must end by itself: give its I/O a timeout). Returns when every
/// started iteration has ended.
///
/// `spans_of(i)` is what iteration `i` will send, told to the generator so that it counts the
/// spans it starts on its own (the workers count them again from what was sent). Setting
/// `stop` ends the generator within 20 ms; iterations in flight still end (the run drains)
/// and are counted.
pub fn run<F>(
    profile: &Profile,
    workers: usize,
    scenarios: usize,
    spans_of: &dyn Fn(u64) -> u64,
    stop: &AtomicBool,
    segment: Segment,
    iteration: F,
) -> Figures
where
    F: Fn(u64) -> Outcome + Sync,
{
    run_observed(profile, workers, scenarios, spans_of, stop, segment, iteration, || {})
}

/// [`run`], calling `generated` once the last due time has been dealt with (tests use it to
/// hold a worker busy for exactly the whole schedule).
#[expect(clippy::too_many_arguments, reason = "run's arguments and the tests' hook; crate-internal")]
pub(crate) fn run_observed<F>(
    profile: &Profile,
    workers: usize,
    scenarios: usize,
    spans_of: &dyn Fn(u64) -> u64,
    stop: &AtomicBool,
    segment: Segment,
    iteration: F,
    generated: impl FnOnce(),
) -> Figures
where
    F: Fn(u64) -> Outcome + Sync,
{
    let workers = workers.max(1);
    let free = AtomicUsize::new(workers);
    let shared = Mutex::new(Shared::new(scenarios));
    let (tx, rx) = mpsc::channel::<(u64, Duration)>();
    let rx = Mutex::new(rx);
    let mut started = 0u64;
    let mut missed = 0u64;
    let mut generated_spans = 0u64;
    let mut interrupted = false;
    let mut lateness = histogram();
    let mut offered_seconds: Vec<Second> = Vec::new();
    let origin = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((i, due)) = job else { return };
                    let outcome = iteration(i);
                    let ended = origin.elapsed();
                    shared.lock().unwrap_or_else(PoisonError::into_inner).record(&outcome, due, ended);
                    free.fetch_add(1, Ordering::AcqRel);
                }
            });
        }
        let mine = profile.starts().enumerate().filter(|(i, _)| segment.owns(*i as u64));
        'due: for (i, due) in mine {
            // Sleep in slices, so a stop request is seen within 20 ms.
            loop {
                if stop.load(Ordering::Acquire) {
                    interrupted = true;
                    break 'due;
                }
                let now = origin.elapsed();
                if due <= now {
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(20)));
            }
            lateness.saturating_record(origin.elapsed().saturating_sub(due).as_micros().max(1) as u64);
            let sec = second(&mut offered_seconds, due);
            sec.offered += 1;
            let took = free.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok();
            if took && tx.send((i as u64, due)).is_ok() {
                started += 1;
                generated_spans += spans_of(i as u64);
                sec.started += 1;
            } else {
                missed += 1;
                sec.missed += 1;
            }
        }
        drop(tx);
        generated();
    });
    let counts = Counts {
        offered: if interrupted {
            started + missed
        } else {
            (0..profile.count()).filter(|k| segment.owns(*k)).count() as u64
        },
        interrupted,
        started,
        missed,
        generated_spans,
    };
    let shared = shared.into_inner().unwrap_or_else(PoisonError::into_inner);
    shared.into_figures(counts, offered_seconds, lateness, origin.elapsed())
}

/// What the generator counted on its own.
pub(crate) struct Counts {
    pub(crate) offered: u64,
    pub(crate) interrupted: bool,
    pub(crate) started: u64,
    pub(crate) missed: u64,
    pub(crate) generated_spans: u64,
}

impl Shared {
    /// The workers' counts joined with the generator's (`offered_seconds`: its per-second
    /// offered, started and missed).
    pub(crate) fn into_figures(
        self,
        c: Counts,
        offered_seconds: Vec<Second>,
        lateness: Histogram<u64>,
        elapsed: Duration,
    ) -> Figures {
        let mut seconds = self.seconds;
        for (j, h) in &self.open_seconds {
            second(&mut seconds, Duration::from_secs(*j as u64)).latency_us = SecondLatency::of(h);
        }
        if seconds.len() < offered_seconds.len() {
            seconds.resize(offered_seconds.len(), Second::default());
        }
        for (sec, offered) in seconds.iter_mut().zip(offered_seconds) {
            sec.offered = offered.offered;
            sec.started = offered.started;
            sec.missed = offered.missed;
        }
        Figures {
            offered: c.offered,
            interrupted: c.interrupted,
            started: c.started,
            missed: c.missed,
            generated_spans: c.generated_spans,
            by_status: self.by_status,
            rejected_spans: self.rejected,
            bytes: self.bytes,
            largest_ok_bytes: self.largest_ok,
            smallest_too_large_bytes: self.smallest_too_large,
            latency: self.latency,
            by_scenario: self.by_scenario,
            seconds,
            lateness,
            elapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_kept_per_second_in_a_bounded_number_of_windows() {
        let mut shared = Shared::new(1);
        let ok = Outcome { status: Status::Ok, spans: 2, rejected: 0, bytes: 10, scenario: 0 };
        // Second s: 100 iterations of (s + 1) ms each, ended in that second; second 4 is idle.
        for s in (0..60u64).filter(|s| *s != 4) {
            for k in 0..100u64 {
                let ended = Duration::from_secs(s) + Duration::from_millis(5 * k);
                let from = ended.saturating_sub(Duration::from_millis(s + 1));
                shared.record(&ok, from, ended.min(Duration::from_secs(s) + Duration::from_millis(999)));
            }
            assert!(shared.open_seconds.len() <= OPEN_SECONDS + 1, "{} windows open", shared.open_seconds.len());
        }
        let counts = Counts { offered: 0, interrupted: false, started: 0, missed: 0, generated_spans: 0 };
        let f = shared.into_figures(counts, Vec::new(), histogram(), Duration::from_secs(60));
        assert_eq!(f.seconds.len(), 60);
        for (s, sec) in f.seconds.iter().enumerate() {
            if s == 4 {
                assert_eq!((sec.completed, sec.latency_us), (0, SecondLatency::default()));
                continue;
            }
            let want = (s as u64 + 1) * 1000;
            assert_eq!(sec.completed, 100, "second {s}");
            for got in [sec.latency_us.p50, sec.latency_us.p99, sec.latency_us.max] {
                assert!(got.abs_diff(want) * 100 <= want, "second {s}: {got} µs, want {want} ± 1%");
            }
        }
    }

    #[test]
    fn segments_split_exactly() {
        let profile = Profile::constant(1000.0, Duration::from_millis(100)).unwrap_or_else(|e| panic!("{e}"));
        let seen = Mutex::new(Vec::new());
        let mut offered = 0;
        for index in 0..3 {
            let segment = Segment::parse(&format!("{index}/3")).unwrap_or_else(|e| panic!("{e}"));
            let f = run(&profile, 8, 1, &|_| 1, &AtomicBool::new(false), segment, |i| {
                seen.lock().unwrap_or_else(PoisonError::into_inner).push(i);
                Outcome { status: Status::Ok, spans: 1, rejected: 0, bytes: 1, scenario: 0 }
            });
            assert_eq!(f.started + f.missed, f.offered);
            offered += f.offered;
        }
        assert_eq!(offered, 100, "the segments' shares add up to the plan");
        let mut seen = seen.into_inner().unwrap_or_else(PoisonError::into_inner);
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.iter().all(|i| *i < 100), "indices are the plan's, shared by none");
        for bad in ["3/3", "1/0", "x/2", "1"] {
            assert!(Segment::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_fall_in_their_classes() {
        let classes: Vec<Status> = [200, 204, 400, 401, 413, 429, 499, 500, 502, 503, 504].map(Status::of).to_vec();
        use Status::*;
        assert_eq!(
            classes,
            [
                Ok,
                Ok,
                BadRequest,
                OtherClientError,
                TooLarge,
                TooManyRequests,
                OtherClientError,
                OtherServerError,
                OtherServerError,
                Unavailable,
                OtherServerError
            ]
        );
    }

    /// Every due iteration is either started or missed, and every started one ends with a
    /// status: counted by the generator and by the workers separately.
    #[test]
    fn every_iteration_is_placed() {
        let profile = Profile::constant(400.0, Duration::from_millis(500)).unwrap_or_else(|e| panic!("{e}"));
        let figures = run(&profile, 4, 2, &|_| 3, &AtomicBool::new(false), Segment::default(), |i| Outcome {
            status: if i % 5 == 0 { Status::Unavailable } else { Status::Ok },
            spans: 3,
            rejected: 0,
            bytes: 100,
            scenario: (i % 2) as usize,
        });
        assert_eq!(figures.offered, 200);
        assert_eq!(figures.started + figures.missed, 200);
        assert_eq!(figures.completed(), figures.started);
        let per_second: u64 = figures.seconds.iter().map(|s| s.offered).sum();
        assert_eq!(per_second, 200);
        assert_eq!(figures.seconds.iter().map(|s| s.completed).sum::<u64>(), figures.started);
        assert_eq!(figures.bytes, 100 * figures.started);
        let spans: u64 = figures.by_status.values().map(|t| t.spans).sum();
        assert_eq!(spans, 3 * figures.started);
        assert_eq!(figures.generated_spans, spans);
        let per_scenario: u64 =
            figures.by_scenario.iter().flat_map(|s| s.by_status.values()).map(|t| t.iterations).sum();
        assert_eq!(per_scenario, figures.started);
        assert_eq!(figures.by_scenario.len(), 2);
    }

    /// A stop ends the generator early; what was due before it is placed, nothing after.
    #[test]
    fn a_stop_ends_the_run_and_keeps_the_count() {
        let profile = Profile::constant(1000.0, Duration::from_secs(3600)).unwrap_or_else(|e| panic!("{e}"));
        let stop = AtomicBool::new(false);
        let figures = run(&profile, 2, 1, &|_| 1, &stop, Segment::default(), |i| {
            // Any iteration from the 50th on (one may be missed on a busy machine).
            if i >= 50 {
                stop.store(true, Ordering::Release);
            }
            Outcome { status: Status::Ok, spans: 1, rejected: 0, bytes: 1, scenario: 0 }
        });
        assert!(figures.interrupted);
        assert!(figures.offered >= 51 && figures.offered < 3_600_000, "{}", figures.offered);
        assert_eq!(figures.started + figures.missed, figures.offered);
        assert_eq!(figures.completed(), figures.started);
    }

    /// With one worker held busy by iteration 0 until the generator has dealt with every due
    /// time, the other 19 are missed — not queued, not started late.
    #[test]
    fn a_busy_pool_misses_instead_of_queueing() {
        let profile = Profile::constant(100.0, Duration::from_millis(200)).unwrap_or_else(|e| panic!("{e}"));
        let done = std::sync::atomic::AtomicBool::new(false);
        let figures = run_observed(
            &profile,
            1,
            1,
            &|_| 1,
            &AtomicBool::new(false),
            Segment::default(),
            |i| {
                while i == 0 && !done.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Outcome { status: Status::Ok, spans: 1, rejected: 0, bytes: 1, scenario: 0 }
            },
            || done.store(true, Ordering::Release),
        );
        assert_eq!((figures.offered, figures.started, figures.missed), (20, 1, 19));
        assert_eq!(figures.seconds[0].missed, 19);
    }
}
