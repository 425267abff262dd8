//! A run's figures pushed to a Prometheus Pushgateway (`load run --pushgateway URL`), one
//! group per plan and segment — `/metrics/job/reliability-load/plan/<plan>/segment/<i>of<N>`
//! plus any `--pushgateway-label`s — so N generators of one plan never overwrite each other and
//! a dashboard sums them. Delivery is the harness's (one deadline for every retry; credentials
//! from `RELIABILITY_PUSHGATEWAY_TOKEN` or `_USERNAME`/`_PASSWORD`, never printed).
//!
//! Every sample is a gauge of this run: counts of iterations and spans by fate, bytes, latency
//! quantiles, achieved rate, thresholds breached, the watched peaks and when the run ended.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use reliability_harness::config::options::PushOptions;
use reliability_harness::publish::{Group, grouping_path, push};

use crate::exec::Summary;
use crate::report::status_name;

/// The Pushgateway job of load runs.
pub const JOB: &str = "reliability-load";

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP reliability_load_{name} {help}\n# TYPE reliability_load_{name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(self.0, "reliability_load_{name}{labels} {value}");
    }
}

/// The text exposition of a run's figures (pure).
pub fn exposition(s: &Summary, ended_unix_s: f64) -> String {
    let mut e = Exposition(String::new());
    let it = &s.iterations;
    e.family("iterations", "Iterations of the run by what became of them (offered = started + missed).");
    for (kind, n) in [("offered", it.offered), ("started", it.started), ("missed", it.missed)] {
        e.sample("iterations", &[("kind", kind)], n as f64);
    }
    e.family("iterations_ended", "Started iterations by how they ended.");
    for (status, tally) in &it.by_status {
        e.sample("iterations_ended", &[("status", &status_name(status))], tally.iterations as f64);
    }
    let sp = &s.spans;
    e.family("spans", "Spans by fate (generated = accepted + rejected + dropped + failed + unfinished).");
    e.sample("spans", &[("fate", "generated")], sp.generated as f64);
    e.sample("spans", &[("fate", "accepted")], sp.accepted as f64);
    e.sample("spans", &[("fate", "rejected")], sp.rejected as f64);
    for (reason, n) in &sp.dropped {
        e.sample("spans", &[("fate", "dropped"), ("reason", reason)], *n as f64);
    }
    for (reason, n) in &sp.failed {
        e.sample("spans", &[("fate", "failed"), ("reason", reason)], *n as f64);
    }
    e.sample("spans", &[("fate", "unfinished")], sp.unfinished as f64);
    if let Some(n) = sp.target_accepted {
        e.family("target_accepted_spans", "Spans the target itself counted as accepted.");
        e.sample("target_accepted_spans", &[], n as f64);
    }
    e.family("request_bytes", "Request bytes sent.");
    e.sample("request_bytes", &[], s.bytes as f64);
    let ended: u64 = it.by_status.values().map(|t| t.iterations).sum();
    let l = &s.latency_ms;
    e.0.push_str(
        "# HELP reliability_load_latency_seconds Latency from each iteration's due time (quantile 1 is the maximum).\n\
         # TYPE reliability_load_latency_seconds summary\n",
    );
    for (q, ms) in [("0.5", l.p50), ("0.9", l.p90), ("0.95", l.p95), ("0.99", l.p99), ("1", l.max)] {
        e.sample("latency_seconds", &[("quantile", q)], ms / 1e3);
    }
    e.sample("latency_seconds_sum", &[], l.mean * ended as f64 / 1e3);
    e.sample("latency_seconds_count", &[], ended as f64);
    e.family("elapsed_seconds", "From the first due time until the last iteration ended.");
    e.sample("elapsed_seconds", &[], s.elapsed_s);
    e.family("accepted_spans_per_second", "Spans accepted per second of the run.");
    e.sample("accepted_spans_per_second", &[], sp.accepted as f64 / s.elapsed_s.max(1e-9));
    e.family("thresholds_breached", "The plan's thresholds that did not hold.");
    e.sample("thresholds_breached", &[], s.thresholds.iter().filter(|v| !v.passed).count() as f64);
    let r = &s.resources;
    e.family("peak_cpu_cores", "Peak CPU in cores, of the generator and of the watched target.");
    e.sample("peak_cpu_cores", &[("process", "generator")], r.generator_peak_cpu_cores);
    if let Some(cpu) = r.target_peak_cpu_cores {
        e.sample("peak_cpu_cores", &[("process", "target")], cpu);
    }
    if let Some(rss) = r.target_peak_rss_bytes {
        e.family("target_peak_rss_bytes", "Peak resident memory of the watched target.");
        e.sample("target_peak_rss_bytes", &[], rss as f64);
    }
    e.family("interrupted", "1 if the run was stopped before its last due time.");
    e.sample("interrupted", &[], f64::from(u8::from(s.interrupted)));
    e.family("last_run_timestamp_seconds", "When the run ended, Unix seconds.");
    e.sample("last_run_timestamp_seconds", &[], ended_unix_s);
    e.0
}

/// The group a run goes to.
pub fn group(s: &Summary, labels: &[(String, String)], ended_unix_s: f64) -> Group {
    let mut key = vec![
        ("plan".to_owned(), s.plan.clone()),
        ("segment".to_owned(), format!("{}of{}", s.segment.index, s.segment.count)),
    ];
    key.extend_from_slice(labels);
    Group { path: grouping_path(JOB, &key), body: exposition(s, ended_unix_s) }
}

/// Pushes a run's group to `url` within `timeout`; `Err` says why it was not delivered.
pub fn deliver(s: &Summary, url: &str, labels: &[(String, String)], timeout: Duration) -> Result<String, String> {
    let ended = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let group = group(s, labels, ended);
    let options = PushOptions {
        url: url.trim_end_matches('/').to_owned(),
        job: JOB.into(),
        timeout,
        retries: 3,
        labels: Vec::new(),
    };
    let env = |k: &str| std::env::var(k).ok();
    match push(&options, std::slice::from_ref(&group), &env, Instant::now() + timeout).pop() {
        None => Ok(group.path),
        Some((_, error)) => Err(error.to_string()),
    }
}
