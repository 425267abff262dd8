//! A plan, run: the target resolved (the embedded testbed, or a URL checked reachable before
//! the run starts), the generator played, the figures accounted and written to
//! `<out>/<UTC time>_<plan>/summary.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::plan::{Pipeline, Plan};
use crate::raw::Sender;
use crate::report::status_name;
use crate::run::{self, Figures, Second, Status, Tally};
use crate::sdk::SdkSender;
use crate::threshold::Verdict;
use crate::watch::{Watch, WatchSpec, Watched};
use reliability_client::Accounting;

/// Why a plan could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The plan asks for something this version cannot do yet, or a header's variable is unset.
    #[error("{0}")]
    Unsupported(String),
    /// The target did not accept a connection before the run.
    #[error("target {endpoint} is unreachable: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// Starting the embedded target or writing results failed.
    #[error("{0}")]
    Io(String),
}

/// Latency quantiles, milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Quantiles {
    fn of(h: &hdrhistogram::Histogram<u64>) -> Quantiles {
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1e3;
        let max = h.max() as f64 / 1e3;
        Quantiles { p50: q(0.5), p90: q(0.9), p95: q(0.95), p99: q(0.99), max, mean: h.mean() / 1e3 }
    }
}

/// Iterations: offered = started + missed; started = Σ by_status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Iterations {
    /// Due by the profile.
    pub offered: u64,
    /// Started at their due time (counted by the generator).
    pub started: u64,
    /// Due while every slot was busy (counted by the generator).
    pub missed: u64,
    /// Ended, by status (counted by the workers).
    pub by_status: BTreeMap<Status, Tally>,
}

/// Spans: generated = accepted + rejected + Σ dropped + Σ failed + unfinished.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spans {
    /// In started iterations (counted by the generator).
    pub generated: u64,
    /// In 2xx answers, less those refused in them.
    pub accepted: u64,
    /// Refused inside 2xx answers (OTLP partial success).
    pub rejected: u64,
    /// Never sent, by reason (`sdk`: `queue_full`, the SDK's own count).
    pub dropped: BTreeMap<String, u64>,
    /// Sent without a 2xx, by reason (`raw`: the status class; `sdk`: `export`).
    pub failed: BTreeMap<String, u64>,
    /// Still in the SDK when its bounded shutdown gave up (`sdk` only).
    pub unfinished: u64,
    /// What the target itself says it accepted, when it can be asked (the embedded testbed).
    pub target_accepted: Option<u64>,
}

/// Request sizes at the edges of what the target accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RequestBytes {
    /// The largest request answered 2xx.
    pub largest_accepted: u64,
    /// The smallest request answered 413.
    pub smallest_too_large: Option<u64>,
}

/// One scenario's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioSummary {
    /// Its name.
    pub name: String,
    /// Its weight in the mix.
    pub weight: f64,
    /// Iterations that ended.
    pub iterations: u64,
    /// Spans they sent.
    pub spans: u64,
    /// Request bytes.
    pub bytes: u64,
    /// By status.
    pub by_status: BTreeMap<Status, Tally>,
    /// From due time to end.
    pub latency_ms: Quantiles,
}

/// `summary.json`, schema 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The schema's version.
    pub schema: u32,
    /// The plan's name.
    pub plan: String,
    /// `raw` or `sdk`.
    pub pipeline: &'static str,
    /// The seed.
    pub seed: u64,
    /// Where the spans went (a URL, or `embedded`); never headers.
    pub target: String,
    /// Start, Unix milliseconds.
    pub started_unix_ms: u64,
    /// From the first due time until the last iteration ended, seconds.
    pub elapsed_s: f64,
    /// Stopped (Ctrl-C) before the last due time.
    pub interrupted: bool,
    /// This generator's share of the plan (`{"index": 0, "count": 1}` when it ran alone).
    pub segment: run::Segment,
    /// Iterations.
    pub iterations: Iterations,
    /// Spans.
    pub spans: Spans,
    /// Request bytes sent.
    pub bytes: u64,
    /// Request sizes at the edges of what the target accepted.
    pub request_bytes: RequestBytes,
    /// From each iteration's due time to its end.
    pub latency_ms: Quantiles,
    /// How late the generator was on its due times (a loaded generator shows here).
    pub generator_lateness_ms: Quantiles,
    /// Per second.
    pub per_second: Vec<Second>,
    /// Per scenario of the mix (`filler` without one).
    pub scenarios: Vec<ScenarioSummary>,
    /// The SDK pipeline's own accounting (`sdk` only).
    pub client: Option<Accounting>,
    /// What the watch saw of the target and the generator (series in `resource-usage.csv`).
    pub resources: Watched,
    /// Drop analysis and recommendations (also `recommendations.md`).
    pub recommendations: Vec<crate::advice::Advice>,
    /// The plan's thresholds, judged.
    pub thresholds: Vec<Verdict>,
    /// The results folder.
    #[serde(skip)]
    pub folder: PathBuf,
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (UTC; proleptic Gregorian, days-from-civil inverse).
pub fn utc_stamp(unix: u64) -> String {
    let (days, secs) = ((unix / 86_400) as i64, unix % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

fn reachable(endpoint: &str) -> Result<(), ExecError> {
    let unreachable = |reason: String| ExecError::Unreachable { endpoint: endpoint.to_owned(), reason };
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| {
        ExecError::Unsupported(format!("target {endpoint}: only http:// endpoints are supported yet"))
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&authority)
        .map_err(|e| unreachable(format!("cannot resolve {authority}: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(unreachable(last))
}

/// Runs `plan` (named `name`) and writes its results folder under `out`.
/// A plan's target and sender, ready to run.
struct Prepared {
    backend: Option<testbed::Backend>,
    url: String,
    service: String,
    headers: Vec<(String, String)>,
    names: Vec<(String, f64)>,
    sender: Sender,
}

impl Prepared {
    /// What the embedded target accepted for the service (none for other targets).
    fn target_accepted(&self) -> Option<u64> {
        self.backend.as_ref().map(|b| {
            let url = format!("{}/projects/{}/stats", b.query_url(), self.service);
            reqwest::blocking::get(url)
                .ok()
                .and_then(|r| r.bytes().ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["accepted"].as_u64())
                .unwrap_or(0)
        })
    }

    fn finish(self) {
        if let Some(backend) = self.backend {
            backend.shutdown();
        }
    }
}

/// Resolves the target (starting the embedded testbed, or checking a URL reachable), the
/// headers from their variables, and the mix.
fn prepare(plan: &Plan, name: &str) -> Result<Prepared, ExecError> {
    let mut headers = Vec::new();
    for (header, var) in &plan.target.headers {
        let value = std::env::var(var)
            .map_err(|_| ExecError::Unsupported(format!("header {header}: environment variable {var} is not set")))?;
        headers.push((header.clone(), value));
    }
    let mix = plan.mix().map_err(ExecError::Unsupported)?;
    let service = plan.service.clone().unwrap_or_else(|| format!("load-{name}"));
    let (backend, url) = if plan.target.endpoint == "embedded" {
        let config = testbed::Config {
            limits: testbed::Limits { max_spans: 50_000_000, max_bytes: 16 << 30 },
            ..testbed::Config::default()
        };
        let backend = testbed::Backend::start(config).map_err(|e| ExecError::Io(e.to_string()))?;
        let url = backend.traces_url();
        (Some(backend), url)
    } else {
        reachable(&plan.target.endpoint)?;
        (None, plan.target.endpoint.clone())
    };
    let names: Vec<(String, f64)> = match &mix {
        Some(mix) => mix.iter().map(|s| (s.name.clone(), s.weight)).collect(),
        None => vec![("filler".to_owned(), 1.0)],
    };
    let timeout = Duration::from_secs(10);
    let sender = Sender::new(
        &url,
        plan.target.protocol,
        headers.clone(),
        plan.seed,
        plan.spans_per_iteration,
        &service,
        timeout,
    )
    .map_err(ExecError::Io)?
    .with_gzip(plan.target.gzip);
    let sender = match mix {
        Some(mix) => sender.with_mix(mix),
        None => sender,
    };
    Ok(Prepared { backend, url, service, headers, names, sender })
}

/// Setting `stop` (Ctrl-C) ends the run early: in-flight iterations drain, and the results
/// are written with `interrupted: true`.
///
/// `segment` is this generator's share when several run the plan (`--segment i/N`).
pub fn execute(
    plan: &Plan,
    name: &str,
    out: &Path,
    stop: &Arc<AtomicBool>,
    segment: run::Segment,
) -> Result<Summary, ExecError> {
    let profile = plan.workload.profile().map_err(|e| ExecError::Unsupported(e.to_string()))?;
    let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let part = if segment.count > 1 { format!("-segment{}of{}", segment.index, segment.count) } else { String::new() };
    let base = format!("{}_{name}{part}", utc_stamp(started_unix_ms / 1000));
    // Two runs of one plan in the same second get folders of their own.
    let folder = (1..)
        .map(|n| if n == 1 { out.join(&base) } else { out.join(format!("{base}-{n}")) })
        .find(|f| !f.exists())
        .unwrap_or_else(|| out.join(&base));
    let spec = plan.watch.clone().unwrap_or_default();
    let watch =
        Watch::start(&spec, &folder.join("logs").join("target.log"), Arc::clone(stop)).map_err(ExecError::Io)?;
    if spec.spawn.is_some() && plan.target.endpoint != "embedded" {
        // A spawned target gets up to 30 s to accept connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while reachable(&plan.target.endpoint).is_err() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let prepared = match prepare(plan, name) {
        Ok(prepared) => prepared,
        Err(e) => {
            watch.finish();
            return Err(e);
        }
    };
    let Prepared { url, service, headers, names, sender, .. } = &prepared;
    let spans_of = |i| sender.spans_of(i);
    let workers = plan.workload.max_in_flight();
    let live = Arc::new(crate::progress::Live::default());
    let users = plan.workload.users();
    let total = users.map_or(profile.duration(), |u| u.duration);
    let shown = if users.is_some() || segment.count > 1 { None } else { Some(profile.clone()) };
    let reporter = crate::progress::Reporter::start(name, Arc::clone(&live), shown, total);
    let drive = |iteration: &(dyn Fn(u64) -> run::Outcome + Sync)| {
        let counted = |i| live.around(|| iteration(i));
        match users {
            Some(users) => crate::users::run(&users, names.len(), &spans_of, stop, segment, counted),
            None => run::run(&profile, workers, names.len(), &spans_of, stop, segment, counted),
        }
    };
    let (figures, client) = if plan.pipeline == Pipeline::Sdk {
        let env = |k: &str| std::env::var(k).ok();
        let sdk = SdkSender::start(
            url,
            plan.target.protocol,
            plan.target.gzip,
            headers.clone(),
            service,
            sender.clone(),
            &env,
        )
        .map_err(ExecError::Unsupported)?;
        let figures = drive(&|i| sdk.iteration(i));
        (figures, Some(sdk.finish()))
    } else {
        (drive(&|i| sender.iteration(i)), None)
    };
    reporter.finish();
    let target_accepted = prepared.target_accepted();
    let names = names.clone();
    prepared.finish();
    let watched = watch.finish();
    let mut summary = summarize(plan, name, &names, started_unix_ms, &figures, client, target_accepted);
    summary.resources = watched.clone();
    summary.segment = segment;
    summary.recommendations = crate::advice::advise(&summary);
    std::fs::create_dir_all(&folder).map_err(|e| ExecError::Io(format!("cannot create {}: {e}", folder.display())))?;
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| ExecError::Io(e.to_string()))?;
    let write = |file: &str, bytes: &[u8]| {
        let path = folder.join(file);
        std::fs::write(&path, bytes).map_err(|e| ExecError::Io(format!("cannot write {}: {e}", path.display())))
    };
    write("summary.json", &json)?;
    write("timeseries.csv", timeseries(&summary.per_second).as_bytes())?;
    write("recommendations.md", crate::advice::markdown(name, &summary.recommendations).as_bytes())?;
    write("report.md", crate::report::markdown(&summary).as_bytes())?;
    write("resource-usage.csv", crate::watch::csv(&watched.samples).as_bytes())?;
    let by_status = &summary.iterations.by_status;
    let statuses =
        Status::ALL.iter().map(|s| (s.label().to_owned(), by_status.get(s).map_or(0, |t| t.iterations))).collect();
    let inputs = crate::graphs::Inputs {
        seconds: &summary.per_second,
        statuses,
        samples: &watched.samples,
        watch: plan.watch.as_ref(),
    };
    // Graphs are a view of figures already written: a run without a font still has its results.
    let (graphs, missing) = match crate::graphs::write(&inputs, &folder.join("graphs")) {
        Ok(graphs) => (graphs, None),
        Err(why) => {
            eprintln!("load: graphs left out: {why}");
            (Vec::new(), Some(why))
        }
    };
    write("report.html", crate::html::page(&summary, &graphs, missing.as_deref()).as_bytes())?;
    Ok(Summary { folder, ..summary })
}

/// `timeseries.csv`: one row per second of the run, offered against achieved.
pub fn timeseries(seconds: &[Second]) -> String {
    let mut out =
        String::from("second,offered,started,missed,completed,spans,bytes,p50_ms,p90_ms,p95_ms,p99_ms,max_ms\n");
    for (i, s) in seconds.iter().enumerate() {
        let l = &s.latency_us;
        let ms = |us: u64| us as f64 / 1e3;
        out.push_str(&format!(
            "{i},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3}\n",
            s.offered,
            s.started,
            s.missed,
            s.completed,
            s.spans,
            s.bytes,
            ms(l.p50),
            ms(l.p90),
            ms(l.p95),
            ms(l.p99),
            ms(l.max)
        ));
    }
    out
}

fn summarize(
    plan: &Plan,
    name: &str,
    names: &[(String, f64)],
    started_unix_ms: u64,
    f: &Figures,
    client: Option<Accounting>,
    target_accepted: Option<u64>,
) -> Summary {
    let ok = f.by_status.get(&Status::Ok).copied().unwrap_or_default();
    let (accepted, rejected, dropped, failed, unfinished) = match &client {
        None => (
            ok.spans - f.rejected_spans,
            f.rejected_spans,
            BTreeMap::new(),
            f.by_status.iter().filter(|(s, _)| **s != Status::Ok).map(|(s, t)| (status_name(s), t.spans)).collect(),
            0,
        ),
        Some(a) => (
            a.exported,
            a.rejected,
            BTreeMap::from([("queue_full".to_owned(), a.dropped)]),
            BTreeMap::from([("export".to_owned(), a.failed)]),
            a.in_export + a.queued,
        ),
    };
    let latency = Quantiles::of(&f.latency);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let figure = |metric: &str| match metric {
        "p50_ms" => latency.p50,
        "p90_ms" => latency.p90,
        "p95_ms" => latency.p95,
        "p99_ms" => latency.p99,
        "max_ms" => latency.max,
        "error_rate" => ratio(f.completed() - ok.iterations, f.completed()),
        "missed_rate" => ratio(f.missed, f.offered),
        "achieved_ratio" => ratio(ok.iterations, f.offered),
        "spans_per_second" => accepted as f64 / f.elapsed.as_secs_f64().max(1e-9),
        _ => f64::NAN,
    };
    let thresholds = plan
        .thresholds
        .iter()
        .map(|t| {
            let value = figure(&t.metric);
            Verdict { threshold: t.clone(), value, passed: t.holds(value) }
        })
        .collect();
    Summary {
        schema: 1,
        plan: name.to_owned(),
        pipeline: if client.is_some() { "sdk" } else { "raw" },
        seed: plan.seed,
        target: plan.target.endpoint.clone(),
        started_unix_ms,
        elapsed_s: f.elapsed.as_secs_f64(),
        interrupted: f.interrupted,
        segment: run::Segment::default(),
        iterations: Iterations {
            offered: f.offered,
            started: f.started,
            missed: f.missed,
            by_status: f.by_status.clone(),
        },
        spans: Spans { generated: f.generated_spans, accepted, rejected, dropped, failed, unfinished, target_accepted },
        bytes: f.bytes,
        request_bytes: RequestBytes {
            largest_accepted: f.largest_ok_bytes,
            smallest_too_large: f.smallest_too_large_bytes,
        },
        latency_ms: latency,
        generator_lateness_ms: Quantiles::of(&f.lateness),
        per_second: f.seconds.clone(),
        scenarios: names
            .iter()
            .zip(&f.by_scenario)
            .map(|((name, weight), s)| ScenarioSummary {
                name: name.clone(),
                weight: *weight,
                iterations: s.by_status.values().map(|t| t.iterations).sum(),
                spans: s.by_status.values().map(|t| t.spans).sum(),
                bytes: s.bytes,
                by_status: s.by_status.clone(),
                latency_ms: Quantiles::of(&s.latency),
            })
            .collect(),
        thresholds,
        client,
        recommendations: Vec::new(),
        resources: Watched::default(),
        folder: PathBuf::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::utc_stamp;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_437_296), "20261123T123456Z");
    }
}

/// One step of a capacity search, as `capacity.json` keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    /// What was measured.
    #[serde(flatten)]
    pub step: crate::capacity::Step,
    /// Spans/s accepted during the step.
    pub spans_per_second: f64,
    /// The watched target's peak CPU during the step, cores.
    pub target_peak_cpu_cores: Option<f64>,
    /// The watched target's peak RSS during the step, bytes.
    pub target_peak_rss_bytes: Option<u64>,
    /// Why the step broke, if it did.
    pub broke: Option<String>,
}

/// `capacity.json`, schema 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacityReport {
    /// The schema's version.
    pub schema: u32,
    /// The plan's name.
    pub plan: String,
    /// Where the spans went.
    pub target: String,
    /// The search's settings.
    pub settings: crate::capacity::Settings,
    /// The highest rate that held, iterations/s.
    pub sustainable_iterations_per_second: f64,
    /// Spans/s accepted at that rate.
    pub sustainable_spans_per_second: f64,
    /// The watched target's peak CPU (cores) and RSS (bytes) in the step at that rate.
    pub target_at_sustainable: (Option<f64>, Option<u64>),
    /// The lowest rate that broke.
    pub broken_rate: Option<f64>,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// Stopped by Ctrl-C before the search ended.
    pub interrupted: bool,
    /// The results folder.
    #[serde(skip)]
    pub folder: PathBuf,
}

/// `load capacity`: the search of [`crate::capacity`], each step a constant-arrival-rate
/// run of the plan's target, pipeline (`raw`) and mix.
pub fn capacity(plan: &Plan, name: &str, out: &Path, stop: &AtomicBool) -> Result<CapacityReport, ExecError> {
    if plan.pipeline == Pipeline::Sdk || plan.workload.users().is_some() {
        return Err(ExecError::Unsupported(
            "capacity: the search drives the raw pipeline with arrival rates (pipeline: raw, not virtual-users)".into(),
        ));
    }
    let settings = plan.capacity.unwrap_or_default();
    settings.check().map_err(ExecError::Unsupported)?;
    let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let folder = out.join(format!("{}_{name}-capacity", utc_stamp(started_unix_ms / 1000)));
    let spec = plan.watch.clone().unwrap_or_default();
    // The watch never stops a search step: a critical target breaks the step instead.
    let unstoppable = Arc::new(AtomicBool::new(false));
    let watch = Watch::start(
        &WatchSpec { abort_on_critical: false, ..spec.clone() },
        &folder.join("logs").join("target.log"),
        unstoppable,
    )
    .map_err(ExecError::Io)?;
    let prepared = match prepare(plan, name) {
        Ok(prepared) => prepared,
        Err(e) => {
            watch.finish();
            return Err(e);
        }
    };
    let workers = plan.workload.max_in_flight();
    let mut base = 0u64;
    let mut spans_per_second = Vec::new();
    let mut target_peaks = Vec::new();
    let found = crate::capacity::search(&settings, |rate| {
        let broken = crate::capacity::Step {
            rate,
            achieved_ratio: 0.0,
            p99_ms: f64::INFINITY,
            error_rate: 1.0,
            target_cpu_fraction: None,
            target_memory_fraction: None,
        };
        if stop.load(std::sync::atomic::Ordering::Acquire) {
            return broken;
        }
        let Ok(profile) = crate::schedule::Profile::constant(rate, Duration::from_secs_f64(settings.step_seconds))
        else {
            return broken;
        };
        let offset = base;
        let step_began = watch.elapsed();
        let spans_of = |i| prepared.sender.spans_of(offset + i);
        let f = run::run(&profile, workers, prepared.names.len(), &spans_of, stop, run::Segment::default(), |i| {
            prepared.sender.iteration(offset + i)
        });
        base += f.offered;
        let ok = f.by_status.get(&Status::Ok).copied().unwrap_or_default();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        spans_per_second.push(ok.spans as f64 / settings.step_seconds);
        let (cpu, rss) = watch.peaks_since(step_began);
        target_peaks.push((cpu, rss));
        crate::capacity::Step {
            rate,
            achieved_ratio: ratio(ok.iterations, f.offered),
            p99_ms: f.latency.value_at_quantile(0.99) as f64 / 1e3,
            error_rate: ratio(f.completed() - ok.iterations, f.completed()),
            target_cpu_fraction: cpu.zip(spec.cpu_limit_cores).map(|(c, l)| c / l),
            target_memory_fraction: rss.zip(spec.memory_limit_mb).map(|(r, mb)| r as f64 / (mb as f64 * 1e6)),
        }
    });
    prepared.finish();
    watch.finish();
    let steps: Vec<StepReport> = found
        .steps
        .iter()
        .zip(spans_per_second.iter().zip(&target_peaks))
        .map(|((step, broke), (sps, (cpu, rss)))| StepReport {
            step: *step,
            spans_per_second: *sps,
            target_peak_cpu_cores: *cpu,
            target_peak_rss_bytes: *rss,
            broke: broke.clone(),
        })
        .collect();
    let sustainable_spans_per_second = steps
        .iter()
        .filter(|s| s.broke.is_none() && s.step.rate == found.sustainable_rate)
        .map(|s| s.spans_per_second)
        .fold(0.0, f64::max);
    let at = steps.iter().find(|s| s.broke.is_none() && s.step.rate == found.sustainable_rate);
    let target_at_sustainable = at.map_or((None, None), |s| (s.target_peak_cpu_cores, s.target_peak_rss_bytes));
    let report = CapacityReport {
        schema: 1,
        target_at_sustainable,
        plan: name.to_owned(),
        target: plan.target.endpoint.clone(),
        settings,
        sustainable_iterations_per_second: found.sustainable_rate,
        sustainable_spans_per_second,
        broken_rate: found.broken_rate,
        steps,
        interrupted: stop.load(std::sync::atomic::Ordering::Acquire),
        folder,
    };
    std::fs::create_dir_all(&report.folder)
        .map_err(|e| ExecError::Io(format!("cannot create {}: {e}", report.folder.display())))?;
    let path = report.folder.join("capacity.json");
    let json = serde_json::to_vec_pretty(&report).map_err(|e| ExecError::Io(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| ExecError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok(report)
}
