//! The sharding examples of `ci/examples/` hold together: the GitHub Actions matrix and its
//! partition agree and the merge job names every shard; the Kubernetes Indexed Job's command,
//! run here for every completion index with the fixture suite as the suite binary, gives
//! shards whose `--merge` equals one unsharded run test for test.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fixture-suite");

fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ci/examples").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture suite, as a user runs it, with `env` on top of a clean environment.
fn suite(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("RELIABILITY_") || key.starts_with("NEXTEST") || key.starts_with("PROMETHEUS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RELIABILITY_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("reliability.toml"));
    cmd.args(args).envs(env.iter().copied()).output().unwrap()
}

fn outcomes(dir: &Path) -> BTreeMap<String, String> {
    let report: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let tests = report["tests"].as_array().unwrap();
    tests.iter().map(|t| (t["name"].as_str().unwrap().to_owned(), t["outcome"]["kind"].to_string())).collect()
}

#[test]
fn the_github_matrix_and_its_partition_agree() {
    let workflow = example("sharded-tests.github.yml");
    let shard = &workflow["jobs"]["shard"];
    let matrix: Vec<u64> =
        shard["strategy"]["matrix"]["shard"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let n = matrix.len() as u64;
    assert_eq!(matrix, (1..=n).collect::<Vec<_>>());
    assert_eq!(shard["env"]["RELIABILITY_PARTITION"], format!("count:${{{{ matrix.shard }}}}/{n}").as_str());
    let test = shard["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Test (one shard)").unwrap();
    assert_eq!(test["run"], "cargo test --locked --test reliability -- --include e2e", "the README's main job");
    let merge = workflow["jobs"]["merge"]["steps"].as_array().unwrap().iter().find(|s| s["run"].is_string()).unwrap();
    let shards: Vec<String> = (1..=n).map(|m| format!("shards/shard-{m}")).collect();
    assert!(merge["run"].as_str().unwrap().ends_with(&format!("--merge {}", shards.join(","))), "{merge}");
    // Secrets only through the environment, never in a command line.
    for step in shard["steps"].as_array().unwrap() {
        assert!(!step["run"].as_str().unwrap_or_default().contains("secrets."), "{step}");
    }
}

#[test]
fn the_indexed_job_runs_shards_that_merge_into_one_run() {
    let job = example("sharded-tests.indexed-job.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let container = &spec["template"]["spec"]["containers"][0];
    let shards: u64 = container["env"].as_array().unwrap().iter().find(|e| e["name"] == "SHARDS").unwrap()["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!((spec["completions"].as_u64(), spec["parallelism"].as_u64()), (Some(shards), Some(shards)));
    let scratch = tempfile::tempdir().unwrap();
    let reports = scratch.path().join("reports");
    // The pod's mounts and binary, here: /reports a temporary folder, /suite the fixture suite.
    let script =
        container["args"][0].as_str().unwrap().replace("/reports", reports.to_str().unwrap()).replace("/suite", BIN);
    for index in 0..shards {
        let output = Command::new("sh")
            .args(["-c", &script])
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("SHARDS", shards.to_string())
            .env("RELIABILITY_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("reliability.toml"))
            .env_remove("RELIABILITY_OUTPUT_DIR")
            .env_remove("RELIABILITY_PARTITION")
            .output()
            .unwrap();
        assert!(output.status.success(), "index {index}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let dirs: Vec<PathBuf> = (1..=shards).map(|m| reports.join(format!("shard-{m}"))).collect();
    let list: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
    let merged = scratch.path().join("merged");
    let output = suite(&["--merge", &list.join(",")], &[("RELIABILITY_OUTPUT_DIR", merged.to_str().unwrap())]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let whole = scratch.path().join("whole");
    assert!(suite(&[], &[("RELIABILITY_OUTPUT_DIR", whole.to_str().unwrap())]).status.success());
    assert_eq!(outcomes(&merged), outcomes(&whole));
}
