//! Figures a test records itself: latencies (HDR histogram → p50/p90/p95/p99/max/mean),
//! throughputs and named values, through the [`Metrics`] fixture.
//!
//! ```ignore
//! #[rh::test(e2e)]
//! fn delivers(metrics: &rh::Metrics) {
//!     let started = std::time::Instant::now();
//!     /* export */
//!     metrics.record_latency("export", started.elapsed());
//!     metrics.set("spans_delivered", 100.0);        // → reliability_spans_delivered
//!     metrics.record_throughput("export", 100, started.elapsed());
//! }
//! ```
//!
//! They reach `report.json`, JUnit properties, `metrics.prom` and the Pushgateway.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::fixture::{BoxError, Fixture, Setup};

/// Latency percentiles of one operation, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Everything a test recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Latency summaries by operation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, LatencySummary>,
    /// Throughput by operation, per second.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub throughput: BTreeMap<String, f64>,
    /// Named values (counters and gauges), e.g. `spans_delivered`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
}

impl Figures {
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.latency.is_empty() && self.throughput.is_empty() && self.values.is_empty()
    }
}

/// An attempt's [`Figures`], allocated only when the test recorded some: most tests record
/// none, and three empty maps in every kept attempt were 64 bytes each (640 KB for 10,000).
/// Reads go through `Deref` (to an empty `Figures` when none was recorded); the first write
/// through `DerefMut` allocates. Serialized exactly as `Figures`.
#[derive(Clone, Default)]
pub struct SparseFigures(Option<Box<Figures>>);

static NO_FIGURES: Figures = Figures { latency: BTreeMap::new(), throughput: BTreeMap::new(), values: BTreeMap::new() };

impl std::ops::Deref for SparseFigures {
    type Target = Figures;
    fn deref(&self) -> &Figures {
        self.0.as_deref().unwrap_or(&NO_FIGURES)
    }
}

impl std::ops::DerefMut for SparseFigures {
    fn deref_mut(&mut self) -> &mut Figures {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<Figures> for SparseFigures {
    fn from(figures: Figures) -> SparseFigures {
        SparseFigures((!figures.is_empty()).then(|| Box::new(figures)))
    }
}

/// Equal when the figures are: none recorded equals an empty `Figures` written to.
impl PartialEq for SparseFigures {
    fn eq(&self, other: &SparseFigures) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for SparseFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for SparseFigures {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SparseFigures {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SparseFigures, D::Error> {
        Figures::deserialize(deserializer).map(SparseFigures::from)
    }
}

/// Names the harness's own series use: a value may not be named so.
const RESERVED: &[&str] = &["tests", "latency_seconds", "throughput_per_second"];
const RESERVED_PREFIXES: &[&str] = &["test_", "run_"];

/// Checks a value name: it becomes the metric `reliability_<name>`.
pub fn check_value_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!(
            "value name {name:?} must be lowercase letters, digits and `_` (it becomes reliability_{name})"
        ));
    }
    if RESERVED.contains(&name) || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(format!(
            "value name {name:?} would collide with the harness's own series; reserved: {}, {}*",
            RESERVED.join(", "),
            RESERVED_PREFIXES.join("*, ")
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Recorder {
    latency: BTreeMap<String, Histogram<u64>>,
    throughput: BTreeMap<String, f64>,
    values: BTreeMap<String, f64>,
}

/// The test's metrics context: a test-scoped fixture (take `&Metrics`).
#[derive(Default)]
pub struct Metrics {
    recorder: Mutex<Recorder>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("figures", &self.figures()).finish()
    }
}

/// Latencies are kept in microseconds from 1 µs to one hour, 3 significant digits.
const MAX_MICROS: u64 = 3_600_000_000;

impl Metrics {
    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one latency sample of `operation`.
    pub fn record_latency(&self, operation: &str, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut recorder = self.recorder();
        // The operation's name is copied once, when its histogram is made: a test records in
        // a loop, and a `String` per sample was most of the cost (benches/instructions.rs).
        if let Some(histogram) = recorder.latency.get_mut(operation) {
            histogram.saturating_record(micros);
            return;
        }
        let mut histogram =
            Histogram::new_with_bounds(1, MAX_MICROS, 3).unwrap_or_else(|e| panic!("histogram bounds: {e}"));
        histogram.saturating_record(micros);
        recorder.latency.insert(operation.to_string(), histogram);
    }

    /// Records that `count` operations took `elapsed` (stored per second).
    pub fn record_throughput(&self, operation: &str, count: u64, elapsed: Duration) {
        let per_second = if elapsed.is_zero() { 0.0 } else { count as f64 / elapsed.as_secs_f64() };
        self.recorder().throughput.insert(operation.to_string(), per_second);
    }

    /// Sets a named value (a gauge). Panics (failing the test) on an invalid name.
    pub fn set(&self, name: &str, value: f64) {
        check_value_name(name).unwrap_or_else(|e| panic!("{e}"));
        self.recorder().values.insert(name.to_string(), value);
    }

    /// Adds to a named value (a counter). Panics (failing the test) on an invalid name.
    pub fn add(&self, name: &str, delta: f64) {
        check_value_name(name).unwrap_or_else(|e| panic!("{e}"));
        *self.recorder().values.entry(name.to_string()).or_default() += delta;
    }

    /// What was recorded so far, summarised.
    pub fn figures(&self) -> Figures {
        let recorder = self.recorder();
        let secs = |micros: u64| micros as f64 / 1e6;
        let latency = recorder
            .latency
            .iter()
            .map(|(op, h)| {
                let summary = LatencySummary {
                    count: h.len(),
                    mean: h.mean() / 1e6,
                    p50: secs(h.value_at_quantile(0.50)),
                    p90: secs(h.value_at_quantile(0.90)),
                    p95: secs(h.value_at_quantile(0.95)),
                    p99: secs(h.value_at_quantile(0.99)),
                    max: secs(h.max()),
                };
                (op.clone(), summary)
            })
            .collect();
        Figures { latency, throughput: recorder.throughput.clone(), values: recorder.values.clone() }
    }
}

impl Fixture for Metrics {
    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        Ok(Metrics::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_within_hdr_precision() {
        let metrics = Metrics::default();
        for ms in 1..=100u64 {
            metrics.record_latency("export", Duration::from_millis(ms));
        }
        let l = metrics.figures().latency["export"];
        assert_eq!(l.count, 100);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002;
        assert!(close(l.p50, 0.050) && close(l.p90, 0.090) && close(l.p99, 0.099), "{l:?}");
        assert!(close(l.max, 0.100) && close(l.mean, 0.0505), "{l:?}");
    }

    #[test]
    fn values_and_throughput() {
        let metrics = Metrics::default();
        metrics.add("spans_generated", 10.0);
        metrics.add("spans_generated", 5.0);
        metrics.set("delivery_ratio", 0.5);
        metrics.record_throughput("export", 1000, Duration::from_millis(500));
        let f = metrics.figures();
        assert_eq!(f.values["spans_generated"], 15.0);
        assert_eq!(f.values["delivery_ratio"], 0.5);
        assert_eq!(f.throughput["export"], 2000.0);
    }

    #[test]
    fn value_names_are_metric_safe_and_not_reserved() {
        assert!(check_value_name("spans_delivered").is_ok());
        for bad in ["Spans", "spans-delivered", "", "1x", "tests", "test_duration_seconds", "run_info"] {
            assert!(check_value_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sparse_figures_allocate_only_when_recorded_and_serialize_as_figures() {
        let none = SparseFigures::from(Figures::default());
        assert!(none.0.is_none(), "nothing recorded, nothing allocated");
        assert!(none.is_empty());
        let mut some = Figures::default();
        some.values.insert("spans".into(), 3.5);
        some.throughput.insert("export".into(), 12.0);
        let sparse = SparseFigures::from(some.clone());
        assert!(sparse.0.is_some());
        for (a, b) in [(&none, Figures::default()), (&sparse, some.clone())] {
            assert_eq!(serde_json::to_string(a).unwrap(), serde_json::to_string(&b).unwrap());
            let back: SparseFigures = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
            assert_eq!(*back, b);
            assert_eq!(back.0.is_none(), b.is_empty());
        }
        // Written through DerefMut: allocated, and equal to the figures written.
        let mut written = SparseFigures::default();
        written.values.insert("spans".into(), 3.5);
        written.throughput.insert("export".into(), 12.0);
        assert_eq!(written, sparse);
        assert_ne!(written, none);
        // An allocated but empty one equals none recorded.
        let mut emptied = SparseFigures::default();
        emptied.values.clear();
        assert!(emptied.0.is_some());
        assert_eq!(emptied, none);
    }
}
