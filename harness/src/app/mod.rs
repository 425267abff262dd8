//! The run: registry → selection → schedule/execute (the run's worker pool, printed through
//! libtest-mimic) → reports, and the exit code.
//!
//! This is the only module that touches the process (argv, environment, signals, stdout);
//! each stage it calls is tested on its own. Three ways in:
//! - a child (`RELIABILITY_CHILD` set): run one test in-process, write its result, exit;
//! - `--exact NAME` (cargo-nextest, IDEs): run that test in this process, whatever selects;
//! - otherwise: select, then run every test on the run's worker pool (`run::pool`), with
//!   libtest-mimic printing each result in order on this thread.
//!
//! [`run`] reads as the stages in order, each a function of its own: the invocation (arguments
//! and configuration, here), the plan (`plan`: selection, `--lf`, the shard, the trials), the
//! execution (`execute`: the run's services, the pool and libtest) and the outputs (`outputs`:
//! reports, pushes, the trace, the summary and the exit code).

mod execute;
mod outputs;
mod plan;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use clap::Parser as _;
use libtest_mimic::Arguments;

use crate::config::cli::Cli;
use crate::config::options::RunOptions;
use crate::config::{Config, SelectionSettings};
use crate::error::{EXIT_OK, Error};
use crate::registry::{self, TestCase};
use crate::report::summary::Summary;
use crate::run::pool::Pool;
use crate::select::{Decision, Selection};

/// How the harness reads the environment (the process's, or a test's stand-in).
type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

/// Runs the tests of this binary with the process's arguments and environment.
///
/// Call it from the `main` of a `harness = false` test target:
///
/// ```ignore
/// fn main() -> std::process::ExitCode {
///     reliability_harness::main()
/// }
/// ```
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // One test by exact name (a child, nextest, an IDE): no need to collect them all.
    let found = Cli::exact_name(&args).and_then(|name| registry::find(&name));
    let tests = match found {
        Some(test) => vec![test],
        None => match registry::collect() {
            Ok(tests) => tests,
            Err(err) => return fail(&err.into()),
        },
    };
    match run(tests, args, &|key| std::env::var(key).ok()) {
        Ok(code) => ExitCode::from(code),
        Err(err) => fail(&err),
    }
}

fn fail(err: &Error) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(err.exit_code())
}

/// Runs `tests` with `args` (argv, including `argv[0]`) and `env`; returns the exit code.
pub fn run(tests: Vec<TestCase>, args: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>) -> Result<u8, Error> {
    let started = (Instant::now(), SystemTime::now());
    let Some(inv) = Invocation::parse(&tests, args, env)? else { return Ok(EXIT_OK) };
    // Only `--exact` needs the name lookup; main() usually handed over just that one test.
    let exact = inv
        .libtest
        .filter
        .as_deref()
        .filter(|_| inv.libtest.exact)
        .map(|name| (name, tests.iter().position(|t| t.name == name)));
    if let Some(result_path) = env(crate::run::isolate::CHILD_ENV) {
        return run_child(&tests, exact.and_then(|(_, i)| i), &inv, &result_path);
    }
    if inv.cli.list_markers {
        plan::print_markers(&inv.config, &tests);
        return Ok(EXIT_OK);
    }
    let output_dir = crate::io::output_dir(env);
    if inv.cli.push_pending {
        return outputs::push_pending(&inv.options, &output_dir, env);
    }
    if !inv.cli.merge.is_empty() {
        return outputs::merge_shards(&inv.cli.merge, inv.options.clone(), &output_dir, env);
    }
    // The commit and branch for the reports, looked up while the tests run.
    let git = (exact.is_none() && !inv.libtest.list).then(|| crate::report::GitLookup::start(env));
    let mut summary = Summary::default();
    let (order, in_process) = match exact {
        // `--exact NAME` always runs NAME, gated or deselected, in this process: it is how
        // nextest and IDEs run one test, and a test they asked for must never pass unrun.
        Some((_, Some(i))) => (vec![(i, Decision::Run)], true),
        Some((name, None)) if env("NEXTEST").as_deref() == Some("1") => return Err(Error::ExactMissing(name.into())),
        _ => (plan::order(&tests, &inv, &output_dir, &mut summary), false),
    };
    let (ctx, mut services) = execute::start(&tests, &order, in_process, &inv, &output_dir)?;
    let tests = Arc::new(tests);
    let pool = Pool::new(Arc::clone(&ctx), Arc::clone(&tests));
    let planned = plan::trials(&order, &tests, &pool, &ctx, &inv, &mut summary)?;
    if inv.cli.collect_only {
        return Ok(EXIT_OK);
    }
    execute::prepare(&ctx, &tests, &order, &inv.libtest)?;
    let (conclusion, reports) = execute::run_trials(&ctx, pool, planned, &inv, &output_dir);
    // What only the run needed goes before the reports are written, where the heap peaked:
    // the order and the cases (0.4 and 0.56 MB for 10,000 tests; the pool went with the run).
    drop((order, tests));
    let session_errors = services.stop(&ctx);
    if inv.libtest.list {
        return Ok(EXIT_OK);
    }
    summary.filtered_out = conclusion.num_filtered_out;
    summary.session_errors = session_errors;
    summary.elapsed = started.0.elapsed();
    let finished = outputs::Finished { conclusion, reports, summary, git, started_at: started.1 };
    Ok(outputs::conclude(finished, &ctx, &inv, &output_dir, services.trace_target.as_ref()))
}

/// What every stage reads: the parsed arguments, the configuration, what it selects and sets,
/// and the environment.
struct Invocation<'e> {
    cli: Cli,
    libtest: Arguments,
    config: Config,
    /// The selection's settings (file layered with flags), for messages that name them.
    settings: SelectionSettings,
    selection: Selection,
    options: RunOptions,
    env: Env<'e>,
}

impl<'e> Invocation<'e> {
    /// Parses `args` and reads the configuration, checking every test's markers against it.
    /// `None`: `--help` was printed, and there is nothing to run.
    fn parse(tests: &[TestCase], args: Vec<OsString>, env: Env<'e>) -> Result<Option<Invocation<'e>>, Error> {
        let cli = Cli::parse(args, env)?;
        if cli.help {
            println!("{}", Cli::help());
        }
        let libtest = match Arguments::try_parse_from(&cli.libtest_args) {
            Ok(args) => args,
            Err(err) if !err.use_stderr() => {
                // --help: clap renders libtest's part.
                print!("{err}");
                return Ok(None);
            }
            Err(err) => {
                let message = err.to_string();
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                return Err(Error::Libtest(message.trim_end().to_string()));
            }
        };
        let manifest_dir = env("CARGO_MANIFEST_DIR").map(PathBuf::from);
        let compiled_in =
            tests.first().map(|t| std::path::Path::new(t.def.package_dir)).filter(|d| !d.as_os_str().is_empty());
        let config = Config::discover(cli.config.as_ref(), manifest_dir.as_deref(), compiled_in)?;
        for test in tests {
            for marker in &test.markers {
                config.markers.check(marker, &format!("test `{}` ({})", test.name, test.location()))?;
            }
        }
        let settings = config.selection.clone().layered(cli.selection.clone());
        let selection = Selection::new(&settings, &config.markers)?;
        let options = RunOptions::resolve(&config.run.clone().layered(cli.run.clone()))?;
        crate::measure::set_enabled(options.metrics);
        Ok(Some(Invocation { cli, libtest, config, settings, selection, options, env }))
    }
}

/// A child process of process isolation: runs test `found` here and writes its result to
/// `result_path` for the parent.
fn run_child(tests: &[TestCase], found: Option<usize>, inv: &Invocation<'_>, result_path: &str) -> Result<u8, Error> {
    let Some(i) = found else {
        return Err(Error::ExactMissing(inv.libtest.filter.clone().unwrap_or_default()));
    };
    Ok(match crate::run::isolate::child_main(&tests[i], &inv.config, std::path::Path::new(result_path)) {
        Ok(()) => EXIT_OK,
        Err(message) => {
            eprintln!("error: {message}");
            crate::error::EXIT_INTERNAL
        }
    })
}
