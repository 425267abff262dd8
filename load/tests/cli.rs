//! `load run` as a user runs it: a plan against the embedded testbed, the results folder, and
//! every iteration and span placed — the generator's counts, the workers' counts and the
//! target's own count agreeing. Bad input: exit 2 with the plan's line and column; an
//! unreachable target: exit 3 before the run.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_load");

fn run(plan: &str) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    let out = dir.path().join("results");
    let output = Command::new(BIN).arg("run").arg(&path).arg("--out").arg(&out).output().unwrap();
    (output, dir)
}

#[test]
fn a_run_places_every_iteration_and_span() {
    let (output, dir) = run(
        "name: tiny\nspans-per-iteration: 4\nworkload:\n  executor: constant-arrival-rate\n  rate: 100\n  duration: 1s\nthresholds: [\"missed_rate <= 1\"]\n",
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let folders: Vec<_> = std::fs::read_dir(dir.path().join("results")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(folders.len(), 1);
    assert!(folders[0].file_name().unwrap().to_string_lossy().ends_with("Z_tiny"), "{folders:?}");
    let s: Value = serde_json::from_slice(&std::fs::read(folders[0].join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["schema"], 1);
    let it = &s["iterations"];
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(n(&it["offered"]), 100);
    assert_eq!(n(&it["started"]) + n(&it["missed"]), 100);
    let by_status: u64 = it["by_status"].as_object().unwrap().values().map(|t| n(&t["iterations"])).sum();
    assert_eq!(by_status, n(&it["started"]), "every started iteration ended with a status");
    let sp = &s["spans"];
    assert_eq!(n(&sp["generated"]), 4 * n(&it["started"]));
    let failed: u64 = sp["failed"].as_object().unwrap().values().map(n).sum();
    let dropped: u64 = sp["dropped"].as_object().unwrap().values().map(n).sum();
    assert_eq!(n(&sp["accepted"]) + n(&sp["rejected"]) + dropped + failed + n(&sp["unfinished"]), n(&sp["generated"]));
    assert_eq!(sp["target_accepted"], sp["accepted"], "the target counted what the client was told it accepted");
    let per_second: u64 = s["per_second"].as_array().unwrap().iter().map(|x| n(&x["offered"])).sum();
    assert_eq!(per_second, 100);
    assert_eq!(s["thresholds"][0]["passed"], true);
    assert!(s["recommendations"].is_array());
    assert!(folders[0].join("recommendations.md").is_file());
    assert!(folders[0].join("report.md").is_file());
    // timeseries.csv: the same seconds, row for row.
    let csv = std::fs::read_to_string(folders[0].join("timeseries.csv")).unwrap();
    let rows: Vec<Vec<f64>> = csv.lines().skip(1).map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
    let seconds = s["per_second"].as_array().unwrap();
    assert_eq!(rows.len(), seconds.len());
    assert_eq!(rows.iter().map(|r| r[1]).sum::<f64>(), 100.0);
    assert_eq!(rows.iter().map(|r| r[4]).sum::<f64>(), n(&it["started"]) as f64);
    // Latency per second, ms in the CSV and µs in the summary; a second with endings has some.
    for (row, second) in rows.iter().zip(seconds) {
        assert_eq!(row[10], n(&second["latency_us"]["p99"]) as f64 / 1e3);
        assert_eq!(row[4] > 0.0, row[11] > 0.0, "{row:?}");
    }
}

/// A threshold no run can keep: the results are written and the exit code is 1.
#[test]
fn a_breached_threshold_exits_1_with_results_written() {
    let (output, dir) = run(
        "workload:\n  executor: constant-arrival-rate\n  rate: 20\n  duration: 500ms\nthresholds: [\"p99_ms < 0\"]\n",
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let folder = std::fs::read_dir(dir.path().join("results")).unwrap().next().unwrap().unwrap().path();
    let s: Value = serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["thresholds"][0]["passed"], false);
    assert!(s["thresholds"][0]["value"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_exits_2_or_3_before_the_run() {
    let (output, _dir) = run("workload:\n  executor: constant-arrival-rate\n  rate: fast\n  duration: 1s\n");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("plan.yaml:3:9:"), "{output:?}");
    // A capacity search that cannot search (factor 1 never steps up): refused before it runs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(
        &path,
        "workload:\n  executor: constant-arrival-rate\n  rate: 1\n  duration: 1s\ncapacity: {factor: 1.0}\n",
    )
    .unwrap();
    let output = Command::new(BIN).arg("capacity").arg(&path).arg("--out").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let (output, _dir) = run(
        "target:\n  endpoint: http://127.0.0.1:4318/v1/traces\n  headers: {x-api-key: LOAD_TEST_UNSET_VARIABLE}\nworkload:\n  executor: constant-arrival-rate\n  rate: 1\n  duration: 1s\n",
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    // Port 0 never accepts a connection.
    let (output, dir) = run(
        "target:\n  endpoint: http://127.0.0.1:0/v1/traces\nworkload:\n  executor: constant-arrival-rate\n  rate: 1\n  duration: 1s\n",
    );
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(!dir.path().join("results").exists(), "nothing ran");
}

/// Ctrl-C: the generator stops, in-flight iterations drain, the results are written with
/// `interrupted: true`, and the exit code is 130.
#[test]
fn ctrl_c_stops_drains_and_writes_the_results() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, "workload:\n  executor: constant-arrival-rate\n  rate: 50\n  duration: 1h\n").unwrap();
    let out = dir.path().join("results");
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("running"), "{first}");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    // Bounded: the drain is bounded by the request timeout; a hang fails here, not forever.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("load run did not stop after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let folder = std::fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    let s: Value = serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true);
    let it = &s["iterations"];
    let n = |v: &Value| v.as_u64().unwrap();
    assert!(n(&it["offered"]) < 50 * 3600, "cut short");
    assert_eq!(n(&it["started"]) + n(&it["missed"]), n(&it["offered"]));
    let ended: u64 = it["by_status"].as_object().unwrap().values().map(|t| n(&t["iterations"])).sum();
    assert_eq!(ended, n(&it["started"]), "every started iteration drained");
}

/// The `sdk` pipeline: the GenAI mix made through the OpenTelemetry SDK; the generator's
/// span count, the SDK pipeline's own accounting and the target's count agree exactly.
#[test]
fn the_sdk_pipeline_accounts_for_every_span() {
    let (output, dir) = run(
        "name: sdk\npipeline: sdk\nscenarios:\n  - {name: simple_query, weight: 3}\n  - {name: delegated_booking, weight: 1}\nworkload:\n  executor: constant-arrival-rate\n  rate: 40\n  duration: 1s\n",
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let folder = std::fs::read_dir(dir.path().join("results")).unwrap().next().unwrap().unwrap().path();
    let s: Value = serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(s["pipeline"], "sdk");
    let sp = &s["spans"];
    assert!(n(&sp["generated"]) > 0);
    assert_eq!(n(&s["client"]["ended"]), n(&sp["generated"]), "the SDK saw every span the generator started");
    assert_eq!(s["client"]["shutdown_completed"], true);
    let dropped: u64 = sp["dropped"].as_object().unwrap().values().map(n).sum();
    let failed: u64 = sp["failed"].as_object().unwrap().values().map(n).sum();
    assert_eq!(n(&sp["accepted"]) + n(&sp["rejected"]) + dropped + failed + n(&sp["unfinished"]), n(&sp["generated"]));
    assert_eq!(sp["target_accepted"], sp["accepted"]);
    let per_scenario: u64 = s["scenarios"].as_array().unwrap().iter().map(|x| n(&x["spans"])).sum();
    assert_eq!(per_scenario, n(&sp["generated"]));
}

/// `load capacity`: the search runs against the embedded target and writes capacity.json
/// with every step (what a step measures depends on the machine; the shape does not).
#[test]
fn capacity_writes_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(
        &path,
        "name: cap\nwatch: {spawn: \"sleep 601\", memory-limit-mb: 512}\nworkload:\n  executor: constant-arrival-rate\n  rate: 1\n  duration: 1s\ncapacity:\n  start-rate: 20\n  max-rate: 40\n  step-seconds: 0.5\n",
    )
    .unwrap();
    let out = dir.path().join("results");
    let output = Command::new(BIN).arg("capacity").arg(&path).arg("--out").arg(&out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let folder = std::fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    assert!(folder.to_string_lossy().ends_with("_cap-capacity"), "{folder:?}");
    let c: Value = serde_json::from_slice(&std::fs::read(folder.join("capacity.json")).unwrap()).unwrap();
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps[0]["rate"], 20.0);
    assert!(steps.iter().all(|s| s["rate"].as_f64().unwrap() <= 40.0));
    let sustainable = c["sustainable_iterations_per_second"].as_f64().unwrap();
    let held: Vec<f64> = steps.iter().filter(|s| s["broke"].is_null()).map(|s| s["rate"].as_f64().unwrap()).collect();
    assert_eq!(sustainable, held.iter().copied().fold(0.0, f64::max), "the answer is the highest rate that held");
    // The watched target's figures ride along each step: a peak where a sample fell in the
    // step (how many do depends on the machine), never a zero.
    assert!(
        steps.iter().all(|s| s["target_peak_rss_bytes"].is_null() || s["target_peak_rss_bytes"].as_u64() > Some(0))
    );
    assert!(folder.join("logs/target.log").is_file());
    // The sdk pipeline is not what the search drives: a plan error.
    std::fs::write(&path, "pipeline: sdk\nworkload:\n  executor: constant-arrival-rate\n  rate: 1\n  duration: 1s\n")
        .unwrap();
    let output = Command::new(BIN).arg("capacity").arg(&path).arg("--out").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// gzip: bodies compressed (fewer bytes sent than the same run uncompressed), every span
/// still accepted and counted by the target.
#[test]
fn gzip_bodies_arrive_whole() {
    let plan = |gzip: bool| {
        format!(
            "target: {{gzip: {gzip}}}\nscenarios: [{{name: simple_query, weight: 1}}]\nworkload:\n  executor: constant-arrival-rate\n  rate: 20\n  duration: 1s\n"
        )
    };
    let summary = |gzip: bool| {
        let (output, dir) = run(&plan(gzip));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let folder = std::fs::read_dir(dir.path().join("results")).unwrap().next().unwrap().unwrap().path();
        serde_json::from_slice::<Value>(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap()
    };
    let (zipped, plain) = (summary(true), summary(false));
    assert_eq!(zipped["spans"]["target_accepted"], zipped["spans"]["accepted"]);
    assert_eq!(zipped["spans"]["generated"], zipped["spans"]["accepted"]);
    let per_span = |s: &Value| s["bytes"].as_f64().unwrap() / s["spans"]["generated"].as_f64().unwrap();
    assert!(per_span(&zipped) < per_span(&plain) / 2.0, "{} vs {}", per_span(&zipped), per_span(&plain));
}

/// The closed model: users loop over weighted tasks with think time; every iteration they
/// started is placed, and the target counted every span accepted.
#[test]
fn virtual_users_place_every_span() {
    let (output, dir) = run(
        "scenarios:\n  - {name: simple_query, weight: 3}\n  - {name: single_service_search, weight: 1}\nworkload:\n  executor: virtual-users\n  users: 4\n  spawn-rate: 8\n  duration: 1s\n  think-time: 50ms\n",
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let folder = std::fs::read_dir(dir.path().join("results")).unwrap().next().unwrap().unwrap().path();
    let s: Value = serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    let n = |v: &Value| v.as_u64().unwrap();
    let it = &s["iterations"];
    assert!(n(&it["started"]) > 0);
    assert_eq!((n(&it["offered"]), n(&it["missed"])), (n(&it["started"]), 0));
    let sp = &s["spans"];
    assert_eq!(sp["generated"], sp["accepted"]);
    assert_eq!(sp["target_accepted"], sp["accepted"]);
    let per_scenario: u64 = s["scenarios"].as_array().unwrap().iter().map(|x| n(&x["iterations"])).sum();
    assert_eq!(per_scenario, n(&it["started"]));
}

/// `watch: spawn`: the command is started before the run, sampled (CPU, RSS) into
/// resource-usage.csv and the summary, its output saved, and stopped after the run;
/// `memory-limit-mb` is enforced on it (a child that wants more fails).
#[test]
fn a_spawned_target_is_watched_and_stopped() {
    // A sleep no other process on a shared machine runs: 600.<this test's pid> seconds.
    let sleep = format!("sleep 600.{}", std::process::id());
    let (output, dir) = run(&format!(
        "watch:\n  spawn: \"{sleep}\"\n  memory-limit-mb: 512\nworkload:\n  executor: constant-arrival-rate\n  rate: 20\n  duration: 1500ms\n"
    ));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let folder = std::fs::read_dir(dir.path().join("results")).unwrap().next().unwrap().unwrap().path();
    let s: Value = serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    let r = &s["resources"];
    assert!(r["target_peak_rss_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(r["generator_cores_available"].as_f64().unwrap() >= 1.0);
    let csv = std::fs::read_to_string(folder.join("resource-usage.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|row| row.split(',').nth(2).is_some_and(|rss| rss.parse::<u64>().unwrap_or(0) > 0)),
        "{csv}"
    );
    assert!(folder.join("logs/target.log").is_file());
    // That sleep does not outlive the run.
    let left = Command::new("pgrep").args(["-f", &format!("^{}$", sleep.replace('.', "\\."))]).output().unwrap();
    assert!(left.stdout.is_empty(), "the spawned target was not stopped");

    // The memory limit is enforced: a target that wants 400 MB under a 100 MB limit fails.
    let (output, dir) = run(
        "watch:\n  spawn: \"python3 -c 'import time; x = bytearray(400000000); time.sleep(600)'\"\n  memory-limit-mb: 100\nworkload:\n  executor: constant-arrival-rate\n  rate: 5\n  duration: 3s\n",
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let folder = std::fs::read_dir(dir.path().join("results")).unwrap().next().unwrap().unwrap().path();
    let s: Value = serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["resources"]["spawned_exit_code"], 1, "{}", s["resources"]);
    // Bad input: both or neither of pid and spawn.
    let (output, _dir) = run("watch: {}\nworkload:\n  executor: constant-arrival-rate\n  rate: 1\n  duration: 1s\n");
    assert_eq!(output.status.code(), Some(2));
}

/// Two segments of a plan, merged, offer exactly what one run of it offers, and place every
/// iteration and span; merging refuses segments of different runs and a segment given twice.
#[test]
fn two_segments_merged_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, "name: seg\nworkload:\n  executor: constant-arrival-rate\n  rate: 60\n  duration: 1s\n")
        .unwrap();
    let out = dir.path().join("results");
    let load = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    let (p, o) = (path.to_str().unwrap(), out.to_str().unwrap());
    for segment in ["0/2", "1/2"] {
        let output = load(&["run", p, "--out", o, "--segment", segment]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let output = load(&["run", p, "--out", o]);
    assert!(output.status.success());
    let folders: Vec<std::path::PathBuf> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
    let find = |suffix: &str| folders.iter().find(|f| f.to_string_lossy().ends_with(suffix)).unwrap().clone();
    let (s0, s1, whole) = (find("seg-segment0of2"), find("seg-segment1of2"), find("Z_seg"));
    let merged_out = dir.path().join("merged");
    let output = load(&["merge", s0.to_str().unwrap(), s1.to_str().unwrap(), "--out", merged_out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let merged_dir = std::fs::read_dir(&merged_out).unwrap().next().unwrap().unwrap().path();
    let read =
        |d: &std::path::Path| serde_json::from_slice::<Value>(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
    let (m, w, a) = (read(&merged_dir), read(&whole), read(&s0));
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(n(&a["iterations"]["offered"]), 30, "each segment offers half");
    assert_eq!(m["iterations"]["offered"], w["iterations"]["offered"]);
    assert_eq!(n(&m["iterations"]["started"]) + n(&m["iterations"]["missed"]), n(&w["iterations"]["offered"]));
    assert_eq!(n(&m["spans"]["generated"]), 10 * n(&m["iterations"]["started"]));
    assert_eq!(m["spans"]["target_accepted"], m["spans"]["accepted"]);
    let per_second: u64 = m["per_second"].as_array().unwrap().iter().map(|s| n(&s["offered"])).sum();
    assert_eq!(per_second, 60);
    // Per-second latency: each second's quantiles are the worse segment's, never a sum.
    let b = read(&s1);
    for (i, second) in m["per_second"].as_array().unwrap().iter().enumerate() {
        for q in ["p50", "p99", "max"] {
            let of = |s: &Value| s["per_second"].get(i).map_or(0, |x| n(&x["latency_us"][q]));
            assert_eq!(n(&second["latency_us"][q]), of(&a).max(of(&b)), "second {i} {q}");
        }
    }
    assert_eq!(m["merged_from"], 2);
    // A segment twice, or one alone: refused.
    let output = load(&["merge", s0.to_str().unwrap(), s0.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let output = load(&["merge", s0.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let output = load(&["merge", s0.to_str().unwrap(), whole.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
}
