//! The suites' fixtures: `Target`, `Project`, `Tracer`, and the delivery check.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reliability_client::{Accounting, ClientConfig, Pipeline};
use reliability_harness::{BoxError, Fixture, Metrics, RunConfig, Scope, Setup};
use serde::{Deserialize, Serialize};

use crate::config::SuiteConfig;

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Runs blocking HTTP off any tokio runtime: reqwest's blocking client refuses to run (and to
/// be built or dropped) inside one, and fixtures set up on the harness's runtime.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// One request to the query API with the API key; (status, body).
fn send(
    method: reqwest::Method,
    url: &str,
    api_key: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), reqwest::Error> {
    off_runtime(|| {
        let client = reqwest::blocking::Client::builder().timeout(timeout).build()?;
        let mut request = client.request(method, url);
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        Ok((status, response.text().unwrap_or_default()))
    })
}

/// Why a target cannot be used. Never carries the API key.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// `[target] api-key-env` names a variable that is not set.
    #[error("target {kind}: the API key variable {var} (from [target] api-key-env) is not set")]
    KeyVariableUnset {
        /// `embedded` or `remote`.
        kind: String,
        /// The variable.
        var: String,
    },
    /// A remote target lacks a setting.
    #[error("target remote: [target] {key} is not set (or RELIABILITY_TARGET_{})", key.to_uppercase().replace('-', "_"))]
    MissingSetting {
        /// The `[target]` key.
        key: &'static str,
    },
    /// The embedded backend did not start.
    #[error("target embedded: {0}")]
    EmbeddedStart(String),
    /// Nothing answered at the query API.
    #[error("target {kind} query API {url} is not reachable: {source}")]
    Unreachable {
        /// `embedded` or `remote`.
        kind: String,
        /// The URL tried.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The target answered 401.
    #[error("target {kind} ({url}) {}", match var { Some(var) => format!("rejected the API key from {var} (HTTP 401)"), None => "requires an API key: set [target] api-key-env".to_string() })]
    Unauthorized {
        /// `embedded` or `remote`.
        kind: String,
        /// The query API.
        url: String,
        /// The variable the key came from, if any.
        var: Option<String>,
    },
    /// The target answered something other than 200.
    #[error("target {kind} query API {url} answered HTTP {status}: {body}")]
    Status {
        /// `embedded` or `remote`.
        kind: String,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// Where the spans go: the embedded testbed backend (default) or a remote target. `Debug`
/// never shows the API key.
pub struct Target {
    /// `embedded` or `remote`.
    pub kind: String,
    /// The OTLP traces endpoint.
    pub traces_url: String,
    /// The query API base.
    pub query_url: String,
    /// The suites' configuration.
    pub config: SuiteConfig,
    /// The process that connected to the target (started the embedded backend). Every test
    /// process of a run sees the same one: the run's parent shares it.
    pub connected_by: u32,
    config_file: Option<std::path::PathBuf>,
    api_key: Option<String>,
    backend: Mutex<Option<testbed::Backend>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("kind", &self.kind)
            .field("traces_url", &self.traces_url)
            .field("query_url", &self.query_url)
            .field("config", &self.config)
            .field("connected_by", &self.connected_by)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// What a child process needs to use the parent's target (never the API key: the child reads
/// it from the same environment variable).
#[derive(Serialize, Deserialize)]
struct Shared {
    kind: String,
    traces_url: String,
    query_url: String,
    connected_by: u32,
    /// The configuration file the parent read, so the child reads the same one.
    config_file: Option<std::path::PathBuf>,
}

impl Target {
    /// Connects to the configured target (starting the embedded backend) and checks that its
    /// query API answers, so a broken target is one clear error, not a wall of timeouts.
    pub fn connect(config: SuiteConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, TargetError> {
        let kind = config.target.kind.clone();
        let api_key = match &config.target.api_key_env {
            Some(var) => Some(env(var).ok_or_else(|| TargetError::KeyVariableUnset { kind, var: var.clone() })?),
            None => None,
        };
        let (traces_url, query_url, backend) = match config.target.kind.as_str() {
            "embedded" => {
                let backend = testbed::Backend::start(testbed::Config::default())
                    .map_err(|e| TargetError::EmbeddedStart(e.to_string()))?;
                (backend.traces_url(), backend.query_url(), Some(backend))
            }
            _ => {
                let need = |v: &Option<String>, key: &'static str| v.clone().ok_or(TargetError::MissingSetting { key });
                (
                    need(&config.target.endpoint, "endpoint")?,
                    need(&config.target.query_url, "query-url")?.trim_end_matches('/').to_string(),
                    None,
                )
            }
        };
        let target = Target {
            kind: config.target.kind.clone(),
            traces_url,
            query_url,
            config,
            connected_by: std::process::id(),
            config_file: None,
            api_key,
            backend: Mutex::new(backend),
        };
        target.probe()?;
        Ok(target)
    }

    fn probe(&self) -> Result<(), TargetError> {
        let url = format!("{}/projects", self.query_url);
        let kind = self.kind.clone();
        match send(reqwest::Method::GET, &url, self.api_key.as_deref(), Duration::from_secs(5)) {
            Ok((200, _)) => Ok(()),
            Ok((401, _)) => Err(TargetError::Unauthorized {
                kind,
                url: self.query_url.clone(),
                var: self.config.target.api_key_env.clone(),
            }),
            Ok((status, body)) => {
                Err(TargetError::Status { kind, url, status, body: body.chars().take(200).collect() })
            }
            Err(source) => Err(TargetError::Unreachable { kind, url, source }),
        }
    }

    /// GET with the API key; (status, body).
    pub fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String), String> {
        send(reqwest::Method::GET, url, self.api_key.as_deref(), timeout).map_err(|e| e.to_string())
    }

    fn request_delete(&self, url: &str) -> Result<u16, String> {
        send(reqwest::Method::DELETE, url, self.api_key.as_deref(), Duration::from_secs(10))
            .map(|(status, _)| status)
            .map_err(|e| e.to_string())
    }

    /// Headers the client pipeline must send.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.api_key.iter().map(|k| ("x-api-key".to_string(), k.clone())).collect()
    }

    /// A project's stats (`None` when it has none yet).
    pub fn stats(&self, project: &str) -> Result<Option<serde_json::Value>, String> {
        let (status, body) =
            self.get(&format!("{}/projects/{project}/stats", self.query_url), Duration::from_secs(10))?;
        match status {
            200 => serde_json::from_str(&body).map(Some).map_err(|e| format!("stats of {project}: {e}")),
            404 => Ok(None),
            other => Err(format!("stats of {project}: HTTP {other}")),
        }
    }

    /// Traces of a project whose spans carry `test_marker = marker`.
    pub fn traces(&self, project: &str, marker: &str) -> Result<serde_json::Value, String> {
        let url = format!("{}/projects/{project}/traces?attr.test_marker={marker}&limit=10000", self.query_url);
        let (status, body) = self.get(&url, Duration::from_secs(30))?;
        if status != 200 {
            return Err(format!("traces of {project}: HTTP {status}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("traces of {project}: {e}"))
    }
}

// Tests reach the target only through `Project` and `Tracer`: register it so that the run's
// parent process sets it up once and every test process adopts it.
reliability_harness::shared_fixture!(Target);

impl Fixture for Target {
    const SCOPE: Scope = Scope::Session;
    const SHARED: bool = true;

    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        let file = cx.get::<RunConfig>().await?.0.path.clone();
        let config = SuiteConfig::load(file.as_deref(), &env)?;
        Ok(Target { config_file: file, ..Target::connect(config, &env)? })
    }

    async fn teardown(&self) -> Result<(), BoxError> {
        if let Some(backend) = self.backend.lock().unwrap_or_else(PoisonError::into_inner).take() {
            backend.shutdown();
        }
        Ok(())
    }

    fn share(&self) -> Result<String, BoxError> {
        let shared = Shared {
            kind: self.kind.clone(),
            traces_url: self.traces_url.clone(),
            query_url: self.query_url.clone(),
            connected_by: self.connected_by,
            config_file: self.config_file.clone(),
        };
        Ok(serde_json::to_string(&shared)?)
    }

    fn adopt(shared: &str) -> Result<Self, BoxError> {
        let shared: Shared = serde_json::from_str(shared)?;
        let config = SuiteConfig::load(shared.config_file.as_deref(), &env)?;
        let api_key = config.target.api_key_env.as_ref().and_then(|var| env(var));
        Ok(Target {
            kind: shared.kind,
            traces_url: shared.traces_url,
            query_url: shared.query_url,
            config,
            connected_by: shared.connected_by,
            config_file: shared.config_file,
            api_key,
            backend: Mutex::new(None),
        })
    }
}

/// A unique project per test, with a unique `test_marker`; deleted at teardown.
#[derive(Debug)]
pub struct Project {
    /// `e2e-reliability-<unix time>-<8 hex>`; also the spans' `service.name`.
    pub name: String,
    /// The value of the `test_marker` attribute the test puts on its spans.
    pub marker: String,
    target: Arc<Target>,
}

fn eight_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

impl Fixture for Project {
    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        let target = cx.get::<Target>().await?;
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let name = format!("e2e-reliability-{unix}-{}", eight_hex());
        Ok(Project { marker: format!("{name}-{}", eight_hex()), name, target })
    }

    async fn teardown(&self) -> Result<(), BoxError> {
        let url = format!("{}/projects/{}", self.target.query_url, self.name);
        let response = self.target.request_delete(&url)?;
        // 404: nothing arrived; 405: the target does not allow deletion.
        match response {
            200 | 204 | 404 | 405 => Ok(()),
            other => Err(format!("deleting project {} answered HTTP {other}", self.name).into()),
        }
    }
}

/// What reached the target, as figures: every one counted where it happens (the client's
/// accounting by its own observers, `delivered` and `duplicated` by the target).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delivery {
    /// Spans the test says it ended.
    pub generated: u64,
    /// The client's accounting after shutdown.
    pub accounting: Accounting,
    /// Unique spans the target holds for the project.
    pub delivered: u64,
    /// Duplicates the target counted.
    pub duplicated: u64,
    /// `delivered / generated` (1 when nothing was generated).
    pub ratio: f64,
    /// The `[delivery]` threshold for this size class.
    pub threshold: f64,
}

/// One delivery check that did not hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shortfall {
    /// The client's counters do not add up: `ended - (everything placed)`.
    Unbalanced {
        /// Spans ended but placed nowhere (negative: placed twice).
        unaccounted: i64,
    },
    /// Shutdown gave up before the queue drained.
    ShutdownIncomplete,
    /// Spans were ended after shutdown began.
    EndedAfterShutdown {
        /// How many.
        spans: u64,
    },
    /// The pipeline saw a different number of spans than the test ended.
    EndedMismatch {
        /// What the test ended.
        generated: u64,
        /// What the processor saw.
        ended: u64,
    },
    /// The delivery ratio is below the threshold.
    BelowThreshold {
        /// `delivered / generated`.
        ratio: f64,
        /// The threshold.
        threshold: f64,
    },
    /// The target's unique count differs from what the client exported.
    TargetMismatch {
        /// Unique spans at the target.
        delivered: u64,
        /// Spans the client exported.
        exported: u64,
    },
}

impl Delivery {
    /// Every check, whatever the others found; empty when delivery is complete.
    pub fn shortfalls(&self) -> Vec<Shortfall> {
        let a = &self.accounting;
        let mut out = Vec::new();
        if !a.is_balanced() {
            out.push(Shortfall::Unbalanced { unaccounted: a.unaccounted() });
        }
        if !a.shutdown_completed {
            out.push(Shortfall::ShutdownIncomplete);
        }
        if a.after_shutdown != 0 {
            out.push(Shortfall::EndedAfterShutdown { spans: a.after_shutdown });
        }
        if a.ended != self.generated {
            out.push(Shortfall::EndedMismatch { generated: self.generated, ended: a.ended });
        }
        if self.ratio < self.threshold {
            out.push(Shortfall::BelowThreshold { ratio: self.ratio, threshold: self.threshold });
        }
        if self.delivered != a.exported {
            out.push(Shortfall::TargetMismatch { delivered: self.delivered, exported: a.exported });
        }
        out
    }
}

/// A delivery with shortfalls: the figures and every check that did not hold.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryError {
    /// The figures.
    pub delivery: Delivery,
    /// What did not hold.
    pub shortfalls: Vec<Shortfall>,
    /// The project.
    pub project: String,
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.delivery;
        write!(f, "delivery to project {} fell short:", self.project)?;
        for shortfall in &self.shortfalls {
            match shortfall {
                Shortfall::Unbalanced { unaccounted } => {
                    write!(f, "\n- the client's accounting does not balance: {unaccounted} span(s) unaccounted")?
                }
                Shortfall::ShutdownIncomplete => write!(f, "\n- the pipeline's shutdown gave up before draining")?,
                Shortfall::EndedAfterShutdown { spans } => write!(f, "\n- {spans} span(s) ended after shutdown")?,
                Shortfall::EndedMismatch { generated, ended } => {
                    write!(f, "\n- the test ended {generated} spans but the pipeline saw {ended}")?
                }
                Shortfall::BelowThreshold { ratio, threshold } => write!(
                    f,
                    "\n- delivered {} of {} spans ({ratio:.4}, below {threshold}): {} missing, {} duplicated",
                    d.delivered,
                    d.generated,
                    d.generated.saturating_sub(d.delivered),
                    d.duplicated
                )?,
                Shortfall::TargetMismatch { delivered, exported } => {
                    write!(f, "\n- the target holds {delivered} unique spans but the client exported {exported}")?
                }
            }
        }
        write!(f, "\nclient accounting: {:?}", d.accounting)
    }
}

impl std::error::Error for DeliveryError {}

impl From<DeliveryError> for String {
    fn from(err: DeliveryError) -> String {
        err.to_string()
    }
}

/// The client pipeline pointed at the test's project.
#[derive(Debug)]
pub struct Tracer {
    pipeline: Mutex<Option<Pipeline>>,
    /// The pipeline's settings (`[client]`, environment, target, project).
    pub client: ClientConfig,
    target: Arc<Target>,
    project: Arc<Project>,
}

impl Fixture for Tracer {
    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        let target = cx.get::<Target>().await?;
        let project = cx.get::<Project>().await?;
        let mut client = target.config.client.clone();
        client.endpoint = target.traces_url.clone();
        client.service_name = project.name.clone();
        client.headers.extend(target.headers());
        let pipeline = Pipeline::start(&client)?;
        Ok(Tracer { pipeline: Mutex::new(Some(pipeline)), client, target, project })
    }

    async fn teardown(&self) -> Result<(), BoxError> {
        if let Some(pipeline) = self.pipeline.lock().unwrap_or_else(PoisonError::into_inner).take() {
            pipeline.shutdown();
        }
        Ok(())
    }
}

impl Tracer {
    /// Restarts the pipeline with changed settings (before any span is made).
    pub fn reconfigure(&self, change: impl FnOnce(&mut ClientConfig)) -> Result<(), String> {
        let mut client = self.client.clone();
        change(&mut client);
        let mut slot = self.pipeline.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = slot.take() {
            old.shutdown();
        }
        *slot = Some(Pipeline::start(&client).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// A tracer of the pipeline.
    pub fn tracer(&self) -> opentelemetry_sdk::trace::SdkTracer {
        self.pipeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|p| p.tracer("reliability-suites"))
            .unwrap_or_else(|| panic!("the pipeline was already finished"))
    }

    /// Exports everything queued so far and waits for the export to return (the SDK's
    /// `force_flush`); `Err` when that export failed.
    pub fn force_flush(&self) -> Result<(), String> {
        let slot = self.pipeline.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().ok_or("the pipeline was already finished")?.force_flush()
    }

    /// Where every span went so far (the client's accounting, live).
    pub fn accounting(&self) -> Accounting {
        let slot = self.pipeline.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().map(Pipeline::accounting).unwrap_or_default()
    }

    /// The `test_marker` attribute for this test's spans.
    pub fn marker(&self) -> opentelemetry::KeyValue {
        opentelemetry::KeyValue::new("test_marker", self.project.marker.clone())
    }

    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Shuts the pipeline down, waits (polling with backoff, up to `[delivery]
    /// deadline-seconds`) until the target holds what was exported, and returns the figures
    /// without judging them. Records `spans_generated`, `spans_delivered`, `spans_duplicated`,
    /// `delivery_ratio` and the export latencies. `Err` only when the target cannot be read.
    pub fn measure(&self, generated: u64, metrics: &Metrics) -> Result<Delivery, String> {
        let pipeline =
            self.pipeline.lock().unwrap_or_else(PoisonError::into_inner).take().ok_or("finish() was called twice")?;
        let (accounting, latencies) = pipeline.shutdown();
        for latency in &latencies {
            metrics.record_latency("export", *latency);
        }
        metrics.set("spans_generated", generated as f64);
        let project = &self.project.name;
        let deadline = Instant::now() + Duration::from_secs(self.target.config.delivery.deadline_seconds);
        let mut wait = Duration::from_millis(20);
        let (delivered, duplicated) = loop {
            let stats = self.target.stats(project)?;
            let n = |k: &str| stats.as_ref().and_then(|s| s[k].as_u64()).unwrap_or(0);
            let (unique, duplicates) = (n("unique"), n("duplicates"));
            if unique >= accounting.exported || Instant::now() >= deadline {
                break (unique, duplicates);
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(500));
        };
        let ratio = if generated == 0 { 1.0 } else { delivered as f64 / generated as f64 };
        metrics.set("spans_delivered", delivered as f64);
        metrics.set("spans_duplicated", duplicated as f64);
        metrics.set("delivery_ratio", ratio);
        let config = &self.target.config.delivery;
        let threshold = if generated < 1000 { config.min_ratio_small } else { config.min_ratio_large };
        Ok(Delivery { generated, accounting, delivered, duplicated, ratio, threshold })
    }

    /// [`Tracer::measure`], then every check of [`Delivery::shortfalls`]: the accounting
    /// balances after a completed shutdown, the pipeline saw every span the test ended, the
    /// ratio meets the threshold, and the target holds exactly what the client exported.
    pub fn finish(&self, generated: u64, metrics: &Metrics) -> Result<Delivery, String> {
        let delivery = self.measure(generated, metrics)?;
        let shortfalls = delivery.shortfalls();
        if shortfalls.is_empty() {
            return Ok(delivery);
        }
        Err(DeliveryError { delivery, shortfalls, project: self.project.name.clone() }.into())
    }
}
