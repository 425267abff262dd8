//! `testbed serve`: the backend as a process, for remote-target runs and manual use.
//!
//! ```text
//! cargo run -p testbed --release -- serve --listen 127.0.0.1:4318 [--max-spans N] [--max-bytes N]
//!     [--max-request-bytes N] [--project-header NAME] [--auth-token-env VAR] [--faults PLAN.json]
//!     [--allow-unauthenticated]
//! ```
//!
//! `testbed proxy [--listen 127.0.0.1:8474] [--seed N] [--config PROXIES.json]`: the chaos
//! proxy's API (Toxiproxy's), URL on the first line.
//!
//! Prints its URLs and runs until Ctrl-C or SIGTERM. Binds loopback unless told otherwise, and
//! refuses any other address without credentials unless `--allow-unauthenticated` says so.
//! Bad flags are exit code 2 (clap's usage errors, as the harness's), a failed start 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "testbed", version, about = "An OTLP/HTTP trace backend for reliability tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve OTLP/HTTP ingest, the query API and fault injection until Ctrl-C.
    Serve(Serve),
    /// Serve the chaos proxy's API (Toxiproxy's) until Ctrl-C.
    Proxy(ProxyArgs),
}

#[derive(Debug, Args)]
struct ProxyArgs {
    /// Address of the API; port 0 picks a free port (the URL is printed on the first line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8474")]
    listen: SocketAddr,
    /// Seed of every probabilistic choice (toxicity draws, jitter, slice sizes).
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Proxies to create at start: a JSON list, as `POST /populate` takes.
    #[arg(long, value_name = "FILE.json")]
    config: Option<PathBuf>,
    /// Serve the API on a non-loopback address: anyone who reaches it can then open proxies
    /// from this machine to anywhere.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Debug, Args)]
struct Serve {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4318")]
    listen: SocketAddr,
    /// Spans kept across all projects (503 + Retry-After past it).
    #[arg(long, value_name = "N")]
    max_spans: Option<u64>,
    /// Memory the stored spans may take, in bytes (503 + Retry-After past it).
    #[arg(long, value_name = "N")]
    max_bytes: Option<u64>,
    /// Largest request body after decompression, in bytes (413 past it).
    #[arg(long, value_name = "N")]
    max_request_bytes: Option<u64>,
    /// Take the project from this request header instead of `service.name`.
    #[arg(long, value_name = "NAME")]
    project_header: Option<String>,
    /// Require the token in this environment variable (Authorization: Bearer or x-api-key).
    #[arg(long, value_name = "VAR")]
    auth_token_env: Option<String>,
    /// A fault plan (JSON) in force from the start.
    #[arg(long, value_name = "PLAN.json")]
    faults: Option<PathBuf>,
    /// Listen on a non-loopback address without a token: the fault-plan and delete endpoints
    /// are then open to anyone who can reach it.
    #[arg(long)]
    allow_unauthenticated: bool,
}

/// A usage error: exit 2, like clap's.
fn usage(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn config(serve: Serve) -> Result<testbed::Config, String> {
    let mut config = testbed::Config { listen: serve.listen, ..testbed::Config::default() };
    if let Some(n) = serve.max_spans {
        config.limits.max_spans = n;
    }
    if let Some(n) = serve.max_bytes {
        config.limits.max_bytes = n;
    }
    if let Some(n) = serve.max_request_bytes {
        config.max_request_bytes = n;
    }
    config.project_header = serve.project_header.map(|h| h.to_ascii_lowercase());
    if let Some(var) = serve.auth_token_env {
        let token = std::env::var(&var)
            .map_err(|_| format!("environment variable {var} (from --auth-token-env) is not set"))?;
        config.auth_token = Some(token);
    }
    if let Some(path) = serve.faults {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
        let plan: testbed::FaultPlan =
            serde_json::from_str(&text).map_err(|e| format!("{}: invalid fault plan: {e}", path.display()))?;
        plan.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        config.faults = Some(plan);
    }
    config.allow_unauthenticated = serve.allow_unauthenticated;
    config.check_exposure().map_err(|e| e.to_string())?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print to stdout and exit 0; errors exit 2.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let serve = match cli.command {
        Command::Serve(serve) => serve,
        Command::Proxy(args) => return proxy(args),
    };
    let config = match config(serve) {
        Ok(config) => config,
        Err(message) => return usage(message),
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
    wait_for_signal();
    println!("testbed stopping");
    backend.shutdown();
    ExitCode::SUCCESS
}

/// Blocks until Ctrl-C or SIGTERM.
fn wait_for_signal() {
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
}

/// Reads `--config`: a JSON list of proxies, every one checked before any is made.
fn proxy_specs(path: &std::path::Path) -> Result<Vec<testbed::proxy::ProxySpec>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}:{}:{}: invalid JSON: {e}", path.display(), e.line(), e.column()))?;
    let items = value.as_array().ok_or_else(|| format!("{}: expected a JSON list of proxies", path.display()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            testbed::proxy::ProxySpec::from_json(item)
                .map_err(|e| format!("{}: proxy {}: {}", path.display(), i + 1, e.message))
        })
        .collect()
}

fn proxy(args: ProxyArgs) -> ExitCode {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return usage(format!(
            "refusing to serve the proxy API on {} (not loopback) without --allow-remote",
            args.listen
        ));
    }
    let specs = match args.config.as_deref().map(proxy_specs).transpose() {
        Ok(specs) => specs.unwrap_or_default(),
        Err(message) => return usage(message),
    };
    let config = testbed::proxy::ProxyConfig { api_listen: args.listen, seed: args.seed, ..Default::default() };
    let server = match testbed::proxy::ProxyServer::start(config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    println!("testbed proxy API on {}", server.api_url());
    for spec in specs {
        let name = spec.name.clone();
        match server.create(spec) {
            Ok(p) => println!("  proxy {name}: {} -> {}", p.listen, p.upstream),
            Err(e) => {
                eprintln!("error: proxy {name}: {}", e.message);
                return ExitCode::from(1);
            }
        }
    }
    wait_for_signal();
    println!("testbed proxy stopping");
    server.shutdown();
    ExitCode::SUCCESS
}
