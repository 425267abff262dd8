//! Smoke: the suites' own set-up, checked on every run (marker `smoke`, not opt-in).

use reliability_harness::{self as rh, RunConfig};
use reliability_suites::config::{SuiteConfig, TargetConfig};
use reliability_suites::{Target, TargetError};

/// The heavy suites must stay out of a plain `cargo test`: e2e, slow and chaos are opt-in in
/// the configuration this run loaded, not only in the built-in defaults.
#[rh::test(smoke)]
fn config_keeps_heavy_suites_opt_in(config: &RunConfig) -> Result<(), String> {
    let (markers, file) = (&config.0.markers, config.0.path.as_ref().ok_or("this run found no reliability.toml")?);
    for marker in ["e2e", "slow", "chaos"] {
        if !markers.is_opt_in(marker) {
            return Err(format!("{}: marker `{marker}` must stay opt-in", file.display()));
        }
    }
    if markers.get("smoke").is_none_or(|m| m.opt_in) {
        return Err(format!("{}: marker `smoke` must be declared and run by default", file.display()));
    }
    Ok(())
}

/// Nothing listening at a remote target: one clear error naming the target and what failed,
/// from the probe, before any span is sent — not a wall of export timeouts. Port 0: nothing
/// can listen there, so no port is assumed free.
#[rh::test(smoke)]
fn a_target_with_nothing_listening_is_one_clear_error() -> Result<(), String> {
    let target = TargetConfig {
        kind: "remote".into(),
        endpoint: Some("http://127.0.0.1:0/v1/traces".into()),
        query_url: Some("http://127.0.0.1:0/api/v1".into()),
        api_key_env: None,
    };
    let config = SuiteConfig { target, ..SuiteConfig::default() };
    match Target::connect(config, &|_| None) {
        Err(TargetError::Unreachable { kind, url, source }) if source.is_connect() => {
            if (kind.as_str(), url.as_str()) != ("remote", "http://127.0.0.1:0/api/v1/projects") {
                return Err(format!("the error names the wrong target: {kind} {url}"));
            }
            Ok(())
        }
        Err(other) => Err(format!("expected a refused connection, got: {other}")),
        Ok(_) => Err("connecting to a dead port succeeded".into()),
    }
}

/// A wrong API key: the error names the variable it came from, never the key.
#[rh::test(smoke)]
fn a_wrong_api_key_is_one_clear_error_without_the_key() -> Result<(), String> {
    let backend = testbed::Backend::start(testbed::Config {
        auth_token: Some("the-right-key".into()),
        ..testbed::Config::default()
    })
    .map_err(|e| e.to_string())?;
    let target = TargetConfig {
        kind: "remote".into(),
        endpoint: Some(backend.traces_url()),
        query_url: Some(backend.query_url()),
        api_key_env: Some("SMOKE_API_KEY".into()),
    };
    let config = SuiteConfig { target, ..SuiteConfig::default() };
    let env = |k: &str| (k == "SMOKE_API_KEY").then(|| "a-wrong-key".to_string());
    let err = Target::connect(config.clone(), &env).err().ok_or("a wrong key was accepted")?;
    match &err {
        TargetError::Unauthorized { var: Some(var), url, .. }
            if var == "SMOKE_API_KEY" && *url == backend.query_url() => {}
        other => return Err(format!("expected a 401 naming SMOKE_API_KEY, got: {other}")),
    }
    if format!("{err} {err:?}").contains("a-wrong-key") {
        return Err("the error shows the key".into());
    }
    let right = |k: &str| (k == "SMOKE_API_KEY").then(|| "the-right-key".to_string());
    Target::connect(config.clone(), &right).map(drop).map_err(|e| e.to_string())?;
    match Target::connect(config, &|_| None) {
        Err(TargetError::KeyVariableUnset { var, .. }) if var == "SMOKE_API_KEY" => Ok(()),
        Err(other) => Err(format!("expected the unset variable to be named, got: {other}")),
        Ok(_) => Err("an unset key variable was accepted".into()),
    }
}

/// A secret planted in every place one can enter the suites — the API key variable of
/// `[target]`, `OTEL_EXPORTER_OTLP_HEADERS`, the backend's token — never shows in `Debug`
/// output, in errors, or in what the target and pipeline print about themselves.
#[rh::test(smoke)]
fn planted_secrets_never_show_in_debug_output_or_errors() -> Result<(), String> {
    let secret = "planted-secret-7f3a9c";
    let backend_config = testbed::Config { auth_token: Some(secret.into()), ..testbed::Config::default() };
    let mut shown = vec![format!("{backend_config:?}")];
    let backend = testbed::Backend::start(backend_config).map_err(|e| e.to_string())?;
    let target = TargetConfig {
        kind: "remote".into(),
        endpoint: Some(backend.traces_url()),
        query_url: Some(backend.query_url()),
        api_key_env: Some("SMOKE_SECRET_KEY".into()),
    };
    let config = SuiteConfig { target, ..SuiteConfig::default() };
    let right = |k: &str| (k == "SMOKE_SECRET_KEY").then(|| secret.to_string());
    let wrong = |k: &str| (k == "SMOKE_SECRET_KEY").then(|| format!("{secret}-but-wrong"));
    let connected = Target::connect(config.clone(), &right).map_err(|e| e.to_string())?;
    shown.push(format!("{connected:?}"));
    let refused = Target::connect(config, &wrong).err().ok_or("a wrong key was accepted")?;
    shown.extend([format!("{refused}"), format!("{refused:?}")]);
    let headers = |k: &str| (k == "OTEL_EXPORTER_OTLP_HEADERS").then(|| format!("x-api-key={secret},x-team=a"));
    let client = reliability_client::ClientConfig { endpoint: backend.traces_url(), ..Default::default() }
        .with_env(&headers)
        .map_err(|e| e.to_string())?;
    if client.headers.iter().all(|(_, v)| v != secret) {
        return Err("the header did not reach the client config".into());
    }
    let pipeline = reliability_client::Pipeline::start(&client).map_err(|e| e.to_string())?;
    shown.extend([format!("{client:?}"), format!("{pipeline:?}"), pipeline.metrics()]);
    pipeline.shutdown();
    match shown.iter().find(|text| text.contains(secret)) {
        Some(leak) => Err(format!("a secret shows in: {}", leak.replace(secret, "<THE SECRET>"))),
        None => Ok(()),
    }
}
