//! The suites' sections of `reliability.toml`, strict like the harness's (unknown keys are
//! errors with file:line:column), with environment overrides.
//!
//! ```toml
//! [target]
//! kind = "embedded"                          # or "remote"        (RELIABILITY_TARGET)
//! endpoint = "http://host:4318/v1/traces"    # remote only        (RELIABILITY_TARGET_ENDPOINT)
//! query-url = "http://host:4318/api/v1"      # remote only        (RELIABILITY_TARGET_QUERY_URL)
//! api-key-env = "RELIABILITY_API_KEY"        # the variable holding the key; never the key
//!
//! [client]                                   # then OTEL_BSP_* / OTEL_EXPORTER_OTLP_* win
//! protocol = "protobuf"                      # or "json"
//! gzip = false
//! max-queue-size = 8192
//! max-export-batch-size = 512
//! scheduled-delay-ms = 5000
//! export-timeout-ms = 30000
//! shutdown-timeout-ms = 10000
//!
//! [delivery]
//! min-ratio-small = 1.0                      # tests of fewer than 1,000 spans
//! min-ratio-large = 1.0
//! deadline-seconds = 60                      # how long to poll for the spans
//! ```

use std::path::Path;

use reliability_client::ClientConfig;
use serde::Deserialize;

/// Where the spans go.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetConfig {
    /// `embedded` or `remote`.
    #[serde(default = "embedded")]
    pub kind: String,
    /// Remote: the OTLP traces endpoint.
    pub endpoint: Option<String>,
    /// Remote: the query API base URL.
    pub query_url: Option<String>,
    /// Remote: the environment variable holding the API key.
    pub api_key_env: Option<String>,
}

fn embedded() -> String {
    "embedded".into()
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig { kind: embedded(), endpoint: None, query_url: None, api_key_env: None }
    }
}

/// Delivery thresholds.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DeliveryConfig {
    /// Minimum delivered/expected for tests of fewer than 1,000 spans.
    pub min_ratio_small: f64,
    /// Minimum delivered/expected for larger tests.
    pub min_ratio_large: f64,
    /// How long to poll for the spans.
    pub deadline_seconds: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig { min_ratio_small: 1.0, min_ratio_large: 1.0, deadline_seconds: 60 }
    }
}

/// The suites' configuration.
#[derive(Clone, Debug, Default)]
pub struct SuiteConfig {
    /// `[target]`.
    pub target: TargetConfig,
    /// `[client]`, before the environment.
    pub client: ClientConfig,
    /// `[delivery]`.
    pub delivery: DeliveryConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    target: TargetConfig,
    #[serde(default)]
    client: ClientConfig,
    #[serde(default)]
    delivery: DeliveryConfig,
    // The harness's sections, validated by the harness.
    markers: Option<toml::Value>,
    selection: Option<toml::Value>,
    run: Option<toml::Value>,
    report: Option<toml::Value>,
    pushgateway: Option<toml::Value>,
}

impl SuiteConfig {
    /// Reads `path` (none, or absent: defaults), then the environment.
    pub fn load(path: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<SuiteConfig, String> {
        let Some(path) = path else { return SuiteConfig::default().with_env(env) };
        let config = match std::fs::read_to_string(path) {
            Ok(text) => {
                let file: File = toml::from_str(&text).map_err(|e| {
                    let at = e.span().map(|s| reliability_harness::config::line_column(&text, s.start));
                    match at {
                        Some((line, column)) => {
                            format!("invalid {}:{line}:{column}: {}", path.display(), e.message().trim_end())
                        }
                        None => format!("invalid {}: {}", path.display(), e.message().trim_end()),
                    }
                })?;
                let _ = (file.markers, file.selection, file.run, file.report, file.pushgateway);
                SuiteConfig { target: file.target, client: file.client, delivery: file.delivery }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SuiteConfig::default(),
            Err(e) => return Err(format!("failed to read {}: {e}", path.display())),
        };
        config.with_env(env)
    }

    /// The environment over the file: `RELIABILITY_TARGET*`, then `OTEL_*` for the client.
    fn with_env(mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<SuiteConfig, String> {
        let config = &mut self;
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(kind) = var("RELIABILITY_TARGET") {
            config.target.kind = kind;
        }
        if let Some(v) = var("RELIABILITY_TARGET_ENDPOINT") {
            config.target.endpoint = Some(v);
        }
        if let Some(v) = var("RELIABILITY_TARGET_QUERY_URL") {
            config.target.query_url = Some(v);
        }
        if let Some(v) = var("RELIABILITY_TARGET_API_KEY_ENV") {
            config.target.api_key_env = Some(v);
        }
        if !matches!(config.target.kind.as_str(), "embedded" | "remote") {
            return Err(format!("[target] kind {:?}: expected one of: embedded, remote", config.target.kind));
        }
        config.client = config.client.clone().with_env(env).map_err(|e| e.to_string())?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<SuiteConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reliability.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SuiteConfig::load(Some(&path), &|k| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn sections_layer_under_the_environment() {
        let c = load("[markers]\nsmoke = { description = \"x\" }\n[target]\nkind = \"remote\"\nendpoint = \"http://127.0.0.1:1/v1/traces\"\n[client]\nmax-queue-size = 10\n", &[("OTEL_BSP_MAX_QUEUE_SIZE", "20")]).unwrap();
        assert_eq!(c.target.kind, "remote");
        assert_eq!(c.client.max_queue_size, 20, "OTEL_BSP_MAX_QUEUE_SIZE wins over the file");
        let c = load("", &[("RELIABILITY_TARGET", "remote")]).unwrap();
        assert_eq!(c.target.kind, "remote");
        let none = SuiteConfig::load(None, &|k| (k == "RELIABILITY_TARGET").then(|| "remote".to_string())).unwrap();
        assert_eq!(none.target.kind, "remote", "no file: defaults, then the environment");
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors_with_positions() {
        let err = load("[target]\nkind = \"embedded\"\napi-key = \"secret\"\n", &[]).unwrap_err();
        assert!(err.contains(":3:1: unknown field `api-key`"), "{err}");
        assert!(!err.contains("secret"));
        let err = load("[target]\nkind = \"staging\"\n", &[]).unwrap_err();
        assert_eq!(err, "[target] kind \"staging\": expected one of: embedded, remote");
    }
}
