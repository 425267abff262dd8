//! When each iteration of an open-model executor is due, and what a bounded pool of in-flight
//! iterations makes of it. Pure: no clock, no threads — the generator and the tests share it.
//!
//! A rate profile is a list of linear segments (iterations per second moving from `from` to
//! `to` over a duration). Iteration `i` (from 0) is due when the profile's integral reaches
//! `i`, so a constant 1,000/s for 10 s has exactly 10,000 iterations, due every millisecond
//! from 0. Ramps integrate to their trapezoid, bursts to baseline plus spikes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Iterations per second moving linearly from `from` to `to` over `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// Rate at the start, iterations/s.
    pub from: f64,
    /// Rate at the end, iterations/s.
    pub to: f64,
    /// How long.
    pub duration: Duration,
}

/// A spike of a burst: `rate` iterations/s (instead of the baseline) from `at` for `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spike {
    /// Start, from the beginning of the run.
    pub at: Duration,
    /// Length.
    pub duration: Duration,
    /// Rate during the spike, iterations/s.
    pub rate: f64,
}

/// A profile that cannot be run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProfileError {
    /// A rate is negative or not a number.
    #[error("rate {0} is not a finite number >= 0")]
    BadRate(f64),
    /// Nothing to run.
    #[error("the profile is empty (no stage, or zero duration)")]
    Empty,
    /// Spikes overlap or run past the end.
    #[error("spike at {at:?} for {duration:?} overlaps another or ends after the run ({total:?})")]
    BadSpike {
        /// The spike's start.
        at: Duration,
        /// Its length.
        duration: Duration,
        /// The run's length.
        total: Duration,
    },
}

/// The rate over a run, as linear segments.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    segments: Vec<Segment>,
}

fn check(rate: f64) -> Result<f64, ProfileError> {
    if rate.is_finite() && rate >= 0.0 { Ok(rate) } else { Err(ProfileError::BadRate(rate)) }
}

impl Profile {
    /// From segments (zero-length ones are dropped).
    pub fn new(segments: Vec<Segment>) -> Result<Profile, ProfileError> {
        for s in &segments {
            check(s.from)?;
            check(s.to)?;
        }
        let segments: Vec<Segment> = segments.into_iter().filter(|s| !s.duration.is_zero()).collect();
        if segments.is_empty() {
            return Err(ProfileError::Empty);
        }
        Ok(Profile { segments })
    }

    /// `rate` iterations/s for `duration` (k6's `constant-arrival-rate`).
    pub fn constant(rate: f64, duration: Duration) -> Result<Profile, ProfileError> {
        Profile::new(vec![Segment { from: rate, to: rate, duration }])
    }

    /// From `start` iterations/s through stages of (duration, target rate), each ramping
    /// linearly to its target (k6's `ramping-arrival-rate`).
    pub fn ramping(start: f64, stages: &[(Duration, f64)]) -> Result<Profile, ProfileError> {
        let mut from = start;
        let mut segments = Vec::with_capacity(stages.len());
        for &(duration, to) in stages {
            segments.push(Segment { from, to, duration });
            from = to;
        }
        Profile::new(segments)
    }

    /// `baseline` iterations/s for `duration`, with spikes at their own rates.
    pub fn burst(baseline: f64, duration: Duration, spikes: &[Spike]) -> Result<Profile, ProfileError> {
        let mut spikes = spikes.to_vec();
        spikes.sort_by_key(|s| s.at);
        let mut segments = Vec::new();
        let mut at = Duration::ZERO;
        for spike in &spikes {
            let end = spike.at + spike.duration;
            if spike.at < at || end > duration {
                return Err(ProfileError::BadSpike { at: spike.at, duration: spike.duration, total: duration });
            }
            segments.push(Segment { from: baseline, to: baseline, duration: spike.at - at });
            segments.push(Segment { from: spike.rate, to: spike.rate, duration: spike.duration });
            at = end;
        }
        segments.push(Segment { from: baseline, to: baseline, duration: duration - at });
        Profile::new(segments)
    }

    /// The run's length.
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// The rate at `t` (0 after the end).
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut start = Duration::ZERO;
        for s in &self.segments {
            if t < start + s.duration {
                let f = (t - start).as_secs_f64() / s.duration.as_secs_f64();
                return s.from + (s.to - s.from) * f;
            }
            start += s.duration;
        }
        0.0
    }

    /// The integral of the rate: iterations offered over the run (fractional).
    pub fn total(&self) -> f64 {
        self.segments.iter().map(|s| (s.from + s.to) / 2.0 * s.duration.as_secs_f64()).sum()
    }

    /// Iterations due before `t` (every `i` below the integral up to `t`, capped at the count).
    pub fn due_before(&self, t: Duration) -> u64 {
        let mut area = 0.0;
        let mut start = Duration::ZERO;
        for s in &self.segments {
            let d = s.duration.as_secs_f64();
            let x = t.saturating_sub(start).as_secs_f64().min(d);
            area += s.from * x + (s.to - s.from) * x * x / (2.0 * d);
            start += s.duration;
            if t <= start {
                break;
            }
        }
        if area <= 0.0 { 0 } else { ((area - 1e-9).ceil().max(0.0) as u64).min(self.count()) }
    }

    /// Iterations due: every `i >= 0` below [`Profile::total`].
    pub fn count(&self) -> u64 {
        let total = self.total();
        if total <= 0.0 { 0 } else { (total - 1e-9).ceil().max(0.0) as u64 }
    }

    /// When each iteration is due, from the start of the run, in order.
    pub fn starts(&self) -> Starts<'_> {
        Starts { profile: self, next: 0, count: self.count(), segment: 0, base: 0.0, offset: 0.0 }
    }
}

/// The due times of a profile's iterations ([`Profile::starts`]).
#[derive(Debug)]
pub struct Starts<'a> {
    profile: &'a Profile,
    next: u64,
    count: u64,
    segment: usize,
    /// Iterations offered before the current segment.
    base: f64,
    /// Seconds before the current segment.
    offset: f64,
}

impl Iterator for Starts<'_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.next >= self.count {
            return None;
        }
        let n = self.next as f64;
        loop {
            let s = self.profile.segments.get(self.segment)?;
            let d = s.duration.as_secs_f64();
            let area = (s.from + s.to) / 2.0 * d;
            if n < self.base + area || self.segment + 1 == self.profile.segments.len() {
                // N(t) = base + from·t + (to − from)·t²/(2d); solve N(t) = n in the stable form
                // t = 2m / (from + sqrt(from² + 4km)), m = n − base, k = (to − from)/(2d).
                let m = n - self.base;
                let k = (s.to - s.from) / (2.0 * d);
                let root = (s.from * s.from + 4.0 * k * m).max(0.0).sqrt();
                let t = if m <= 0.0 { 0.0 } else { 2.0 * m / (s.from + root) };
                self.next += 1;
                let at = (self.offset + t.min(d)) * 1e9;
                return Some(Duration::from_nanos(at.round() as u64));
            }
            self.base += area;
            self.offset += d;
            self.segment += 1;
        }
    }
}

/// What a bounded pool made of a schedule, on a virtual clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Simulated {
    /// Iterations started at their due time.
    pub started: u64,
    /// Iterations due when every slot was busy: not started, and counted (k6's dropped
    /// iterations).
    pub missed: u64,
    /// The most iterations in flight at once.
    pub peak_in_flight: usize,
}

/// Plays due times against `slots` concurrent iterations, each taking `service(i)`: an
/// iteration starts at its due time if a slot is free then (one whose iteration ended at or
/// before that time), and is missed otherwise — never started late, never queued.
pub fn simulate(
    starts: impl Iterator<Item = Duration>,
    slots: usize,
    mut service: impl FnMut(u64) -> Duration,
) -> Simulated {
    let mut busy: BinaryHeap<Reverse<Duration>> = BinaryHeap::new();
    let mut out = Simulated::default();
    for (i, due) in starts.enumerate() {
        while busy.peek().is_some_and(|Reverse(end)| *end <= due) {
            busy.pop();
        }
        if busy.len() < slots {
            busy.push(Reverse(due + service(i as u64)));
            out.started += 1;
            out.peak_in_flight = out.peak_in_flight.max(busy.len());
        } else {
            out.missed += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn constant_rate_is_exact_to_the_iteration() {
        let p = Profile::constant(1000.0, 10 * S).unwrap();
        assert_eq!(p.count(), 10_000);
        let starts: Vec<Duration> = p.starts().collect();
        assert_eq!(starts.len(), 10_000);
        assert_eq!(starts[0], Duration::ZERO);
        assert_eq!(starts[1], Duration::from_millis(1));
        assert_eq!(starts[9_999], Duration::from_millis(9_999));
        assert!(starts.windows(2).all(|w| w[1] - w[0] == Duration::from_millis(1)));
        for t in [0, 1, 2, 500, 9_999, 10_000, 20_000] {
            let t = Duration::from_millis(t);
            assert_eq!(p.due_before(t), starts.iter().filter(|d| **d < t).count() as u64, "{t:?}");
        }
        // A fractional total rounds up: 2.5 iterations offered are due at 0, 0.4 s and 0.8 s.
        let p = Profile::constant(2.5, S).unwrap();
        assert_eq!(p.starts().collect::<Vec<_>>(), [0, 400, 800].map(Duration::from_millis));
    }

    #[test]
    fn ramps_follow_their_trapezoid() {
        // 0 → 100/s over 10 s: 500 iterations, 125 of them in the first 5 s.
        let p = Profile::ramping(0.0, &[(10 * S, 100.0)]).unwrap();
        assert_eq!(p.count(), 500);
        let starts: Vec<Duration> = p.starts().collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]));
        assert!(*starts.last().unwrap() < 10 * S);
        assert_eq!(starts.iter().filter(|t| **t < 5 * S).count(), 125);
        // Up, hold, down: 0→200 over 2 s (200), 200 for 3 s (600), 200→0 over 1 s (100).
        let p = Profile::ramping(0.0, &[(2 * S, 200.0), (3 * S, 200.0), (S, 0.0)]).unwrap();
        assert_eq!(p.count(), 900);
        let starts: Vec<Duration> = p.starts().collect();
        assert_eq!(starts.iter().filter(|t| **t < 2 * S).count(), 200);
        assert_eq!(starts.iter().filter(|t| **t < 5 * S).count(), 800);
        for ms in [0, 700, 2000, 3100, 5000, 5500, 6000] {
            let t = Duration::from_millis(ms);
            let seen = starts.iter().filter(|d| **d < t).count() as u64;
            assert!(p.due_before(t).abs_diff(seen) <= 1, "{t:?}: {} vs {seen}", p.due_before(t));
        }
        assert!(p.rate_at(Duration::from_millis(5500)) - 100.0 < 1e-9);
    }

    #[test]
    fn bursts_are_baseline_plus_spikes() {
        let spikes = [Spike { at: 2 * S, duration: S, rate: 1000.0 }, Spike { at: 6 * S, duration: S, rate: 500.0 }];
        let p = Profile::burst(10.0, 10 * S, &spikes).unwrap();
        assert_eq!(p.count(), 8 * 10 + 1000 + 500);
        let starts: Vec<Duration> = p.starts().collect();
        assert_eq!(starts.iter().filter(|t| **t >= 2 * S && **t < 3 * S).count(), 1000);
        assert_eq!(starts.iter().filter(|t| **t >= 6 * S && **t < 7 * S).count(), 500);
        let overlapping =
            [Spike { at: 2 * S, duration: 2 * S, rate: 1.0 }, Spike { at: 3 * S, duration: S, rate: 1.0 }];
        assert!(matches!(Profile::burst(1.0, 10 * S, &overlapping), Err(ProfileError::BadSpike { .. })));
        let late = [Spike { at: 9 * S, duration: 2 * S, rate: 1.0 }];
        assert!(matches!(Profile::burst(1.0, 10 * S, &late), Err(ProfileError::BadSpike { .. })));
    }

    #[test]
    fn bad_profiles_are_refused() {
        assert_eq!(Profile::constant(-1.0, S), Err(ProfileError::BadRate(-1.0)));
        assert!(matches!(Profile::constant(f64::NAN, S), Err(ProfileError::BadRate(_))));
        assert_eq!(Profile::constant(1.0, Duration::ZERO), Err(ProfileError::Empty));
        assert_eq!(Profile::ramping(1.0, &[]), Err(ProfileError::Empty));
        assert_eq!(Profile::constant(0.0, S).unwrap().count(), 0);
    }

    #[test]
    fn a_full_pool_misses_iterations_and_counts_them() {
        let p = Profile::constant(1000.0, 10 * S).unwrap();
        // 10 slots, 5 ms each: 5 in flight at most, nothing missed.
        let fast = simulate(p.starts(), 10, |_| Duration::from_millis(5));
        assert_eq!(fast, Simulated { started: 10_000, missed: 0, peak_in_flight: 5 });
        // 10 slots, 20 ms each: capacity 500/s — per 20 ms, 10 start and 10 are missed.
        let slow = simulate(p.starts(), 10, |_| Duration::from_millis(20));
        assert_eq!((slow.started, slow.missed, slow.peak_in_flight), (5_000, 5_000, 10));
        // A stall: iterations 100..110 take 1 s; what was due meanwhile is missed, not queued.
        let stall = simulate(p.starts(), 10, |i| if (100..110).contains(&i) { S } else { Duration::from_micros(500) });
        assert_eq!(stall.started + stall.missed, 10_000);
        assert_eq!(stall.missed, 990, "due from 110 ms until the stall ends at 1.1 s");
    }
}
