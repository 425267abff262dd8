//! The capacity search: step the offered rate up (×`factor`) until a step breaks a criterion
//! — achieved below 99% of offered, p99 over the SLO, errors over the limit — then bisect
//! between the last rate that held and the first that broke, until they are within
//! `tolerance` of each other. The answer is the highest rate that held.
//!
//! Pure: a step is whatever `probe(rate)` measures, so the search is tested on a simulated
//! target and driven by real runs in `load capacity`.

use serde::{Deserialize, Serialize};

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Step {
    /// Iterations per second offered.
    pub rate: f64,
    /// Iterations that ended 2xx, over those offered.
    pub achieved_ratio: f64,
    /// p99 latency from due time, ms.
    pub p99_ms: f64,
    /// Iterations that ended without a 2xx, over those that ended.
    pub error_rate: f64,
    /// The watched target's peak CPU over its limit during the step (none unwatched).
    pub target_cpu_fraction: Option<f64>,
    /// The watched target's peak RSS over its limit during the step (none unwatched).
    pub target_memory_fraction: Option<f64>,
}

/// The search's settings (`capacity:` in a plan).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Settings {
    /// The first rate tried, iterations/s.
    pub start_rate: f64,
    /// Each step up multiplies the rate by this (> 1).
    pub factor: f64,
    /// Stop bisecting when the bracket is narrower than this fraction.
    pub tolerance: f64,
    /// Never offer more than this, iterations/s.
    pub max_rate: f64,
    /// How long each step runs, seconds.
    pub step_seconds: f64,
    /// A step breaks when its achieved ratio is below this.
    pub min_achieved_ratio: f64,
    /// ... or its p99 is over this, ms.
    pub slo_p99_ms: f64,
    /// ... or its error rate is over this.
    pub max_error_rate: f64,
    /// Steps at most (every loop is bounded).
    pub max_steps: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            start_rate: 50.0,
            factor: 2.0,
            tolerance: 0.05,
            max_rate: 1_000_000.0,
            step_seconds: 5.0,
            min_achieved_ratio: 0.99,
            slo_p99_ms: 1000.0,
            max_error_rate: 0.01,
            max_steps: 30,
        }
    }
}

impl Settings {
    /// Why a step broke, or `None` when it held.
    pub fn broken(&self, step: &Step) -> Option<&'static str> {
        if step.achieved_ratio < self.min_achieved_ratio {
            Some("achieved below the minimum ratio of offered")
        } else if step.p99_ms > self.slo_p99_ms {
            Some("p99 over the SLO")
        } else if step.error_rate > self.max_error_rate {
            Some("error rate over the limit")
        } else if step.target_cpu_fraction.is_some_and(|f| f >= 0.9) {
            Some("the target's CPU at 90% of its limit")
        } else if step.target_memory_fraction.is_some_and(|f| f >= 0.9) {
            Some("the target's memory at 90% of its limit")
        } else {
            None
        }
    }

    /// Settings that cannot search.
    pub fn check(&self) -> Result<(), String> {
        let ok = self.start_rate > 0.0
            && self.factor > 1.0
            && self.tolerance > 0.0
            && self.max_rate >= self.start_rate
            && self.step_seconds > 0.0
            && self.max_steps >= 1;
        if ok {
            Ok(())
        } else {
            Err("capacity: needs start-rate > 0, factor > 1, tolerance > 0, max-rate >= start-rate, step-seconds > 0, max-steps >= 1".into())
        }
    }
}

/// The search's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Capacity {
    /// The highest rate that held (0 when even the first step broke).
    pub sustainable_rate: f64,
    /// The lowest rate that broke (none when `max-rate` held).
    pub broken_rate: Option<f64>,
    /// Every step, in the order run, with why it broke.
    pub steps: Vec<(Step, Option<String>)>,
}

/// Runs the search with `probe` measuring one step at a rate.
pub fn search(settings: &Settings, mut probe: impl FnMut(f64) -> Step) -> Capacity {
    let mut steps = Vec::new();
    let mut held: f64 = 0.0;
    let mut broke: Option<f64> = None;
    let mut rate = settings.start_rate;
    for _ in 0..settings.max_steps {
        let step = probe(rate);
        let why = settings.broken(&step);
        steps.push((step, why.map(str::to_owned)));
        match why {
            None => held = held.max(rate),
            Some(_) => broke = Some(broke.map_or(rate, |b: f64| b.min(rate))),
        }
        rate = match broke {
            // Stepping up.
            None if rate >= settings.max_rate => break,
            None => (rate * settings.factor).min(settings.max_rate),
            // Bisecting: stop when the bracket is narrow enough (or nothing held at all).
            Some(b) if held == 0.0 || b / held <= 1.0 + settings.tolerance => break,
            Some(b) => (held + b) / 2.0,
        };
    }
    Capacity { sustainable_rate: held, broken_rate: broke, steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated target that holds up to `capacity` iterations/s and then falls behind.
    fn target(capacity: f64) -> impl FnMut(f64) -> Step {
        move |rate| Step {
            rate,
            achieved_ratio: (capacity / rate).min(1.0),
            p99_ms: if rate <= capacity { 20.0 } else { 5000.0 },
            error_rate: 0.0,
            target_cpu_fraction: None,
            target_memory_fraction: None,
        }
    }

    #[test]
    fn finds_the_capacity_within_the_tolerance() {
        for capacity in [73.0, 437.0, 1000.0, 12_345.0] {
            let settings = Settings { start_rate: 50.0, tolerance: 0.05, ..Settings::default() };
            let found = search(&settings, target(capacity));
            let broken = found.broken_rate.unwrap_or(f64::INFINITY);
            assert!(found.sustainable_rate <= capacity && capacity < broken, "{capacity}: {found:?}");
            assert!(broken / found.sustainable_rate <= 1.05 + 1e-9, "{capacity}: {found:?}");
            assert!(found.steps.len() <= settings.max_steps);
        }
    }

    #[test]
    fn edges_are_reported_not_guessed() {
        // Nothing holds: sustainable 0, one step.
        let found = search(&Settings::default(), target(1.0));
        assert_eq!((found.sustainable_rate, found.steps.len()), (0.0, 1));
        // Everything holds up to max-rate: no broken rate.
        let settings = Settings { max_rate: 400.0, ..Settings::default() };
        let found = search(&settings, target(1e9));
        assert_eq!((found.sustainable_rate, found.broken_rate), (400.0, None));
        // Errors break a step too.
        let settings = Settings::default();
        let found = search(&settings, |rate| Step {
            rate,
            achieved_ratio: 1.0,
            p99_ms: 1.0,
            error_rate: if rate > 150.0 { 0.5 } else { 0.0 },
            target_cpu_fraction: None,
            target_memory_fraction: None,
        });
        assert!(found.sustainable_rate <= 150.0 && found.sustainable_rate > 140.0, "{found:?}");
        // A target past 90% of its CPU budget breaks a step, whatever else holds.
        let found = search(&settings, |rate| Step {
            rate,
            achieved_ratio: 1.0,
            p99_ms: 1.0,
            error_rate: 0.0,
            target_cpu_fraction: Some(rate / 500.0),
            target_memory_fraction: Some(0.1),
        });
        assert!(found.sustainable_rate < 450.0 && found.sustainable_rate > 420.0, "{found:?}");
        assert!(found.steps.iter().any(|(_, why)| why.is_some()));
        assert!(Settings { factor: 1.0, ..Settings::default() }.check().is_err());
    }
}
