//! The gate, tested on itself (`slow`: it builds the benches twice). In a clone of this
//! repository's HEAD, a commit plants a regression in a benched function (`count_matches`,
//! measured by `harness/markexpr_eval` in both tiers: two extra evaluations of the six
//! sets' two cheapest, +15% instructions); the gate must fail, naming that bench in both tiers. The same clone
//! against itself must pass the instruction tier with a change of exactly zero. And bad input
//! (a base ref that does not exist, an unknown bench or a bad threshold in `[benches]`, a bad
//! flag) must end with exit 2 before anything is measured.
//!
//! Run: `cargo test -p reliability-benches --test gate -- --include slow`

#![expect(clippy::unwrap_used, reason = "test code: a panic is the failure report")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reliability_harness as rh;
use serde_json::Value;

reliability_harness::global_allocator!();

fn main() -> std::process::ExitCode {
    reliability_harness::main()
}

const GATE: &str = env!("CARGO_BIN_EXE_bench-gate");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=gate-test", "-c", "user.email=gate-test@localhost"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?} in {}", dir.display());
}

/// A clone of HEAD with a target directory of its own, seeded from this build's optimized
/// dependencies (the clone's own crates always build from its sources).
struct Clone {
    _dir: tempfile::TempDir,
    path: PathBuf,
    target: PathBuf,
    out: PathBuf,
}

fn clone() -> Clone {
    let dir = tempfile::Builder::new().prefix("bench-gate-test-").tempdir().unwrap();
    let path = dir.path().join("repo");
    git(dir.path(), &["clone", "--quiet", "--no-hardlinks", &repo_root().to_string_lossy(), "repo"]);
    let main_target = repo_root().join("target");
    // One per test: the two tests may run at once.
    let target = tempfile::Builder::new().prefix("bench-gate-selftest-").tempdir_in(&main_target).unwrap().keep();
    reliability_benches::gate::target::seed(&path, &main_target, &target).unwrap();
    let out = dir.path().join("out");
    Clone { _dir: dir, path, target, out }
}

impl Drop for Clone {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.target);
    }
}

impl Clone {
    fn gate(&self, args: &[&str]) -> Output {
        self.gate_with(args, &[])
    }

    fn gate_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(GATE);
        cmd.envs(env.iter().copied());
        for (key, _) in std::env::vars() {
            if key.starts_with("RELIABILITY_") || key.starts_with("PROMETHEUS_PUSHGATEWAY") {
                cmd.env_remove(key);
            }
        }
        cmd.args(args)
            .current_dir(&self.path)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("RELIABILITY_OUTPUT_DIR", &self.out)
            .output()
            .unwrap()
    }

    fn report(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.out.join("bench.json")).unwrap()).unwrap()
    }
}

fn row<'a>(report: &'a Value, tier: &str, bench: &str) -> &'a Value {
    report["benches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tier"] == tier && r["bench"] == bench)
        .unwrap_or_else(|| panic!("no {tier} row for {bench} in {report:#}"))
}

/// Two more evaluations of the expression per call of `count_matches` (of the two cheapest
/// sets): +15% instructions.
fn plant_regression(repo: &Path) {
    let file = repo.join("benches/src/inputs.rs");
    let text = std::fs::read_to_string(&file).unwrap();
    let body = "sets.iter().filter(|set| expr.eval(&mut |marker| set.contains(&marker))).count()";
    assert_eq!(text.matches(body).count(), 1, "count_matches changed: update the planted regression");
    let planted = format!(
        "{{ for set in sets.iter().rev().take(2) {{ std::hint::black_box(expr.eval(&mut |marker| set.contains(&marker))); }} {body} }}"
    );
    std::fs::write(&file, text.replace(body, &planted)).unwrap();
    git(repo, &["commit", "--quiet", "-am", "plant a regression in count_matches"]);
}

#[rh::test(slow, timeout = 3600)]
fn a_planted_regression_fails_the_gate_in_both_tiers() {
    let clone = clone();
    plant_regression(&clone.path);
    let run = clone.gate(&["HEAD~1", "--filter", "markexpr_eval", "--quick"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert_eq!(run.status.code(), Some(1), "the gate passed a planted regression");
    let report = clone.report();
    assert_eq!(report["passed"], false);
    assert_eq!(report["skipped"].as_array().map(Vec::len), Some(0), "both tiers ran: {report:#}");
    let wall = row(&report, "wall", "harness/markexpr_eval");
    assert_eq!(wall["verdict"], "regressed", "{wall:#}");
    let instructions = row(&report, "instructions", "harness/markexpr_eval/six_sets");
    assert_eq!(instructions["verdict"], "regressed", "{instructions:#}");
    let ratio = instructions["candidate"].as_f64().unwrap() / instructions["base"].as_f64().unwrap();
    assert!((1.05..1.6).contains(&ratio), "planted ~+15% work, counted {ratio:.3}x");
    // The Prometheus text carries the same verdicts.
    let prom = std::fs::read_to_string(clone.out.join("bench.prom")).unwrap();
    assert!(
        prom.contains("reliability_bench_regressed{tier=\"instructions\",bench=\"harness/markexpr_eval/six_sets\"} 1")
    );
    assert!(prom.contains("reliability_bench_gate_failed 1"));

    // Unchanged: the instruction tier of the same commit against itself counts exactly the same.
    let same = clone.gate(&["HEAD", "--filter", "markexpr_eval", "--tier", "instructions"]);
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));
    let report = clone.report();
    let row = row(&report, "instructions", "harness/markexpr_eval/six_sets");
    assert_eq!(row["change"].as_f64(), Some(0.0), "{row:#}");
    assert_eq!(row["verdict"], "unchanged");

    // Without gungraun-runner the instruction tier is skipped with a note, and only that tier.
    let runner = [("GUNGRAUN_RUNNER", "/nonexistent/gungraun-runner")];
    let skipped = clone.gate_with(&["HEAD", "--filter", "markexpr_eval", "--quick", "--rounds", "1"], &runner);
    // 0, or 1 should one short round of the wall tier happen to be slower: it measured.
    assert!(matches!(skipped.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&skipped.stderr));
    let report = clone.report();
    assert_eq!(report["skipped"].as_array().map(Vec::len), Some(1), "{report:#}");
    let tiers: Vec<&str> = report["benches"].as_array().unwrap().iter().filter_map(|r| r["tier"].as_str()).collect();
    assert_eq!(tiers, ["wall"], "{report:#}");
}

#[rh::test(slow, timeout = 3600)]
fn bad_input_is_a_usage_error_before_anything_is_measured() {
    let clone = clone();
    let missing = clone.gate(&["no-such-ref-anywhere"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`no-such-ref-anywhere`"), "the error names the ref");

    let config = clone.path.join("gate.toml");
    let config_arg = config.to_string_lossy().into_owned();
    std::fs::write(&config, "[benches.wall]\nthreshold = 1.5e3\n").unwrap();
    let bad_threshold = clone.gate(&["HEAD", "--config", &config_arg]);
    assert_eq!(bad_threshold.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_threshold.stderr).contains("gate.toml:2:13"), "the error has the position");

    // An unknown bench: found once the benches are built and listed, before any is run.
    std::fs::write(&config, "[benches.wall]\nper-bench = { \"otlp/decode512\" = 0.2 }\n").unwrap();
    let unknown = clone.gate(&["HEAD", "--tier", "wall", "--config", &config_arg]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gate.toml:2:15") && stderr.contains("otlp/decode_512"), "position and choices: {stderr}");
    assert!(!clone.out.join("bench.json").exists(), "nothing was measured");

    let flag = clone.gate(&["--rounds", "0"]);
    assert_eq!(flag.status.code(), Some(2));
}
