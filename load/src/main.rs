//! `load`: run a load plan against an OTLP/HTTP target.
//!
//! ```text
//! load run PLAN.yaml [--out results]
//! load capacity PLAN.yaml [--out results]
//! load run PLAN.yaml --segment i/N       # one of N generators
//! load run PLAN.yaml --target URL --pushgateway URL [--pushgateway-label k=v]...
//! load merge RESULTS_DIR... [--out results]
//! ```
//!
//! Exit codes: 0 the run completed and its thresholds held (figures in the results folder);
//! 1 a threshold was breached (the results are written all the same); 2 a bad plan or flag
//! (file:line:column) or a plan asking for what is not built yet; 3 the target was
//! unreachable before the run started; 4 the results could not be written; 5 the run completed
//! and its thresholds held but the push to the Pushgateway failed (results written); 130
//! stopped by Ctrl-C or SIGTERM (in-flight iterations drained, results written).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reliability_load::exec::{self, ExecError};
use reliability_load::plan::Plan;
use reliability_load::run::Segment;

#[derive(Debug, Parser)]
#[command(name = "load", version, about = "Load runs against an OTLP/HTTP target")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a plan and write its results folder.
    Run {
        /// The plan (YAML).
        plan: PathBuf,
        /// Where results folders go.
        #[arg(long, value_name = "DIR", default_value = "results")]
        out: PathBuf,
        /// Run only this share of the plan, i/N (k6's execution segments): N generators with
        /// 0/N .. N-1/N split its rate, users and iterations exactly; `load merge` joins them.
        #[arg(long, value_name = "i/N", value_parser = Segment::parse)]
        segment: Option<Segment>,
        /// The OTLP/HTTP traces URL to load, instead of the plan's `target.endpoint` (one plan
        /// for every environment; a Kubernetes Job sets it from its environment).
        #[arg(long, value_name = "URL", env = "LOAD_TARGET")]
        target: Option<String>,
        /// Push the run's figures to this Prometheus Pushgateway when it ends.
        #[arg(long, value_name = "URL", env = "PROMETHEUS_PUSHGATEWAY_URL")]
        pushgateway: Option<String>,
        /// An extra grouping label for the push, `name=value` (repeatable; e.g. `run=$RUN_ID`).
        #[arg(long = "pushgateway-label", value_name = "NAME=VALUE", value_parser = label)]
        labels: Vec<(String, String)>,
    },
    /// Join the results folders of a plan's segments into one summary.
    Merge {
        /// The segments' results folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged results folder goes.
        #[arg(long, value_name = "DIR", default_value = "results")]
        out: PathBuf,
    },
    /// Find the highest rate the target sustains (the plan's `capacity:` settings).
    Capacity {
        /// The plan (YAML).
        plan: PathBuf,
        /// Where results folders go.
        #[arg(long, value_name = "DIR", default_value = "results")]
        out: PathBuf,
    },
}

/// A grouping label: a Prometheus label name, `=`, a value.
fn label(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("a label is NAME=VALUE, not {text:?}"))?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && !["job", "plan", "segment"].contains(&name);
    if !valid {
        return Err(format!(
            "{name:?} is not a label name to add: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __, not job, plan or segment"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Where a run's figures go besides its folder.
#[derive(Debug, Default)]
struct Publish {
    pushgateway: Option<String>,
    labels: Vec<(String, String)>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let (path, out, search, segment, target, publish) = match cli.command {
        Command::Run { plan, out, segment, target, pushgateway, labels } => {
            (plan, out, false, segment.unwrap_or_default(), target, Publish { pushgateway, labels })
        }
        Command::Capacity { plan, out } => (plan, out, true, Segment::default(), None, Publish::default()),
        Command::Merge { dirs, out } => return merge(&dirs, &out),
    };
    let mut plan = match Plan::load(&path) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(target) = target {
        plan.target.endpoint = target;
    }
    let name = plan
        .name
        .clone()
        .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plan".into()));
    // Ctrl-C or SIGTERM stops the generator; in-flight iterations drain and the results are
    // written. A second one is left to the default action (the process ends).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_default(signal, std::sync::Arc::clone(&stop));
        let _ = signal_hook::flag::register(signal, std::sync::Arc::clone(&stop));
    }
    if search {
        return capacity(&plan, &name, &out, &path, &stop);
    }
    println!("load run {name}: running (Ctrl-C stops, drains and writes the results)");
    match exec::execute(&plan, &name, &out, &stop, segment) {
        Ok(summary) => {
            let pushed = publish.pushgateway.as_deref().map(|url| {
                reliability_load::push::deliver(&summary, url, &publish.labels, std::time::Duration::from_secs(10))
            });
            let i = &summary.iterations;
            let s = &summary.spans;
            println!("load run {name}: results in {}", summary.folder.display());
            println!(
                "  iterations: {} offered, {} started, {} missed; spans: {} generated, {} accepted, {} rejected, \
                 {} dropped, {} failed, {} unfinished",
                i.offered,
                i.started,
                i.missed,
                s.generated,
                s.accepted,
                s.rejected,
                s.dropped.values().sum::<u64>(),
                s.failed.values().sum::<u64>(),
                s.unfinished
            );
            if let Some(t) = s.target_accepted {
                println!("  the target counted {t} spans accepted");
            }
            let l = &summary.latency_ms;
            println!("  latency from due time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", l.p50, l.p99, l.max);
            for v in &summary.thresholds {
                let verdict = if v.passed { "ok" } else { "BREACHED" };
                println!("  threshold {}: {verdict} ({} = {:.4})", v.threshold.expr, v.threshold.metric, v.value);
            }
            match &pushed {
                Some(Ok(group)) => println!("  pushed to the Pushgateway: {group}"),
                Some(Err(e)) => eprintln!("error: the results are written, but {e}"),
                None => {}
            }
            if summary.interrupted {
                println!("  interrupted: {} of the plan's iterations were due before the stop", i.offered);
                ExitCode::from(130)
            } else if !summary.thresholds.iter().all(|v| v.passed) {
                ExitCode::from(1)
            } else if matches!(pushed, Some(Err(_))) {
                ExitCode::from(5)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => failed(&e, &path),
    }
}

fn merge(dirs: &[PathBuf], out: &std::path::Path) -> ExitCode {
    let merged = match reliability_load::merge::merge(dirs) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match reliability_load::merge::write(&merged, out) {
        Ok(folder) => {
            println!("load merge: {} segments joined in {}", dirs.len(), folder.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(4)
        }
    }
}

fn failed(e: &ExecError, path: &std::path::Path) -> ExitCode {
    match e {
        ExecError::Unsupported(_) => {
            eprintln!("error: {}: {e}", path.display());
            ExitCode::from(2)
        }
        ExecError::Unreachable { .. } => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
        ExecError::Io(_) => {
            eprintln!("error: {e}");
            ExitCode::from(4)
        }
    }
}

fn capacity(
    plan: &Plan,
    name: &str,
    out: &std::path::Path,
    path: &std::path::Path,
    stop: &std::sync::atomic::AtomicBool,
) -> ExitCode {
    println!("load capacity {name}: searching (Ctrl-C stops and writes what was measured)");
    match exec::capacity(plan, name, out, stop) {
        Ok(report) => {
            for s in &report.steps {
                println!(
                    "  {:>10.1} it/s: achieved {:.3}, p99 {:>8.1} ms, errors {:.4}, {:>10.0} spans/s  {}",
                    s.step.rate,
                    s.step.achieved_ratio,
                    s.step.p99_ms,
                    s.step.error_rate,
                    s.spans_per_second,
                    s.broke.as_deref().map_or("held".to_owned(), |why| format!("broke: {why}"))
                );
            }
            println!(
                "load capacity {name}: sustainable {:.1} iterations/s ({:.0} spans/s); results in {}",
                report.sustainable_iterations_per_second,
                report.sustainable_spans_per_second,
                report.folder.display()
            );
            if report.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS }
        }
        Err(e) => failed(&e, path),
    }
}
