//! What the SDK reliability suites share: a testbed backend of their own per test (its side
//! channels' fault plans are global, so tests must not share one), the reference client set up
//! as a production SDK would be, and the backend's own counts to check the client's against.
//!
//! The suites talk to the client only through [`SdkUnderTest`]; [`reference`] builds this
//! crate's. Checks that must fail on a client without a fix are functions of `&dyn
//! SdkUnderTest`, so a test can run them on a variant with the fix switched off.

use std::time::Duration;

use reliability_client::ClientConfig;
use reliability_client::retry::RetryPolicy;
use reliability_client::sdk::{ReferenceSdk, SdkUnderTest};
use reliability_client::side::SideConfig;
use serde_json::Value;
use testbed::{Backend, Config};

use crate::fixtures::off_runtime;

/// The project the reference client's spans land in.
pub const PROJECT: &str = "sdk-suite";

/// A backend on loopback for one test.
pub fn backend() -> Result<Backend, String> {
    Backend::start(Config::default()).map_err(|e| e.to_string())
}

/// The reference client against `backend`, as a production SDK would run it (queue 8,192,
/// export retries on, attribute values cut at 64 KiB, side channels with retries); `change`
/// adjusts it.
pub fn reference(
    backend: &Backend,
    change: impl FnOnce(&mut ClientConfig, &mut SideConfig),
) -> Result<Box<dyn SdkUnderTest>, String> {
    let (client, side) = configs(backend, change);
    let client = ReferenceSdk::start(&client, side).map_err(|e| e.to_string())?;
    Ok(Box::new(client))
}

fn configs(backend: &Backend, change: impl FnOnce(&mut ClientConfig, &mut SideConfig)) -> (ClientConfig, SideConfig) {
    let mut client = ClientConfig {
        endpoint: backend.traces_url(),
        service_name: PROJECT.into(),
        scheduled_delay_ms: 100,
        export_timeout_ms: 30_000,
        export_max_attempts: 5,
        shutdown_timeout_ms: 60_000,
        max_attribute_bytes: 65_536,
        ..ClientConfig::default()
    };
    let mut side = SideConfig {
        base_url: backend.query_url(),
        retry: RetryPolicy { base: Duration::from_millis(50), ..RetryPolicy::default() },
        shutdown_timeout: Duration::from_secs(120),
        ..SideConfig::default()
    };
    change(&mut client, &mut side);
    (client, side)
}

/// The reference client, serving its health for scraping on a loopback port of its own
/// ([`SdkUnderTest::metrics_url`]).
pub fn reference_serving(
    backend: &Backend,
    change: impl FnOnce(&mut ClientConfig, &mut SideConfig),
) -> Result<std::sync::Arc<dyn SdkUnderTest>, String> {
    let (client, side) = configs(backend, change);
    let client = ReferenceSdk::start_serving(&client, side, "127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(client)
}

/// A GET of `url`, as text.
pub fn get_text(url: &str) -> Result<String, String> {
    match request_text(reqwest::Method::GET, url, None)? {
        (200, text) => Ok(text),
        (status, text) => Err(format!("{url} answered {status}: {text}")),
    }
}

/// The samples of a Prometheus text exposition, by series (`name` or `name{labels}`, as
/// written); comments and unparsable lines are left out.
pub fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// One series of the backend's own `/metrics` (0 when absent): its counts survive
/// [`delete_project`].
pub fn backend_metric(backend: &Backend, series: &str) -> Result<f64, String> {
    let text = get_text(&format!("{}/metrics", backend.base_url()))?;
    Ok(samples(&text).get(series).copied().unwrap_or(0.0))
}

/// Deletes the suite's project from the backend, giving back the heap its stored spans took
/// (a heap figure of the client alone is taken right after).
pub fn delete_project(backend: &Backend) -> Result<(), String> {
    let url = format!("{}/projects/{PROJECT}", backend.query_url());
    match request(reqwest::Method::DELETE, &url, None)? {
        (200 | 204 | 404, _) => Ok(()),
        (status, body) => Err(format!("deleting {PROJECT} answered {status}: {body}")),
    }
}

fn request_text(method: reqwest::Method, url: &str, body: Option<&Value>) -> Result<(u16, String), String> {
    off_runtime(|| {
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let mut request = client.request(method, url);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        Ok::<_, reqwest::Error>((status, response.text().unwrap_or_default()))
    })
    .map_err(|e| format!("{url}: {e}"))
}

fn request(method: reqwest::Method, url: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
    let (status, text) = request_text(method, url, body)?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Sets the fault plan of `endpoint` (`traces`, `evaluations` or `tags`).
pub fn set_plan(backend: &Backend, endpoint: &str, plan: &Value) -> Result<(), String> {
    let url = format!("{}/faults?endpoint={endpoint}", backend.query_url());
    match request(reqwest::Method::PUT, &url, Some(plan))? {
        (200, _) => Ok(()),
        (status, body) => Err(format!("setting the {endpoint} plan answered {status}: {body}")),
    }
}

/// The backend's ledger entries of one endpoint.
pub fn ledger(backend: &Backend, endpoint: &str) -> Result<Vec<Value>, String> {
    let url = format!("{}/ledger?endpoint={endpoint}", backend.query_url());
    let (_, body) = request(reqwest::Method::GET, &url, None)?;
    Ok(body["entries"].as_array().cloned().unwrap_or_default())
}

/// The backend's counts of a side channel (`evaluations` or `tags`).
pub fn side_stats(backend: &Backend, channel: &str) -> Result<Value, String> {
    let (_, body) = request(reqwest::Method::GET, &format!("{}/side/stats", backend.query_url()), None)?;
    Ok(body[channel].clone())
}

/// The backend's counts of the suite's span project.
pub fn span_stats(backend: &Backend) -> Result<Value, String> {
    let (_, body) = request(reqwest::Method::GET, &format!("{}/projects/{PROJECT}/stats", backend.query_url()), None)?;
    Ok(body)
}

/// A GET of the query API, as JSON.
pub fn query(backend: &Backend, path_and_query: &str) -> Result<Value, String> {
    Ok(request(reqwest::Method::GET, &format!("{}/{path_and_query}", backend.query_url()), None)?.1)
}

/// Live heap bytes now (the harness's counting allocator): the process's, so a test that
/// asserts on it runs in process isolation.
pub fn live_heap() -> Result<u64, String> {
    reliability_harness::measure::counters()
        .map(|c| c.live_bytes)
        .ok_or_else(|| "the harness's counting allocator is not installed in this binary".into())
}

/// Polls until every span the client was given has left its queue (bounded by `within`).
pub fn drained(client: &dyn SdkUnderTest, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        let s = client.health().spans;
        if s.queued == 0 && s.in_export == 0 && s.exported + s.failed + s.dropped == s.ended {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spans the backend accepted, from its own counter (which survives [`delete_project`]).
pub fn accepted_by_backend(backend: &Backend) -> Result<u64, String> {
    Ok(backend_metric(backend, "testbed_spans_accepted_total")? as u64)
}

/// `Err` with `what` unless `ok`.
pub fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// The shorthand the checks use for a client.
pub type Sdk<'a> = &'a dyn SdkUnderTest;

/// Records the client's counts as the test's figures (`reliability_sdk_*` in report.json,
/// JUnit and the Pushgateway): the KPIs the SDK suites report besides caller latencies. The
/// drop rate is `sdk_span_drop_rate`, the figure the drop-rate alert reads: a test that
/// overloads the client on purpose records it as `sdk_span_drop_rate_overload` instead
/// ([`record_overloaded`]).
pub fn record_health(metrics: &reliability_harness::Metrics, h: &reliability_client::sdk::SdkHealth) {
    record_as(metrics, h, "sdk_span_drop_rate");
}

/// [`record_health`] for a test that drops spans by design (a held or overrun queue).
pub fn record_overloaded(metrics: &reliability_harness::Metrics, h: &reliability_client::sdk::SdkHealth) {
    record_as(metrics, h, "sdk_span_drop_rate_overload");
}

fn record_as(metrics: &reliability_harness::Metrics, h: &reliability_client::sdk::SdkHealth, drop_rate: &str) {
    let s = &h.spans;
    let side = &h.side;
    let m = &h.metadata;
    for (name, value) in [
        ("sdk_spans_ended", s.ended),
        ("sdk_spans_exported", s.exported),
        ("sdk_spans_dropped", s.dropped),
        ("sdk_spans_failed", s.failed),
        ("sdk_export_retries", s.export_retries),
        ("sdk_evaluations_enqueued", side.evaluations_enqueued),
        ("sdk_evaluations_dropped", side.evaluations_dropped),
        ("sdk_evaluations_sent", side.evaluations_sent),
        ("sdk_evaluations_failed", side.evaluations_failed),
        ("sdk_tags_buffered", side.tags_buffered),
        ("sdk_tags_dropped", side.tags_dropped),
        ("sdk_tags_flushed", side.tags_flushed),
        ("sdk_api_errors", side.api_errors.values().sum()),
        ("sdk_metadata_peak_held", m.peak_held),
        ("sdk_metadata_evicted", m.evicted + m.expired),
    ] {
        metrics.set(name, value as f64);
    }
    let rate = if s.ended == 0 { 0.0 } else { s.dropped as f64 / s.ended as f64 };
    metrics.set(drop_rate, rate);
}

/// Shuts the client down and records its final counts as figures ([`record_health`]).
pub fn finish(client: &dyn SdkUnderTest, metrics: &reliability_harness::Metrics) -> reliability_client::sdk::SdkHealth {
    let health = client.shutdown();
    record_health(metrics, &health);
    health
}

/// [`finish`] for a test that drops spans by design ([`record_overloaded`]).
pub fn finish_overloaded(
    client: &dyn SdkUnderTest,
    metrics: &reliability_harness::Metrics,
) -> reliability_client::sdk::SdkHealth {
    let health = client.shutdown();
    record_overloaded(metrics, &health);
    health
}
