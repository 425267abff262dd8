//! An application traced by the reference client, serving the client's health for
//! Prometheus to scrape: how to embed `ReferenceSdk`, and the live target the monitoring
//! proof scrapes (`ci/monitoring-proof.sh`).
//!
//! ```text
//! cargo run -p reliability-client --example traced_app -- --backend http://127.0.0.1:4318 \
//!     [--listen 127.0.0.1:9464] [--rate 100] [--seconds 10] [--linger 600]
//! ```
//!
//! Prints `client metrics on http://ADDR/metrics` first, then ends `--rate` spans a second
//! (each tenth with an evaluation and a tag) for `--seconds`, shuts the client down, prints
//! `done: ...` with its final counts, and goes on serving them for `--linger` seconds (or until
//! killed). Loopback only unless `--listen` says otherwise. Bad flags exit 2, a failed start 1.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use reliability_client::ClientConfig;
use reliability_client::sdk::{ReferenceSdk, SdkUnderTest};
use reliability_client::side::SideConfig;

#[derive(Debug, Parser)]
#[command(name = "traced_app", about = "An application traced by the reference client, serving its health")]
struct Args {
    /// The testbed (or any backend with its API): spans to BACKEND/v1/traces, side channels
    /// to BACKEND/api/v1.
    #[arg(long, value_name = "URL")]
    backend: String,
    /// Where to serve /metrics; port 0 picks a free one (printed on the first line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// Spans a second (1 to 100,000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    rate: u64,
    /// How long to generate (1 to 3,600 s).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    seconds: u64,
    /// How long to go on serving the final counts after shutdown (0 to 86,400 s).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    linger: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let base = args.backend.trim_end_matches('/');
    let client = ClientConfig {
        endpoint: format!("{base}/v1/traces"),
        service_name: "traced-app".into(),
        scheduled_delay_ms: 1_000,
        export_max_attempts: 3,
        max_attribute_bytes: 65_536,
        ..ClientConfig::default()
    };
    let side = SideConfig { base_url: format!("{base}/api/v1"), ..SideConfig::default() };
    let sdk = match ReferenceSdk::start_serving(&client, side, &args.listen) {
        Ok(sdk) => sdk,
        Err(e) => {
            eprintln!("traced_app: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("client metrics on {}", sdk.metrics_url().unwrap_or_default());
    let _ = std::io::stdout().flush();
    let started = Instant::now();
    let ticks = args.seconds * 10;
    let mut ended = 0u64;
    for tick in 0..ticks {
        let target = (tick + 1) * args.rate / 10;
        while ended < target {
            let mut span = sdk.span("llm.chat");
            span.set_attribute("llm.model", "reference".into());
            let trace = span.trace_id();
            span.end();
            if ended.is_multiple_of(10) {
                sdk.evaluate(serde_json::json!({ "id": format!("app-{ended}"), "trace_id": trace, "score": 1 }));
                sdk.tag(&trace, &["app", "traced"]);
            }
            ended += 1;
        }
        let next = started + Duration::from_millis(100) * (tick + 1) as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let h = sdk.shutdown();
    println!(
        "done: {} spans ended, {} exported, {} dropped, {} failed; {} evaluations sent, {} failed",
        h.spans.ended,
        h.spans.exported,
        h.spans.dropped,
        h.spans.failed,
        h.side.evaluations_sent,
        h.side.evaluations_failed
    );
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs(args.linger));
    ExitCode::SUCCESS
}
