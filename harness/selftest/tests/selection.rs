//! Runs the fixture suite as a user (and cargo-nextest) would, and asserts the exact set of
//! test bodies that ran, the exit code and the key lines of output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_fixture-suite");

const DEFAULT: &[&str] = &[
    "api::async_ok",
    "api::returns_ok",
    "api::square[-3-9]",
    "api::square[2-4]",
    "basic::plain",
    "basic::smoke_check",
];
const E2E: &[&str] = &["delivery::baseline", "delivery::paced"];
const E2E_SLOW: &[&str] = &["delivery::ladder[1000]", "delivery::ladder[10000]"];
const E2E_SLOW_CHAOS: &[&str] = &["delivery::ladder[huge]"];
const CHAOS: &[&str] = &["chaos::kill_backend"];
const CHAOS_SLOW: &[&str] = &["chaos::slow_partition"];
const SOAK: &[&str] = &["soak::overnight"];

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reliability.toml")
}

/// A path in this process's own fresh directory (never one named by the pid: pids are
/// reused, and an earlier run's log would be read as this run's).
fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir =
        DIR.get_or_init(|| tempfile::Builder::new().prefix("harness-selftest-").tempdir().expect("scratch dir").keep());
    dir.join(format!("{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// What one invocation did.
struct Run {
    ran: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ran_set(&self) -> BTreeSet<&str> {
        self.ran.iter().map(String::as_str).collect()
    }
}

/// Runs the fixture suite with `args` and extra `env`, isolated from the caller's
/// `RELIABILITY_*` variables.
fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let log = scratch("run.log");
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("FIXTURE_RUN_LOG", &log).env("RELIABILITY_CONFIG", config());
    for (key, _) in std::env::vars() {
        if key.starts_with("RELIABILITY_") || key.starts_with("NEXTEST") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RELIABILITY_CONFIG", config());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let Output { status, stdout, stderr } = cmd.output().expect("run fixture-suite");
    let ran = std::fs::read_to_string(&log).unwrap_or_default().lines().map(str::to_string).collect();
    Run {
        ran,
        code: status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// label, args, env, exit code, tests that must run.
type Invocation = (&'static str, Vec<&'static str>, Vec<(&'static str, &'static str)>, i32, BTreeSet<&'static str>);

/// args, env, start of the expected stderr.
type BadInput<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, String);

fn set(groups: &[&[&'static str]]) -> BTreeSet<&'static str> {
    groups.iter().flat_map(|g| g.iter().copied()).collect()
}

fn all() -> BTreeSet<&'static str> {
    set(&[DEFAULT, E2E, E2E_SLOW, E2E_SLOW_CHAOS, CHAOS, CHAOS_SLOW, SOAK])
}

#[test]
fn each_invocation_runs_exactly_the_expected_tests() {
    let without = |names: &[&'static str]| -> BTreeSet<&'static str> {
        let mut s = set(&[DEFAULT]);
        for n in names {
            s.remove(n);
        }
        s
    };
    let cases: Vec<Invocation> = vec![
        ("default", vec![], vec![], 0, set(&[DEFAULT])),
        ("include e2e", vec!["--include", "e2e"], vec![], 0, set(&[DEFAULT, E2E])),
        ("include e2e, slow", vec!["--include", "e2e", "--include", "slow"], vec![], 0, set(&[DEFAULT, E2E, E2E_SLOW])),
        (
            "comma list",
            vec!["--include=e2e,slow,chaos"],
            vec![],
            0,
            set(&[DEFAULT, E2E, E2E_SLOW, E2E_SLOW_CHAOS, CHAOS, CHAOS_SLOW]),
        ),
        ("exclude smoke", vec!["--exclude", "smoke"], vec![], 0, without(&["basic::smoke_check"])),
        (
            "include chaos, exclude slow",
            vec!["--include", "chaos", "--exclude", "slow"],
            vec![],
            0,
            set(&[DEFAULT, CHAOS]),
        ),
        (
            "exclude chaos",
            vec!["--include", "e2e,slow", "--exclude", "chaos"],
            vec![],
            0,
            set(&[DEFAULT, E2E, E2E_SLOW]),
        ),
        ("-m e2e and not slow", vec!["-m", "e2e and not slow"], vec![], 0, set(&[E2E])),
        ("-m (e2e or chaos) and not slow", vec!["-m", "(e2e or chaos) and not slow"], vec![], 0, set(&[E2E, CHAOS])),
        ("-m slow overrides gating", vec!["-m", "slow"], vec![], 0, set(&[E2E_SLOW, E2E_SLOW_CHAOS, CHAOS_SLOW])),
        ("-m not e2e", vec!["-m", "not e2e"], vec![], 0, set(&[DEFAULT, CHAOS, CHAOS_SLOW, SOAK])),
        (
            "-k is case-insensitive",
            vec!["-k", "PLAIN or Square"],
            vec![],
            0,
            set(&[&["basic::plain", "api::square[2-4]", "api::square[-3-9]"]]),
        ),
        ("-k with not", vec!["-k", "square and not -3"], vec![], 0, set(&[&["api::square[2-4]"]])),
        ("-k with --include", vec!["-k", "ladder", "--include", "e2e,slow"], vec![], 0, set(&[E2E_SLOW])),
        ("-k and -m together", vec!["-k", "delivery", "-m", "not slow"], vec![], 0, set(&[E2E])),
        ("exact on a gated test", vec!["--exact", "delivery::baseline"], vec![], 0, set(&[&["delivery::baseline"]])),
        ("exact on a case", vec!["delivery::ladder[huge]", "--exact"], vec![], 0, set(&[E2E_SLOW_CHAOS])),
        (
            "exact on a deselected test",
            vec!["--exact", "basic::plain", "-m", "e2e"],
            vec![],
            0,
            set(&[&["basic::plain"]]),
        ),
        ("--ignored", vec!["--ignored"], vec![], 0, set(&[E2E, E2E_SLOW, E2E_SLOW_CHAOS, CHAOS, CHAOS_SLOW, SOAK])),
        ("--include-ignored", vec!["--include-ignored"], vec![], 0, all()),
        (
            "--ignored with --include e2e",
            vec!["--ignored", "--include", "e2e"],
            vec![],
            0,
            set(&[E2E_SLOW, E2E_SLOW_CHAOS, CHAOS, CHAOS_SLOW, SOAK]),
        ),
        ("libtest filter", vec!["delivery::"], vec![], 0, set(&[])),
        ("libtest filter with include", vec!["delivery::", "--include", "e2e"], vec![], 0, set(&[E2E])),
        ("libtest --skip", vec!["--skip", "api::", "--skip", "smoke"], vec![], 0, set(&[&["basic::plain"]])),
        ("env include", vec![], vec![("RELIABILITY_INCLUDE", "e2e")], 0, set(&[DEFAULT, E2E])),
        ("env markexpr", vec![], vec![("RELIABILITY_MARKEXPR", "e2e and not slow")], 0, set(&[E2E])),
        ("env keyword", vec![], vec![("RELIABILITY_KEYWORD", "smoke")], 0, set(&[&["basic::smoke_check"]])),
        ("flag beats env", vec!["--include", "e2e"], vec![("RELIABILITY_INCLUDE", "chaos")], 0, set(&[DEFAULT, E2E])),
        ("empty env is unset", vec![], vec![("RELIABILITY_MARKEXPR", "")], 0, set(&[DEFAULT])),
        ("plain filter matching nothing", vec!["no_such_test"], vec![], 0, set(&[])),
        ("-m matching nothing", vec!["-m", "soak and e2e"], vec![], 5, set(&[])),
        ("-k matching only gated tests", vec!["-k", "delivery"], vec![], 5, set(&[])),
        ("-k matching nothing", vec!["-k", "nothing_like_this"], vec![], 5, set(&[])),
    ];
    let mut failures = Vec::new();
    for (label, args, env, code, expected) in &cases {
        let run = run(args, env);
        let got = run.ran_set();
        if run.ran.len() != got.len() {
            failures.push(format!("{label}: a test ran twice: {:?}", run.ran));
        }
        if got != *expected || run.code != *code {
            failures.push(format!(
                "{label} ({args:?} {env:?}): exit {} (want {code}), ran {got:?}, want {expected:?}\nstderr: {}",
                run.code, run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} invocations differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn config_file_selection_is_layered_under_env_and_flags() {
    let path = scratch("layered.toml");
    std::fs::write(
        &path,
        "[markers]\nsmoke = { description = \"s\" }\nsoak = { description = \"h\", opt-in = true }\n\
         [selection]\ninclude = [\"soak\"]\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let file_only = run(&[], &[("RELIABILITY_CONFIG", path)]);
    assert_eq!(file_only.ran_set(), set(&[DEFAULT, SOAK]), "{}", file_only.stderr);
    let env_over_file = run(&[], &[("RELIABILITY_CONFIG", path), ("RELIABILITY_INCLUDE", "e2e")]);
    assert_eq!(env_over_file.ran_set(), set(&[DEFAULT, E2E]));
    let flag_config = run(&["--config", path, "--include", "chaos"], &[("RELIABILITY_CONFIG", "/nonexistent.toml")]);
    assert_eq!(flag_config.ran_set(), set(&[DEFAULT, CHAOS]), "{}", flag_config.stderr);
}

#[test]
fn output_keeps_libtest_line_and_adds_pytest_summary_with_reasons() {
    let run = run(&["--include", "e2e"], &[]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("test result: ok. 8 passed; 0 failed; 6 ignored;"), "{}", run.stdout);
    assert!(run.stdout.contains("SKIPPED [2] opt-in marker slow: pass --include slow\n"), "{}", run.stdout);
    assert!(run.stdout.contains("SKIPPED [1] opt-in marker soak: pass --include soak\n"), "{}", run.stdout);
    let last = run.stdout.lines().last().unwrap();
    assert!(last.starts_with("==== 8 passed, 6 skipped in ") && last.ends_with("s ===="), "{last}");

    let deselected = self::run(&["-m", "e2e and not slow"], &[]);
    let last = deselected.stdout.lines().last().unwrap();
    assert!(last.starts_with("==== 2 passed, 12 deselected in "), "{last}");

    let json = self::run(&["--format", "json", "-Z", "unstable-options"], &[]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    for line in json.stdout.lines().filter(|l| !l.is_empty()) {
        assert!(line.starts_with('{') && line.ends_with('}'), "not a JSON line: {line}");
    }
}

#[test]
fn nothing_selected_exits_5_and_says_why() {
    let run = run(&["-m", "soak and e2e"], &[]);
    assert_eq!(run.code, 5);
    assert!(run.ran.is_empty());
    assert_eq!(
        run.stderr.trim_end(),
        "error: no tests selected: -m \"soak and e2e\" (from flag -m) left none of the 14 tests to run \
         (14 deselected, 0 gated by opt-in markers)"
    );
}

#[test]
fn markers_and_collect_only_describe_without_running() {
    let markers = run(&["--markers"], &[]);
    assert_eq!(markers.code, 0);
    assert!(markers.ran.is_empty());
    assert_eq!(
        markers.stdout,
        "@chaos: injects faults: network, process or resource failures (3 tests, opt-in)\n\
         @e2e: end-to-end test against a real target (the embedded backend by default) (5 tests, opt-in)\n\
         @slow: takes long (minutes); runs alone on the machine (4 tests, opt-in)\n\
         @smoke: quick checks that always run (1 tests)\n\
         @soak: runs for hours (1 tests, opt-in)\n"
    );

    let collect = run(&["--collect-only", "-m", "e2e and not chaos"], &[]);
    assert_eq!(collect.code, 0);
    assert!(collect.ran.is_empty());
    assert!(
        collect.stdout.starts_with(
            "delivery::baseline [e2e]\ndelivery::ladder[10000] [e2e, slow]\ndelivery::ladder[1000] [e2e, slow]\n\
         delivery::paced [e2e]\n\n4 selected, 10 deselected\n"
        ),
        "{}",
        collect.stdout
    );
    assert!(collect.stdout.contains("  deselected: delivery::ladder[huge] [e2e, slow, chaos] (not matched by -m)\n"));

    let gated = run(&["--co"], &[("RELIABILITY_KEYWORD", "overnight")]);
    assert_eq!(
        gated.stdout.lines().next(),
        Some("soak::overnight [soak] (ignored: opt-in marker soak: pass --include soak)")
    );
}

/// Each bad input: exit 2, one clear message on stderr, nothing run.
#[test]
fn bad_input_gives_one_clear_message_and_exit_2() {
    let broken = scratch("broken.toml");
    std::fs::write(&broken, "[markers]\nsmoke = { description = \"s\" }\nsoak = { description = 3 }\n").unwrap();
    let undeclared = scratch("undeclared.toml");
    std::fs::write(&undeclared, "[markers]\nsmoke = { description = \"s\" }\n").unwrap();
    let cases: Vec<BadInput> = vec![
        (vec!["--includ", "e2e"], vec![], "error: unknown flag `--includ`\n  our flags: --include".into()),
        (vec!["-m", "e2e and (slow"], vec![], "error: invalid expression in flag -m: at column 14: expected right parenthesis; got end of input\n  e2e and (slow\n               ^".into()),
        (vec![], vec![("RELIABILITY_KEYWORD", "a or or b")], "error: invalid expression in environment variable RELIABILITY_KEYWORD: at column 6: expected not OR left parenthesis OR identifier; got or".into()),
        (vec!["-m", "e2e or slwo"], vec![], "error: the marker expression from flag -m uses undeclared marker `slwo`; declared markers: chaos, e2e, slow, smoke, soak".into()),
        (vec!["--include", "e2ee"], vec![], "error: flag --include uses undeclared marker `e2ee`; declared markers: chaos, e2e, slow, smoke, soak".into()),
        (vec![], vec![("RELIABILITY_CONFIG", broken.to_str().unwrap())], format!("error: invalid {}:3:24: invalid type: integer `3`, expected a string", broken.display())),
        (vec![], vec![("RELIABILITY_CONFIG", undeclared.to_str().unwrap())], "error: test `soak::overnight` (harness/selftest/src/fixtures.rs:".into()),
        (vec![], vec![("RELIABILITY_CONFIG", "/nonexistent/r.toml")], "error: failed to read /nonexistent/r.toml: No such file or directory".into()),
        (vec!["--format", "xml"], vec![], "error: invalid value 'xml' for '--format <pretty|terse|json>'".into()),
        (vec![], vec![("RELIABILITY_COLLECT_ONLY", "maybe")], "error: environment variable RELIABILITY_COLLECT_ONLY=\"maybe\" is not a boolean".into()),
    ];
    for (args, env, expected) in cases {
        let run = run(&args, &env);
        assert_eq!(run.code, 2, "{args:?} {env:?}: {}", run.stderr);
        assert!(run.ran.is_empty(), "{args:?} ran tests");
        assert!(run.stderr.starts_with(&expected), "{args:?} {env:?}:\n{}\nwant prefix:\n{expected}", run.stderr);
        assert_eq!(run.stderr.matches("error:").count(), 1, "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let undeclared = run(&[], &[("RELIABILITY_CONFIG", undeclared.to_str().unwrap())]);
    assert!(
        undeclared.stderr.contains("uses undeclared marker `soak`; declared markers: chaos, e2e, slow, smoke"),
        "{}",
        undeclared.stderr
    );
}

/// cargo-nextest's protocol: list (terse, then ignored), then one process per test with
/// `NAME --nocapture --exact` (plus `--ignored` for ignored ones) and `NEXTEST=1`.
#[test]
fn nextest_protocol_runs_every_listed_test_for_real() {
    let list = run(&["--list", "--format", "terse"], &[]);
    let ignored = run(&["--list", "--format", "terse", "--ignored"], &[]);
    let parse = |out: &str| -> Vec<String> {
        out.lines()
            .map(|line| line.strip_suffix(": test").unwrap_or_else(|| panic!("unclean list line {line:?}")).to_string())
            .collect()
    };
    let listed = parse(&list.stdout);
    let ignored: BTreeSet<String> = parse(&ignored.stdout).into_iter().collect();
    assert_eq!(listed.iter().map(String::as_str).collect::<BTreeSet<_>>(), all());
    assert_eq!(ignored.iter().map(String::as_str).collect::<BTreeSet<_>>(), &all() - &set(&[DEFAULT]));

    for name in &listed {
        let mut args = vec![name.as_str(), "--nocapture", "--exact"];
        if ignored.contains(name) {
            args.push("--ignored");
        }
        let nextest = [("NEXTEST", "1"), ("NEXTEST_EXECUTION_MODE", "process-per-test"), ("NEXTEST_TEST_NAME", name)];
        let run = run(&args, &nextest);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(run.ran, std::slice::from_ref(name), "{name} did not run exactly once");
        assert!(run.stdout.contains("1 passed; 0 failed; 0 ignored"), "{name}: {}", run.stdout);
    }

    // Selection variables that differ between listing and running cannot turn a requested
    // test into a silent pass.
    let run_gated = run(&["delivery::baseline", "--exact"], &[("NEXTEST", "1"), ("RELIABILITY_MARKEXPR", "soak")]);
    assert_eq!(run_gated.ran, ["delivery::baseline"]);
    let missing = run(&["no::such", "--exact"], &[("NEXTEST", "1")]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("test `no::such` was requested with --exact under cargo-nextest but does not exist")
    );
}

/// The binary run by path from a directory without `reliability.toml`, with no cargo or
/// harness variables (as a user copying the command from CI would): it falls back to the
/// package directory the tests were compiled in, finds the declared `smoke` marker, and runs
/// the default set.
#[test]
fn a_binary_run_from_elsewhere_finds_its_package_configuration() {
    let elsewhere = scratch("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("a directory without reliability.toml");
    let log = scratch("elsewhere.log");
    let mut cmd = Command::new(BIN);
    cmd.current_dir(&elsewhere).env("FIXTURE_RUN_LOG", &log).env("RELIABILITY_OUTPUT_DIR", elsewhere.join("out"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RELIABILITY_") || key.starts_with("NEXTEST") || key.starts_with("CARGO") {
            cmd.env_remove(key);
        }
    }
    let output = cmd.output().expect("run fixture-suite");
    let ran: BTreeSet<String> = std::fs::read_to_string(&log).unwrap_or_default().lines().map(str::to_string).collect();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(ran, set(&[DEFAULT]).into_iter().map(String::from).collect::<BTreeSet<_>>());
}

/// `--partition KIND:M/N` (and `RELIABILITY_PARTITION`): for each kind, the 3 shards of the
/// default selection run disjoint sets of bodies whose union is the unsharded selection, and
/// report disjoint sets of tests (gated ones as skipped) whose union is every test; each
/// shard's report.json names it; `duration:` deals the longest recorded test first; shards do
/// not rewrite the durations they read; a bad partition is a usage error (exit 2).
#[test]
fn partitions_run_disjoint_shards_that_cover_the_selection() {
    let durations = r#"{"seconds":{"api::async_ok":5.0,"basic::plain":3.0,"api::returns_ok":1.0}}"#;
    for kind in ["hash", "count", "duration"] {
        let out = scratch(&format!("partition-{kind}"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("durations.json"), durations).unwrap();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut reported: BTreeSet<String> = BTreeSet::new();
        for m in 1..=3 {
            let partition = format!("{kind}:{m}/3");
            let dir = ("RELIABILITY_OUTPUT_DIR", out.to_str().unwrap());
            let shard = match m {
                2 => run(&[], &[dir, ("RELIABILITY_PARTITION", &partition)]),
                _ => run(&["--partition", &partition], &[dir]),
            };
            assert_eq!(shard.code, 0, "{partition}: {}", shard.stderr);
            for name in &shard.ran {
                assert!(seen.insert(name.clone()), "{name} ran in two shards ({partition})");
            }
            let report: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
            assert_eq!(report["run"]["partition"], partition.as_str());
            // Gated tests are reported as skipped, each in one shard too.
            for test in report["tests"].as_array().unwrap() {
                let name = test["name"].as_str().unwrap().to_owned();
                assert!(reported.insert(name.clone()), "{name} reported by two shards ({partition})");
                let ran = shard.ran.contains(&name);
                assert_eq!(ran, test["outcome"]["kind"] != "skipped", "{partition}: {name}");
            }
            if kind == "duration" && m == 1 {
                assert!(
                    shard.ran.iter().any(|t| t == "api::async_ok"),
                    "the longest test goes to shard 1: {:?}",
                    shard.ran
                );
            }
        }
        let seen: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
        assert_eq!(seen, set(&[DEFAULT]), "{kind}");
        assert_eq!(reported.iter().map(String::as_str).collect::<BTreeSet<&str>>(), all(), "{kind}");
        assert_eq!(std::fs::read_to_string(out.join("durations.json")).unwrap(), durations, "{kind}");
    }
    for bad in ["hash:0/3", "hash:4/3", "slice:1/2", "count:1"] {
        let run = run(&["--partition", bad], &[]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.ran.is_empty());
    }
}

/// The outcome of every test in a report.json, by name.
fn outcomes(report: &Path) -> std::collections::BTreeMap<String, String> {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).expect("report.json")).expect("report.json is JSON");
    let tests = report["tests"].as_array().expect("tests");
    tests.iter().map(|t| (t["name"].as_str().expect("name").to_owned(), t["outcome"]["kind"].to_string())).collect()
}

/// `--merge`: three shards, each run into its own directory as on its own machine, merged,
/// equal one unsharded run test for test (names and outcomes in report.json, test cases in
/// junit.xml, the per-outcome counts in metrics.prom); a shard given twice, or left out, is
/// refused with exit 2.
#[test]
fn three_shards_merged_equal_one_unsharded_run() {
    let root = scratch("merge");
    let dir = |name: &str| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let whole = dir("whole");
    assert_eq!(run(&[], &[("RELIABILITY_OUTPUT_DIR", whole.to_str().unwrap())]).code, 0);
    let shards: Vec<PathBuf> = (1..=3).map(|m| dir(&format!("shard{m}"))).collect();
    for (m, shard) in shards.iter().enumerate() {
        let partition = format!("count:{}/3", m + 1);
        let run = run(&["--partition", &partition], &[("RELIABILITY_OUTPUT_DIR", shard.to_str().unwrap())]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let merged = dir("merged");
    let list: Vec<&str> = shards.iter().map(|s| s.to_str().unwrap()).collect();
    let joined = list.join(",");
    let merge = run(&["--merge", &joined], &[("RELIABILITY_OUTPUT_DIR", merged.to_str().unwrap())]);
    assert_eq!(merge.code, 0, "{}", merge.stderr);
    assert!(merge.ran.is_empty(), "merging runs no test");
    let (want, got) = (outcomes(&whole.join("report.json")), outcomes(&merged.join("report.json")));
    assert_eq!(got, want);
    assert!(got.len() > 6, "gated tests are in the merge as skipped too: {got:?}");
    let cases = |d: &Path| std::fs::read_to_string(d.join("junit.xml")).unwrap().matches("<testcase ").count();
    assert_eq!(cases(&merged), cases(&whole));
    let counts = |d: &Path| -> Vec<String> {
        let prom = std::fs::read_to_string(d.join("metrics.prom")).unwrap();
        prom.lines().filter(|l| l.starts_with("reliability_tests{")).map(str::to_owned).collect()
    };
    assert_eq!(counts(&merged), counts(&whole));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["run"]["partition"], serde_json::Value::Null);

    let bad_dir = dir("bad");
    let env = [("RELIABILITY_OUTPUT_DIR", bad_dir.to_str().unwrap())];
    let twice = format!("{},{}", list[0], list[0]);
    for bad in [twice.as_str(), &list[..2].join(","), &format!("{},{}", list.join(","), whole.display())] {
        let run = run(&["--merge", bad], &env);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(!bad_dir.join("report.json").exists(), "{bad}: nothing written");
    }
}
