//! Smoke: the suites' own set-up, checked on every run (marker `smoke`, not opt-in).

use reliability_harness::{self as rh, RunConfig};
use reliability_suites::Target;
use reliability_suites::config::{SuiteConfig, TargetConfig};

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
/// quickly — not a wall of export timeouts.
#[rh::test(smoke)]
fn a_target_with_nothing_listening_is_one_clear_error() -> Result<(), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| e.to_string())?
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();
    let target = TargetConfig {
        kind: "remote".into(),
        endpoint: Some(format!("http://127.0.0.1:{port}/v1/traces")),
        query_url: Some(format!("http://127.0.0.1:{port}/api/v1")),
        api_key_env: None,
    };
    let config = SuiteConfig { target, ..SuiteConfig::default() };
    let started = std::time::Instant::now();
    let err = Target::connect(config, &|_| None).err().ok_or("connecting to a dead port succeeded")?;
    let want = format!("target remote query API http://127.0.0.1:{port}/api/v1/projects is not reachable:");
    if !err.starts_with(&want) {
        return Err(format!("unclear error: {err}"));
    }
    if started.elapsed() > std::time::Duration::from_secs(6) {
        return Err(format!("took {:?} to say so", started.elapsed()));
    }
    Ok(())
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
    if err != format!("target remote ({}) rejected the API key from SMOKE_API_KEY (HTTP 401)", backend.query_url())
        || err.contains("a-wrong-key")
    {
        return Err(format!("unclear or leaking error: {err}"));
    }
    let right = |k: &str| (k == "SMOKE_API_KEY").then(|| "the-right-key".to_string());
    Target::connect(config.clone(), &right).map(drop)?;
    let unset = Target::connect(config, &|_| None).err().ok_or("an unset key variable was accepted")?;
    if unset != "target remote: the API key variable SMOKE_API_KEY (from [target] api-key-env) is not set" {
        return Err(format!("unclear error: {unset}"));
    }
    Ok(())
}
