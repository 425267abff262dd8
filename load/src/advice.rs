//! Drop analysis and recommendations, from a run's summary alone (pure): what the responses
//! and counts say to change — the scale tester's analysis script, automated.
//!
//! - 413 answers → the batch size that fits under the largest request the target accepted;
//! - 429/503 → the target throttled: lower the rate, honour `Retry-After`;
//! - the SDK's queue dropped spans → the `OTEL_BSP_MAX_QUEUE_SIZE` the offered rate needs;
//! - missed iterations or a late generator while the target answered fast → the run was
//!   generator-bound: its figures are the generator's limit, not the target's capacity;
//! - timeouts and connection errors → the target was unreachable or overloaded.

use serde::Serialize;

use crate::exec::Summary;
use crate::run::Status;

/// One finding and what to do about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Advice {
    /// A stable code: `batch_too_large`, `throttled`, `queue_overflow`, `generator_bound`,
    /// `unreachable`.
    pub code: &'static str,
    /// The finding and the recommendation, in words with the figures.
    pub text: String,
    /// The setting recommended, when there is one: (name, value).
    pub setting: Option<(&'static str, u64)>,
}

fn iterations(s: &Summary, status: Status) -> u64 {
    s.iterations.by_status.get(&status).map_or(0, |t| t.iterations)
}

/// The findings for a run; empty when nothing calls for a change.
pub fn advise(s: &Summary) -> Vec<Advice> {
    let mut out = Vec::new();
    let spans = s.spans.generated.max(1);
    let bytes_per_span = s.bytes as f64 / spans as f64;
    let too_large = iterations(s, Status::TooLarge);
    if too_large > 0 {
        let limit = s.request_bytes.largest_accepted.max(1) as f64;
        let batch = (limit / bytes_per_span.max(1.0)).floor().max(1.0) as u64;
        out.push(Advice {
            code: "batch_too_large",
            text: format!(
                "{too_large} requests were refused as too large (413; the smallest {} bytes) while requests up to {} \
                 bytes were accepted. At {bytes_per_span:.0} bytes per span, batches of at most {batch} spans fit: set \
                 OTEL_BSP_MAX_EXPORT_BATCH_SIZE={batch} (or smaller traces per request).",
                s.request_bytes.smallest_too_large.unwrap_or(0),
                s.request_bytes.largest_accepted
            ),
            setting: Some(("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", batch)),
        });
    }
    let throttled = iterations(s, Status::TooManyRequests) + iterations(s, Status::Unavailable);
    if throttled > 0 {
        let ok = iterations(s, Status::Ok) as f64 / s.elapsed_s.max(1e-9);
        out.push(Advice {
            code: "throttled",
            text: format!(
                "The target throttled {throttled} requests (429/503). It answered 2xx at {ok:.1} requests/s: offer less \
                 than that, and have clients honour Retry-After with exponential backoff."
            ),
            setting: None,
        });
    }
    if let Some(dropped) = s.spans.dropped.get("queue_full").copied().filter(|d| *d > 0) {
        let offered_per_s = s.spans.generated as f64 / s.elapsed_s.max(1e-9);
        // Enough for one scheduled delay (1 s here) and one export at the offered rate, twice over.
        let need = (offered_per_s * 2.0 * 2.0).ceil() as u64;
        let size = need.next_power_of_two().max(2048);
        out.push(Advice {
            code: "queue_overflow",
            text: format!(
                "The SDK's queue dropped {dropped} spans (full). At {offered_per_s:.0} spans/s offered, set \
                 OTEL_BSP_MAX_QUEUE_SIZE={size} (and check that exports keep up: p99 of a request was {:.1} ms).",
                s.latency_ms.p99
            ),
            setting: Some(("OTEL_BSP_MAX_QUEUE_SIZE", size)),
        });
    }
    let unreachable = iterations(s, Status::Timeout) + iterations(s, Status::ConnectionError);
    if unreachable > 0 {
        out.push(Advice {
            code: "unreachable",
            text: format!(
                "{unreachable} requests timed out or lost their connection: the target was unreachable or \
                 overloaded; check its health and capacity (load capacity) before trusting throughput figures."
            ),
            setting: None,
        });
    }
    let errors =
        s.iterations.by_status.iter().filter(|(st, _)| **st != Status::Ok).map(|(_, t)| t.iterations).sum::<u64>();
    let late = s.generator_lateness_ms.p99 > 10.0;
    if (s.iterations.missed > 0 || late) && errors == 0 && s.latency_ms.p50 < 100.0 {
        out.push(Advice {
            code: "generator_bound",
            text: format!(
                "The generator could not keep up ({} iterations missed, its p99 lateness {:.1} ms) while the target \
                 answered in {:.1} ms (p50): this run measured the generator, not the target. Raise max-in-flight, \
                 give the generator more CPU, or split the load across segments.",
                s.iterations.missed, s.generator_lateness_ms.p99, s.latency_ms.p50
            ),
            setting: None,
        });
    }
    let r = &s.resources;
    if r.generator_cores_available > 0.0 && r.generator_peak_cpu_cores >= 0.9 * r.generator_cores_available {
        out.push(Advice {
            code: "generator_cpu",
            text: format!(
                "The generator used {:.2} of its {:.0} cores at its peak: it was CPU-bound, so these figures are \
                 not the target's capacity. Give it more cores or split the load across segments.",
                r.generator_peak_cpu_cores, r.generator_cores_available
            ),
            setting: None,
        });
    }
    for alert in r.alerts.iter().filter(|a| a.level == "critical") {
        out.push(Advice {
            code: "target_critical",
            text: format!(
                "The target's {} reached {:.0}% of its limit at {:.1} s: this rate is past what it can take within \
                 its budget.",
                alert.resource,
                alert.fraction * 100.0,
                alert.t
            ),
            setting: None,
        });
    }
    out
}

/// `recommendations.md`.
pub fn markdown(plan: &str, advice: &[Advice]) -> String {
    let mut out = format!("# Recommendations: {plan}\n\n");
    if advice.is_empty() {
        out.push_str(
            "Nothing to change: no span dropped, no request refused or throttled, and the generator kept up.\n",
        );
    }
    for a in advice {
        out.push_str(&format!("- **{}**: {}\n", a.code, a.text));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A clean run's summary, for tests.
    pub(crate) fn summary() -> crate::exec::Summary {
        super::tests::base()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::exec::{Iterations, Quantiles, RequestBytes, Spans};
    use crate::run::Tally;

    fn q(p: f64) -> Quantiles {
        Quantiles { p50: p, p90: p, p95: p, p99: p, max: p, mean: p }
    }

    /// 1,000 iterations of 10 spans, 1 KB each, all 2xx in 10 s, generator on time.
    pub(super) fn base() -> Summary {
        Summary {
            schema: 1,
            plan: "t".into(),
            pipeline: "raw",
            seed: 0,
            target: "embedded".into(),
            started_unix_ms: 0,
            elapsed_s: 10.0,
            interrupted: false,
            segment: crate::run::Segment::default(),
            iterations: Iterations {
                offered: 1000,
                started: 1000,
                missed: 0,
                by_status: BTreeMap::from([(Status::Ok, Tally { iterations: 1000, spans: 10_000 })]),
            },
            spans: Spans {
                generated: 10_000,
                accepted: 10_000,
                rejected: 0,
                dropped: BTreeMap::new(),
                failed: BTreeMap::new(),
                unfinished: 0,
                target_accepted: None,
            },
            bytes: 10_000_000,
            request_bytes: RequestBytes { largest_accepted: 10_000, smallest_too_large: None },
            latency_ms: q(5.0),
            generator_lateness_ms: q(0.1),
            per_second: Vec::new(),
            scenarios: Vec::new(),
            thresholds: Vec::new(),
            client: None,
            recommendations: Vec::new(),
            resources: crate::watch::Watched { generator_cores_available: 2.0, ..Default::default() },
            folder: PathBuf::new(),
        }
    }

    fn codes(s: &Summary) -> Vec<&'static str> {
        advise(s).into_iter().map(|a| a.code).collect()
    }

    #[test]
    fn a_clean_run_needs_nothing() {
        assert!(advise(&base()).is_empty());
        assert_eq!(markdown("t", &[]).lines().count(), 3);
    }

    #[test]
    fn each_finding_has_its_code_and_figures() {
        let mut s = base();
        s.iterations.by_status.insert(Status::TooLarge, Tally { iterations: 7, spans: 70 });
        s.request_bytes = RequestBytes { largest_accepted: 5_000, smallest_too_large: Some(20_000) };
        let advice = advise(&s);
        assert_eq!(advice.iter().map(|a| a.code).collect::<Vec<_>>(), ["batch_too_large"]);
        // 5,000 bytes accepted at 1,000 bytes per span: batches of 5.
        assert_eq!(advice[0].setting, Some(("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 5)));

        let mut s = base();
        s.iterations.by_status.insert(Status::TooManyRequests, Tally { iterations: 3, spans: 30 });
        s.iterations.by_status.insert(Status::Timeout, Tally { iterations: 1, spans: 10 });
        assert_eq!(codes(&s), ["throttled", "unreachable"]);

        let mut s = base();
        s.spans.dropped.insert("queue_full".into(), 500);
        let advice = advise(&s);
        assert_eq!(advice[0].code, "queue_overflow");
        // 1,000 spans/s offered → 4,000 → 4096.
        assert_eq!(advice[0].setting, Some(("OTEL_BSP_MAX_QUEUE_SIZE", 4096)));

        let mut s = base();
        s.iterations.missed = 40;
        assert_eq!(codes(&s), ["generator_bound"]);
        // Missed iterations with a slow, erroring target: the target's limit, not the generator's.
        s.iterations.by_status.insert(Status::Unavailable, Tally { iterations: 100, spans: 1000 });
        s.latency_ms = q(900.0);
        assert_eq!(codes(&s), ["throttled"]);

        let mut s = base();
        s.resources.generator_peak_cpu_cores = 1.95;
        s.resources.alerts.push(crate::watch::Alert { t: 3.0, level: "critical", resource: "memory", fraction: 0.93 });
        s.resources.alerts.push(crate::watch::Alert { t: 2.0, level: "warning", resource: "memory", fraction: 0.81 });
        assert_eq!(codes(&s), ["generator_cpu", "target_critical"]);
    }
}
