//! The run: registry → selection → libtest-mimic → summary, and the exit code.
//!
//! This is the only module that touches the process (argv, environment, stdout). Each stage it
//! calls is pure and tested on its own.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser as _;
use libtest_mimic::{Arguments, Conclusion, FormatSetting, Trial};

use crate::cli::Cli;
use crate::config::{Config, SelectionSettings};
use crate::error::Error;
use crate::registry::{self, TestCase};
use crate::selection::{Decision, Selection};

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
    let tests = match registry::collect() {
        Ok(tests) => tests,
        Err(err) => return fail(&err.into()),
    };
    match run(tests, std::env::args_os().collect(), &|key| std::env::var(key).ok()) {
        Ok(code) => ExitCode::from(code),
        Err(err) => fail(&err),
    }
}

fn fail(err: &Error) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(err.exit_code())
}

fn layer(file: SelectionSettings, over: SelectionSettings) -> SelectionSettings {
    SelectionSettings {
        include: if over.include.is_empty() { file.include } else { over.include },
        exclude: if over.exclude.is_empty() { file.exclude } else { over.exclude },
        markexpr: over.markexpr.or(file.markexpr),
        keyword: over.keyword.or(file.keyword),
    }
}

/// Runs `tests` with `args` (argv, including argv[0]) and `env`; returns the exit code.
pub fn run(tests: Vec<TestCase>, args: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>) -> Result<u8, Error> {
    let started = Instant::now();
    let cli = Cli::parse(args, env)?;
    if cli.help {
        println!("{}", Cli::help());
    }
    let libtest = match Arguments::try_parse_from(&cli.libtest_args) {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => {
            // --help: clap renders libtest's part.
            print!("{err}");
            return Ok(crate::error::EXIT_OK);
        }
        Err(err) => {
            let message = err.to_string();
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            return Err(Error::Libtest(message.trim_end().to_string()));
        }
    };

    let manifest_dir = env("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let config = Config::discover(cli.config.as_ref(), manifest_dir.as_deref())?;
    for test in &tests {
        for marker in &test.markers {
            config.markers.check(marker, &format!("test `{}` ({})", test.name, test.location))?;
        }
    }
    let settings = layer(config.selection.clone(), cli.selection.clone());
    let selection = Selection::new(&settings, &config.markers)?;

    if cli.list_markers {
        print_markers(&config, &tests);
        return Ok(crate::error::EXIT_OK);
    }

    // `--exact NAME` always runs NAME, gated or deselected: it is how nextest and IDEs run one
    // test, and a test they asked for must never be reported as passing without running.
    if libtest.exact {
        if let Some(filter) = &libtest.filter {
            let index = registry::index_by_name(&tests);
            match index.get(filter.as_str()) {
                Some(&i) => {
                    let test = &tests[i];
                    // Under `--ignored` libtest runs only ignored trials; flag it to match.
                    let trial = trial(test).with_ignored_flag(libtest.ignored);
                    return Ok(exit_code(&libtest_mimic::run(&libtest, vec![trial])));
                }
                None if env("NEXTEST").as_deref() == Some("1") => return Err(Error::ExactMissing(filter.clone())),
                None => {}
            }
        }
    }

    let decisions: Vec<Decision> = tests.iter().map(|t| selection.decide(t, &config.markers)).collect();
    if cli.collect_only {
        print_collection(&tests, &decisions);
    }

    let mut trials = Vec::new();
    let mut gated_reasons = BTreeMap::<String, Vec<&str>>::new();
    let mut deselected = 0u64;
    for (test, decision) in tests.iter().zip(&decisions) {
        match decision {
            Decision::Run => trials.push(trial(test)),
            Decision::Gated { missing } => {
                let trial = trial(test).with_ignored_flag(true);
                if !libtest.is_filtered_out(&trial) && libtest.is_ignored(&trial) {
                    gated_reasons.entry(Decision::gate_reason(missing)).or_default().push(&test.name);
                }
                trials.push(trial);
            }
            Decision::Deselected { .. } => deselected += 1,
        }
    }

    let would_run = trials.iter().filter(|t| !libtest.is_ignored(t)).count();
    if selection.is_active() && would_run == 0 && !libtest.list {
        let summary = describe_selection(&settings);
        return Err(Error::NothingSelected(format!(
            "{summary} left none of the {} tests to run ({deselected} deselected, {} gated by opt-in markers)",
            tests.len(),
            trials.len()
        )));
    }
    if cli.collect_only {
        return Ok(crate::error::EXIT_OK);
    }

    let conclusion = libtest_mimic::run(&libtest, trials);
    let machine_output =
        libtest.list || matches!(libtest.format, Some(FormatSetting::Json)) || libtest.logfile.is_some();
    if !machine_output {
        print_summary(&conclusion, deselected, &gated_reasons, started.elapsed().as_secs_f64());
    }
    Ok(exit_code(&conclusion))
}

fn exit_code(conclusion: &Conclusion) -> u8 {
    if conclusion.has_failed() { crate::error::EXIT_TESTS_FAILED } else { crate::error::EXIT_OK }
}

fn trial(test: &TestCase) -> Trial {
    let run = test.run;
    let name = test.name.clone();
    Trial::test(test.name.clone(), move || {
        let _current = crate::CurrentTest::enter(name);
        run().map_err(Into::into)
    })
}

fn describe_selection(settings: &SelectionSettings) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &settings.markexpr {
        parts.push(format!("-m {:?} (from {})", m.value, m.origin));
    }
    if let Some(k) = &settings.keyword {
        parts.push(format!("-k {:?} (from {})", k.value, k.origin));
    }
    for (flag, list) in [("--include", &settings.include), ("--exclude", &settings.exclude)] {
        if let Some(first) = list.first() {
            let values: Vec<&str> = list.iter().map(|s| s.value.as_str()).collect();
            parts.push(format!("{flag} {} (from {})", values.join(","), first.origin));
        }
    }
    parts.join(" and ")
}

fn print_markers(config: &Config, tests: &[TestCase]) {
    for (name, marker) in config.markers.iter() {
        let count = tests.iter().filter(|t| t.has_marker(name)).count();
        let opt_in = if marker.opt_in { ", opt-in" } else { "" };
        println!("@{name}: {} ({count} tests{opt_in})", marker.description);
    }
}

fn print_collection(tests: &[TestCase], decisions: &[Decision]) {
    let mut deselected = Vec::new();
    let mut selected = 0;
    for (test, decision) in tests.iter().zip(decisions) {
        let markers = if test.markers.is_empty() { String::new() } else { format!(" [{}]", test.markers.join(", ")) };
        match decision {
            Decision::Run => {
                selected += 1;
                println!("{}{markers}", test.name);
            }
            Decision::Gated { missing } => {
                selected += 1;
                println!("{}{markers} (ignored: {})", test.name, Decision::gate_reason(missing));
            }
            Decision::Deselected { reason } => deselected.push(format!("{}{markers} ({reason})", test.name)),
        }
    }
    println!("\n{selected} selected, {} deselected", deselected.len());
    for line in deselected {
        println!("  deselected: {line}");
    }
}

fn print_summary(conclusion: &Conclusion, deselected: u64, gated: &BTreeMap<String, Vec<&str>>, seconds: f64) {
    if !gated.is_empty() {
        println!("short test summary info");
        for (reason, names) in gated {
            println!("SKIPPED [{}] {reason}", names.len());
        }
    }
    let counts = [
        (conclusion.num_passed, "passed"),
        (conclusion.num_failed, "failed"),
        (conclusion.num_ignored, "skipped"),
        (deselected + conclusion.num_filtered_out, "deselected"),
    ];
    let parts: Vec<String> = counts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    let body = if parts.is_empty() { "no tests ran".to_string() } else { parts.join(", ") };
    println!("==== {body} in {seconds:.2}s ====");
}
