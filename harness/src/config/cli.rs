//! Our command-line flags and their environment variables, taken out of argv before
//! libtest-mimic (a closed clap parser) sees the rest.
//!
//! Every flag has an environment variable because cargo-nextest, IDE run buttons and
//! `cargo test` across a workspace cannot pass custom flags. Layering: a flag beats its
//! variable, which beats `reliability.toml`. An empty value counts as unset.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::{Origin, RunSettings, SelectionSettings, Sourced};

/// One of our flags: its spellings, its variable, whether it takes a value, and its help.
struct FlagSpec {
    long: &'static str,
    short: Option<&'static str>,
    env: &'static str,
    value: Option<&'static str>,
    help: &'static str,
}

const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        long: "--include",
        short: None,
        env: "RELIABILITY_INCLUDE",
        value: Some("MARKER[,MARKER]"),
        help: "also run tests whose opt-in markers are all included (repeatable)",
    },
    FlagSpec {
        long: "--exclude",
        short: None,
        env: "RELIABILITY_EXCLUDE",
        value: Some("MARKER[,MARKER]"),
        help: "deselect tests carrying MARKER (repeatable)",
    },
    FlagSpec {
        long: "--markexpr",
        short: Some("-m"),
        env: "RELIABILITY_MARKEXPR",
        value: Some("EXPR"),
        help: "select by marker expression, e.g. \"e2e and not slow\"; overrides opt-in gating",
    },
    FlagSpec {
        long: "--keyword",
        short: Some("-k"),
        env: "RELIABILITY_KEYWORD",
        value: Some("EXPR"),
        help: "select by case-insensitive name substrings, e.g. \"delivery and not 100k\"",
    },
    FlagSpec {
        long: "--markers",
        short: None,
        env: "RELIABILITY_MARKERS",
        value: None,
        help: "list declared markers with descriptions and test counts, then exit",
    },
    FlagSpec {
        long: "--collect-only",
        short: Some("--co"),
        env: "RELIABILITY_COLLECT_ONLY",
        value: None,
        help: "list selected tests with markers, and deselected ones with the reason, then exit",
    },
    FlagSpec {
        long: "--config",
        short: None,
        env: "RELIABILITY_CONFIG",
        value: Some("PATH"),
        help: "read this file instead of reliability.toml at the workspace root",
    },
    FlagSpec {
        long: "--isolation",
        short: None,
        env: "RELIABILITY_ISOLATION",
        value: Some("process|thread"),
        help: "run each test in a child process (default) or on threads of this one",
    },
    FlagSpec {
        long: "--timeout",
        short: None,
        env: "RELIABILITY_TIMEOUT",
        value: Some("SECS"),
        help: "default per-test timeout; 0 disables (a test's own `timeout` wins)",
    },
    FlagSpec {
        long: "--reruns",
        short: None,
        env: "RELIABILITY_RERUNS",
        value: Some("N"),
        help: "retry a failing test up to N times; a later pass is reported as flaky",
    },
    FlagSpec {
        long: "--reruns-delay",
        short: None,
        env: "RELIABILITY_RERUNS_DELAY",
        value: Some("SECS"),
        help: "pause between retries",
    },
    FlagSpec {
        long: "--flaky-fails",
        short: None,
        env: "RELIABILITY_FLAKY_FAILS",
        value: None,
        help: "count flaky tests as failures",
    },
    FlagSpec {
        long: "--exitfirst",
        short: Some("-x"),
        env: "RELIABILITY_EXITFIRST",
        value: None,
        help: "stop after the first failure (--maxfail 1)",
    },
    FlagSpec {
        long: "--maxfail",
        short: None,
        env: "RELIABILITY_MAXFAIL",
        value: Some("N"),
        help: "stop scheduling after N failures; the rest are reported as not run",
    },
    FlagSpec {
        long: "--last-failed",
        short: Some("--lf"),
        env: "RELIABILITY_LAST_FAILED",
        value: None,
        help: "run only the tests that failed in the last run (all if none did)",
    },
    FlagSpec {
        long: "--failed-first",
        short: Some("--ff"),
        env: "RELIABILITY_FAILED_FIRST",
        value: None,
        help: "run the tests that failed in the last run first",
    },
    FlagSpec {
        long: "--no-metrics",
        short: None,
        env: "RELIABILITY_NO_METRICS",
        value: None,
        help: "turn the metrics layer off (CPU, allocation, RSS, series)",
    },
    FlagSpec {
        long: "--heap-profile",
        short: None,
        env: "RELIABILITY_HEAP_PROFILE",
        value: None,
        help: "write a dhat heap profile per test under target/reliability/dhat/ (needs the dhat-heap feature)",
    },
    FlagSpec {
        long: "--junitxml",
        short: None,
        env: "RELIABILITY_JUNITXML",
        value: Some("PATH"),
        help: "also write JUnit XML here (always written to target/reliability/junit.xml)",
    },
    FlagSpec {
        long: "--pushgateway-url",
        short: None,
        env: "PROMETHEUS_PUSHGATEWAY_URL",
        value: Some("URL"),
        help: "push the run's series to this Prometheus Pushgateway",
    },
    FlagSpec {
        long: "--pushgateway-job",
        short: None,
        env: "RELIABILITY_PUSHGATEWAY_JOB",
        value: Some("JOB"),
        help: "the Pushgateway job name (default reliability)",
    },
    FlagSpec {
        long: "--pushgateway-label",
        short: None,
        env: "RELIABILITY_PUSHGATEWAY_LABELS",
        value: Some("NAME=VALUE[,..]"),
        help: "a bounded grouping label for every pushed group, e.g. branch=main (repeatable)",
    },
    FlagSpec {
        long: "--require-push",
        short: None,
        env: "RELIABILITY_REQUIRE_PUSH",
        value: None,
        help: "a failed push fails the run (exit 6); otherwise it is a warning and the payload is spooled",
    },
    FlagSpec {
        long: "--push-pending",
        short: None,
        env: "RELIABILITY_PUSH_PENDING",
        value: None,
        help: "deliver spooled pushes from earlier runs to the Pushgateway, then exit",
    },
    FlagSpec {
        long: "--partition",
        short: None,
        env: "RELIABILITY_PARTITION",
        value: Some("KIND:M/N"),
        help: "run shard M of N: hash, count (cargo-nextest's meanings) or duration (balanced by the last run's durations)",
    },
    FlagSpec {
        long: "--merge",
        short: None,
        env: "RELIABILITY_MERGE",
        value: Some("REPORT[,..]"),
        help: "join the report.json files of a run's shards into one run's reports (repeatable), then exit",
    },
    FlagSpec {
        long: "--durations",
        short: None,
        env: "RELIABILITY_DURATIONS",
        value: Some("N"),
        help: "print the N slowest setup/call/teardown phases (0: all)",
    },
];

/// libtest-mimic 0.8's flags: those taking a value, and the others. Anything else starting
/// with `-` is refused here, with the full list, instead of by clap.
const LIBTEST_VALUE_FLAGS: &[&str] = &["--skip", "--format", "--test-threads", "--logfile", "--color", "-Z"];
const LIBTEST_FLAGS: &[&str] = &[
    "--exact",
    "--ignored",
    "--include-ignored",
    "--list",
    "-q",
    "--quiet",
    "--nocapture",
    "--show-output",
    "--test",
    "--bench",
    "-h",
    "--help",
];

/// A command line that cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A flag nobody knows.
    #[error("unknown flag `{flag}`\n  our flags: {ours}\n  libtest flags: {libtest}\n  (see --help)")]
    UnknownFlag {
        /// The flag as given.
        flag: String,
        /// Our flags.
        ours: String,
        /// libtest-mimic's flags.
        libtest: String,
    },
    /// A flag that needs a value came last.
    #[error("flag `{0}` needs a value")]
    MissingValue(String),
    /// An argument is not UTF-8.
    #[error("argument {0:?} is not valid UTF-8")]
    NotUtf8(OsString),
    /// A boolean variable has a value we do not understand.
    #[error("environment variable {var}={value:?} is not a boolean; valid values: 1, true, yes, on, 0, false, no, off")]
    BadBool {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

/// What our flags and variables asked for, with libtest's arguments left over.
#[derive(Debug, Default)]
pub struct Cli {
    /// Selection settings from environment and flags (to layer over the file's).
    pub selection: SelectionSettings,
    /// Runner settings from environment and flags (to layer over the file's).
    pub run: RunSettings,
    /// `--markers`.
    pub list_markers: bool,
    /// `--collect-only`.
    pub collect_only: bool,
    /// `--config`.
    pub config: Option<Sourced<PathBuf>>,
    /// `--push-pending`.
    pub push_pending: bool,
    /// `--merge`: shards' report.json files (or their directories) to join instead of running.
    pub merge: Vec<PathBuf>,
    /// `--help` was asked for (libtest's help follows ours).
    pub help: bool,
    /// `argv[0]` and libtest-mimic's arguments, in order.
    pub libtest_args: Vec<String>,
}

fn split_list(value: &str, origin: &Origin) -> Vec<Sourced<String>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Sourced { value: s.to_string(), origin: origin.clone() })
        .collect()
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, UsageError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        _ => Err(UsageError::BadBool { var, value: value.to_string() }),
    }
}

impl Cli {
    /// Reads argv and the environment (through `env`, so tests need not touch the process's).
    pub fn parse(args: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>) -> Result<Cli, UsageError> {
        let args: Vec<String> =
            args.into_iter().map(|a| a.into_string().map_err(UsageError::NotUtf8)).collect::<Result<_, _>>()?;
        let mut cli = Cli::default();

        // Environment first; a flag given on the command line replaces its variable's value.
        let mut from_env: Vec<(&'static FlagSpec, String)> = Vec::new();
        for spec in FLAGS {
            if let Some(value) = env(spec.env).filter(|v| !v.trim().is_empty()) {
                from_env.push((spec, value));
            }
        }
        let mut from_flags: Vec<(&'static FlagSpec, String)> = Vec::new();

        let mut iter = args.into_iter();
        if let Some(argv0) = iter.next() {
            cli.libtest_args.push(argv0);
        }
        let mut rest_positional = false;
        while let Some(arg) = iter.next() {
            if rest_positional || !arg.starts_with('-') || arg == "-" {
                cli.libtest_args.push(arg);
                continue;
            }
            if arg == "--" {
                rest_positional = true;
                cli.libtest_args.push(arg);
                continue;
            }
            if let Some((spec, inline)) = match_ours(&arg) {
                let value = match (spec.value, inline) {
                    (None, _) => "1".to_string(),
                    (Some(_), Some(v)) => v,
                    (Some(_), None) => iter.next().ok_or_else(|| UsageError::MissingValue(arg.clone()))?,
                };
                from_flags.push((spec, value));
                continue;
            }
            let name = arg.split_once('=').map_or(arg.as_str(), |(n, _)| n);
            if LIBTEST_VALUE_FLAGS.contains(&name) {
                let has_inline = arg.contains('=');
                cli.libtest_args.push(arg.clone());
                if !has_inline {
                    cli.libtest_args.push(iter.next().ok_or(UsageError::MissingValue(arg))?);
                }
            } else if LIBTEST_FLAGS.contains(&arg.as_str()) {
                if arg == "-h" || arg == "--help" {
                    cli.help = true;
                }
                cli.libtest_args.push(arg);
            } else {
                return Err(UsageError::UnknownFlag {
                    flag: arg,
                    ours: FLAGS.iter().map(|f| f.long).collect::<Vec<_>>().join(" "),
                    libtest: LIBTEST_VALUE_FLAGS.iter().chain(LIBTEST_FLAGS).copied().collect::<Vec<_>>().join(" "),
                });
            }
        }

        for (layer, origin_of) in [
            (from_env, (|spec: &FlagSpec| Origin::Env(spec.env)) as fn(&FlagSpec) -> Origin),
            (from_flags, |spec: &FlagSpec| Origin::Flag(spec.short.unwrap_or(spec.long))),
        ] {
            // Within a layer, repeated list flags accumulate; across layers the later replaces.
            let mut replaced: Vec<&str> = Vec::new();
            for (spec, value) in layer {
                let origin = origin_of(spec);
                let first_in_layer = !replaced.contains(&spec.long);
                replaced.push(spec.long);
                cli.apply(spec, value, origin, first_in_layer)?;
            }
        }
        Ok(cli)
    }

    fn apply(
        &mut self,
        spec: &FlagSpec,
        value: String,
        origin: Origin,
        first_in_layer: bool,
    ) -> Result<(), UsageError> {
        let sel = &mut self.selection;
        match spec.long {
            "--include" | "--exclude" => {
                let list = if spec.long == "--include" { &mut sel.include } else { &mut sel.exclude };
                if first_in_layer {
                    list.clear();
                }
                list.extend(split_list(&value, &origin));
            }
            "--markexpr" => sel.markexpr = Some(Sourced { value, origin }),
            "--keyword" => sel.keyword = Some(Sourced { value, origin }),
            "--markers" => self.list_markers = parse_bool(spec.env, &value)?,
            "--collect-only" => self.collect_only = parse_bool(spec.env, &value)?,
            "--config" => self.config = Some(Sourced { value: PathBuf::from(value), origin }),
            "--push-pending" => self.push_pending = parse_bool(spec.env, &value)?,
            "--merge" => {
                if first_in_layer {
                    self.merge.clear();
                }
                self.merge.extend(split_list(&value, &origin).into_iter().map(|s| PathBuf::from(s.value)));
            }
            "--pushgateway-label" => {
                if first_in_layer {
                    self.run.pushgateway_labels.clear();
                }
                self.run.pushgateway_labels.extend(split_list(&value, &origin));
            }
            "--no-metrics" => {
                let on = if parse_bool(spec.env, &value)? { "false" } else { "true" };
                self.run.metrics = Some(Sourced { value: on.into(), origin });
            }
            long => {
                let run = &mut self.run;
                let slot = match long {
                    "--isolation" => &mut run.isolation,
                    "--timeout" => &mut run.timeout,
                    "--reruns" => &mut run.reruns,
                    "--reruns-delay" => &mut run.reruns_delay,
                    "--flaky-fails" => &mut run.flaky_fails,
                    "--maxfail" => &mut run.maxfail,
                    "--last-failed" => &mut run.last_failed,
                    "--failed-first" => &mut run.failed_first,
                    "--durations" => &mut run.durations,
                    "--partition" => &mut run.partition,
                    "--heap-profile" => &mut run.heap_profile,
                    "--junitxml" => &mut run.junitxml,
                    "--pushgateway-url" => &mut run.pushgateway_url,
                    "--pushgateway-job" => &mut run.pushgateway_job,
                    "--require-push" => &mut run.require_push,
                    "--exitfirst" => {
                        if parse_bool(spec.env, &value)? {
                            run.maxfail = Some(Sourced { value: "1".into(), origin });
                        }
                        return Ok(());
                    }
                    other => unreachable!("flag {other} has no handler"),
                };
                *slot = Some(Sourced { value, origin });
            }
        }
        Ok(())
    }

    /// The test named by `NAME --exact`, if that is how the binary was started (children,
    /// cargo-nextest, IDEs). Environment variables are not consulted: only argv matters here.
    pub fn exact_name(args: &[OsString]) -> Option<String> {
        let cli = Cli::parse(args.to_vec(), &|_| None).ok()?;
        if !cli.libtest_args.iter().any(|a| a == "--exact") {
            return None;
        }
        let mut rest = cli.libtest_args.iter().skip(1);
        let mut filter = None;
        while let Some(arg) = rest.next() {
            if LIBTEST_VALUE_FLAGS.contains(&arg.as_str()) {
                rest.next();
            } else if !arg.starts_with('-') && filter.is_none() {
                filter = Some(arg.clone());
            }
        }
        filter
    }

    /// The help text for our flags; libtest's follows it.
    pub fn help() -> String {
        let mut out =
            String::from("reliability: pytest-style selection on top of libtest\n\nSELECTION AND COLLECTION:\n");
        for spec in FLAGS {
            let names = match spec.short {
                Some(short) => format!("{short}, {}", spec.long),
                None => spec.long.to_string(),
            };
            let names = match spec.value {
                Some(value) => format!("{names} {value}"),
                None => names,
            };
            out.push_str(&format!("  {names:<32} {}\n  {:<32} [env: {}]\n", spec.help, "", spec.env));
        }
        out.push_str(
            "\nEXIT CODES: 0 ok, 101 test failures, 2 usage or configuration error, \
             5 nothing selected by -m/-k/--include/--exclude, 6 push failed with --require-push, \
             130 interrupted\n\nLIBTEST OPTIONS:",
        );
        out
    }
}

/// Matches `--include`, `--include=X`, `-m`, `-mX`, `-m=X`.
fn match_ours(arg: &str) -> Option<(&'static FlagSpec, Option<String>)> {
    for spec in FLAGS {
        for name in std::iter::once(spec.long).chain(spec.short) {
            if arg == name {
                return Some((spec, None));
            }
            let Some(rest) = arg.strip_prefix(name) else { continue };
            if spec.value.is_none() {
                continue;
            }
            if let Some(value) = rest.strip_prefix('=') {
                return Some((spec, Some(value.to_string())));
            }
            // pytest (argparse) accepts `-mEXPR` for single-dash short flags.
            if name.len() == 2 && !rest.is_empty() {
                return Some((spec, Some(rest.to_string())));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, UsageError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args = std::iter::once("bin").chain(args.iter().copied()).map(OsString::from).collect();
        Cli::parse(args, &|key| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    fn values(list: &[Sourced<String>]) -> Vec<&str> {
        list.iter().map(|s| s.value.as_str()).collect()
    }

    #[test]
    fn strips_our_flags_and_keeps_libtest_ones_in_order() {
        let cli = parse(
            &[
                "--include",
                "e2e",
                "filter",
                "--skip",
                "-m",
                "--include=slow,chaos",
                "-m",
                "e2e",
                "--exact",
                "--format=json",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(cli.libtest_args, ["bin", "filter", "--skip", "-m", "--exact", "--format=json"]);
        assert_eq!(values(&cli.selection.include), ["e2e", "slow", "chaos"]);
        let markexpr = cli.selection.markexpr.unwrap();
        assert_eq!(markexpr.value, "e2e");
        assert_eq!(markexpr.origin, Origin::Flag("-m"));
    }

    #[test]
    fn short_forms_and_inline_values() {
        let cli = parse(&["-kdelivery", "-m=e2e", "--co", "--exclude=chaos"], &[]).unwrap();
        assert_eq!(cli.selection.keyword.unwrap().value, "delivery");
        assert_eq!(cli.selection.markexpr.unwrap().value, "e2e");
        assert!(cli.collect_only);
        assert_eq!(values(&cli.selection.exclude), ["chaos"]);
    }

    #[test]
    fn flags_replace_environment_and_empty_variables_are_unset() {
        let env = [("RELIABILITY_INCLUDE", "e2e, slow"), ("RELIABILITY_MARKEXPR", ""), ("RELIABILITY_KEYWORD", "x")];
        let cli = parse(&[], &env).unwrap();
        assert_eq!(values(&cli.selection.include), ["e2e", "slow"]);
        assert_eq!(cli.selection.include[0].origin, Origin::Env("RELIABILITY_INCLUDE"));
        assert!(cli.selection.markexpr.is_none());

        let cli = parse(&["--include", "chaos", "-k", "y"], &env).unwrap();
        assert_eq!(values(&cli.selection.include), ["chaos"]);
        assert_eq!(cli.selection.keyword.unwrap().value, "y");
    }

    #[test]
    fn boolean_variables_are_checked() {
        assert!(parse(&[], &[("RELIABILITY_COLLECT_ONLY", "yes")]).unwrap().collect_only);
        let err = parse(&[], &[("RELIABILITY_MARKERS", "maybe")]).unwrap_err().to_string();
        assert!(err.contains("RELIABILITY_MARKERS=\"maybe\" is not a boolean; valid values: 1, true"), "{err}");
    }

    #[test]
    fn unknown_flags_and_missing_values_are_usage_errors() {
        let err = parse(&["--includ", "e2e"], &[]).unwrap_err().to_string();
        assert!(err.starts_with("unknown flag `--includ`\n  our flags: --include --exclude"), "{err}");
        assert!(err.contains("libtest flags: --skip --format"), "{err}");
        assert_eq!(parse(&["-m"], &[]).unwrap_err().to_string(), "flag `-m` needs a value");
        assert_eq!(parse(&["--skip"], &[]).unwrap_err().to_string(), "flag `--skip` needs a value");
    }

    #[test]
    fn runner_flags_land_in_run_settings() {
        let cli =
            parse(&["-x", "--timeout=2", "--lf", "--isolation", "thread"], &[("RELIABILITY_RERUNS", "3")]).unwrap();
        let run = cli.run;
        assert_eq!(run.maxfail.unwrap().value, "1");
        assert_eq!(run.timeout.unwrap().value, "2");
        assert_eq!(run.last_failed.unwrap().value, "1");
        assert_eq!(run.isolation.unwrap().value, "thread");
        let reruns = run.reruns.unwrap();
        assert_eq!((reruns.value.as_str(), reruns.origin.clone()), ("3", Origin::Env("RELIABILITY_RERUNS")));
    }

    #[test]
    fn exact_name_finds_the_positional_filter() {
        let args = |v: &[&str]| std::iter::once("bin").chain(v.iter().copied()).map(OsString::from).collect::<Vec<_>>();
        assert_eq!(Cli::exact_name(&args(&["a::b", "--nocapture", "--exact"])).as_deref(), Some("a::b"));
        assert_eq!(Cli::exact_name(&args(&["--skip", "x", "--exact", "a::b"])).as_deref(), Some("a::b"));
        assert_eq!(Cli::exact_name(&args(&["-m", "e2e", "a::b"])), None);
    }

    #[test]
    fn everything_after_double_dash_is_positional() {
        let cli = parse(&["--", "-m"], &[]).unwrap();
        assert_eq!(cli.libtest_args, ["bin", "--", "-m"]);
        assert!(cli.selection.markexpr.is_none());
    }

    #[test]
    fn help_lists_every_flag_with_its_variable() {
        let help = Cli::help();
        for spec in FLAGS {
            assert!(help.contains(spec.long) && help.contains(spec.env), "{}", spec.long);
        }
    }
}
