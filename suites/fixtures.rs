//! The suites' fixtures: `Target`, `Project`, `Tracer`, and the delivery check.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reliability_harness::{BoxError, Fixture, Metrics, RunConfig, Scope, Setup};
use serde::{Deserialize, Serialize};
use testbed::client::{Accounting, ClientConfig, Pipeline};

use crate::config::SuiteConfig;

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into()
}

/// Where the spans go: the embedded testbed backend (default) or a remote target.
#[derive(Debug)]
pub struct Target {
    /// `embedded` or `remote`.
    pub kind: String,
    /// The OTLP traces endpoint.
    pub traces_url: String,
    /// The query API base.
    pub query_url: String,
    /// The suites' configuration.
    pub config: SuiteConfig,
    config_file: Option<std::path::PathBuf>,
    api_key: Option<String>,
    backend: Mutex<Option<testbed::Backend>>,
}

/// What a child process needs to use the parent's target (never the API key: the child reads
/// it from the same environment variable).
#[derive(Serialize, Deserialize)]
struct Shared {
    kind: String,
    traces_url: String,
    query_url: String,
    /// The configuration file the parent read, so the child reads the same one.
    config_file: Option<std::path::PathBuf>,
}

impl Target {
    /// Connects to the configured target (starting the embedded backend) and checks that its
    /// query API answers, so a broken target is one clear error, not a wall of timeouts.
    pub fn connect(config: SuiteConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, String> {
        let api_key = match &config.target.api_key_env {
            Some(var) => Some(env(var).ok_or_else(|| {
                format!(
                    "target {}: the API key variable {var} (from [target] api-key-env) is not set",
                    config.target.kind
                )
            })?),
            None => None,
        };
        let (traces_url, query_url, backend) = match config.target.kind.as_str() {
            "embedded" => {
                let backend =
                    testbed::Backend::start(testbed::Config::default()).map_err(|e| format!("target embedded: {e}"))?;
                (backend.traces_url(), backend.query_url(), Some(backend))
            }
            _ => {
                let need = |v: &Option<String>, key: &str| {
                    v.clone().ok_or_else(|| {
                        format!(
                            "target remote: [target] {key} is not set (or RELIABILITY_TARGET_{})",
                            key.to_uppercase().replace('-', "_")
                        )
                    })
                };
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
            config_file: None,
            api_key,
            backend: Mutex::new(backend),
        };
        target.probe()?;
        Ok(target)
    }

    fn probe(&self) -> Result<(), String> {
        let url = format!("{}/projects", self.query_url);
        match self.get(&url, Duration::from_secs(5)) {
            Ok((200, _)) => Ok(()),
            Ok((401, _)) => Err(match &self.config.target.api_key_env {
                Some(var) => {
                    format!("target {} ({}) rejected the API key from {var} (HTTP 401)", self.kind, self.query_url)
                }
                None => {
                    format!("target {} ({}) requires an API key: set [target] api-key-env", self.kind, self.query_url)
                }
            }),
            Ok((status, body)) => Err(format!(
                "target {} query API {url} answered HTTP {status}: {}",
                self.kind,
                body.chars().take(200).collect::<String>()
            )),
            Err(e) => Err(format!("target {} query API {url} is not reachable: {e}", self.kind)),
        }
    }

    fn request(
        &self,
        request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        match &self.api_key {
            Some(key) => request.header("x-api-key", key),
            None => request,
        }
    }

    /// GET with the API key; (status, body).
    pub fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String), String> {
        let response = self.request(agent(timeout).get(url)).call().map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.into_body().read_to_string().unwrap_or_default();
        Ok((status, body))
    }

    fn request_delete(&self, url: &str) -> Result<u16, String> {
        let response = self.request(agent(Duration::from_secs(10)).delete(url)).call().map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
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

/// What reached the target.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// The client's accounting after shutdown.
    pub accounting: Accounting,
    /// Unique spans the target holds for the project.
    pub delivered: u64,
    /// Duplicates the target counted.
    pub duplicated: u64,
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

    /// Shuts the pipeline down, checks the accounting identity, waits (polling with backoff,
    /// up to `[delivery] deadline-seconds`) until the target holds what was exported, checks
    /// the delivery ratio, and records `spans_generated`, `spans_delivered`, `spans_duplicated`,
    /// `delivery_ratio` and the export latencies.
    pub fn finish(&self, generated: u64, metrics: &Metrics) -> Result<Delivery, String> {
        let pipeline =
            self.pipeline.lock().unwrap_or_else(PoisonError::into_inner).take().ok_or("finish() was called twice")?;
        let (accounting, latencies) = pipeline.shutdown();
        for latency in &latencies {
            metrics.record_latency("export", *latency);
        }
        metrics.set("spans_generated", generated as f64);
        if !accounting.is_balanced() || accounting.after_shutdown != 0 {
            return Err(format!("the client's span accounting does not balance: {accounting:?}"));
        }
        if accounting.ended != generated {
            return Err(format!(
                "the test ended {generated} spans but the pipeline saw {}: {accounting:?}",
                accounting.ended
            ));
        }
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
        let delivery = &self.target.config.delivery;
        let threshold = if generated < 1000 { delivery.min_ratio_small } else { delivery.min_ratio_large };
        if ratio < threshold {
            return Err(format!(
                "target {} delivered {delivered} of {generated} spans ({ratio:.4}, below {threshold}) to project {project}: \
                 {} missing, {duplicated} duplicated; client accounting {accounting:?}",
                self.target.kind,
                generated.saturating_sub(delivered)
            ));
        }
        if delivered != accounting.exported {
            return Err(format!(
                "the target holds {delivered} unique spans of {project} but the client exported {}: {accounting:?}",
                accounting.exported
            ));
        }
        Ok(Delivery { accounting, delivered, duplicated })
    }
}
