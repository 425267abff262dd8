//! `testbed serve`: the backend as a process, for remote-target runs and manual use.
//!
//! ```text
//! cargo run -p testbed --release -- serve --listen 127.0.0.1:4318 [--max-spans N] [--max-bytes N]
//!     [--max-request-bytes N] [--project-header NAME] [--auth-token-env VAR] [--faults PLAN.json]
//! ```
//!
//! Prints its URLs and runs until Ctrl-C or SIGTERM. Binds loopback unless told otherwise.

use std::process::ExitCode;

const USAGE: &str = "usage: testbed serve [--listen ADDR (default 127.0.0.1:4318)] [--max-spans N] [--max-bytes N] \
[--max-request-bytes N] [--project-header NAME] [--auth-token-env VAR] [--faults PLAN.json]";

fn parse(args: &[String]) -> Result<testbed::Config, String> {
    let mut config = testbed::Config { listen: ([127, 0, 0, 1], 4318).into(), ..testbed::Config::default() };
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("serve") => {}
        Some(other) => return Err(format!("unknown command `{other}`; valid: serve")),
        None => return Err("missing command; valid: serve".into()),
    }
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("flag `{flag}` needs a value"));
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("flag `{flag}`: {v:?} is not a whole number"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                config.listen =
                    v.parse().map_err(|_| format!("flag `--listen`: {v:?} is not an address like 127.0.0.1:4318"))?;
            }
            "--max-spans" => config.limits.max_spans = number(value()?)?,
            "--max-bytes" => config.limits.max_bytes = number(value()?)?,
            "--max-request-bytes" => config.max_request_bytes = number(value()?)?,
            "--project-header" => config.project_header = Some(value()?.to_ascii_lowercase()),
            "--auth-token-env" => {
                let var = value()?;
                let token = std::env::var(var)
                    .map_err(|_| format!("environment variable {var} (from --auth-token-env) is not set"))?;
                config.auth_token = Some(token);
            }
            "--faults" => {
                let path = value()?;
                let text = std::fs::read_to_string(path).map_err(|e| format!("failed to read {path}: {e}"))?;
                config.faults =
                    Some(serde_json::from_str(&text).map_err(|e| format!("{path}: invalid fault plan: {e}"))?);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let auth = config.auth_token.is_some();
    let backend = match testbed::Backend::start(config) {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    println!("testbed listening on {}", backend.base_url());
    println!("  OTLP/HTTP traces: {}", backend.traces_url());
    println!("  query API:        {}", backend.query_url());
    println!("  metrics:          {}/metrics", backend.base_url());
    if auth {
        println!("  auth: required (Authorization: Bearer or x-api-key)");
    }
    let waited = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| {
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
    });
    if let Err(e) = waited {
        eprintln!("error: failed to wait for a signal: {e}");
    }
    println!("testbed stopping");
    backend.shutdown();
    ExitCode::SUCCESS
}
