//! `report.html` in a real browser: Debian's headless Chromium, driven by npm's
//! `playwright-core` through `ci/browser/check.js`. The page of a run must load without an
//! error or a request outside the file; its filters must show exactly the tests report.json
//! says they should (by outcome, suite, marker, name); a row must open that test's detail with
//! one line per attempt; and a test with a resource series must get a plot that rasterises.
//!
//! Needs Node.js, Chromium and `npm ci --prefix ci/browser` (ci/test.sh installs them);
//! without them the test fails and says so, never skips.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a selftest suite binary into `out`.
fn suite(bin: &str, args: &[&str], out: &Path) {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("RELIABILITY_") || key.starts_with("NEXTEST") || key.starts_with("PROMETHEUS_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("RELIABILITY_OUTPUT_DIR", out)
        .env("RELIABILITY_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("reliability.toml"));
    let output = cmd.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// What the browser saw of `page`, after `steps`.
fn browse(page: &Path, steps: &Value) -> Value {
    let dir = root().join("ci/browser");
    assert!(
        dir.join("node_modules/playwright-core/package.json").is_file(),
        "playwright-core is not installed: run `npm ci --prefix {}` (ci/test.sh does)",
        dir.display()
    );
    let steps_file = page.with_extension("steps.json");
    std::fs::write(&steps_file, steps.to_string()).unwrap();
    let output = Command::new("node")
        .arg(dir.join("check.js"))
        .arg(page)
        .arg(&steps_file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (ci/test.sh installs Node.js): {e}"));
    assert!(output.status.success(), "the browser check failed to run: {}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["errors"], json!([]), "{seen}");
    assert_eq!(seen["requests"], json!([]), "the page is self-contained: {seen}");
    seen
}

fn report(out: &Path) -> Vec<Value> {
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    report["tests"].as_array().unwrap().clone()
}

#[test]
fn filters_show_exactly_the_tests_report_json_names() {
    let out = tempfile::tempdir().unwrap();
    suite(env!("CARGO_BIN_EXE_fixture-suite"), &[], out.path());
    let tests = report(out.path());
    let count = |f: &dyn Fn(&Value) -> bool| json!(tests.iter().filter(|t| f(t)).count());
    let rows = "#list tbody tr";
    let steps = json!([
        {"count": rows},
        {"select": "#f-outcome", "value": "skipped"}, {"count": rows},
        {"select": "#f-outcome", "value": ""}, {"select": "#f-suite", "value": "api"}, {"count": rows},
        {"select": "#f-suite", "value": ""}, {"select": "#f-marker", "value": "e2e"}, {"count": rows},
        {"select": "#f-marker", "value": ""}, {"fill": "#f-name", "value": "SQUARE"}, {"count": rows},
        {"fill": "#f-name", "value": ""}, {"click": "#list tbody tr"}, {"text": "#d-name"}, {"count": "#d-attempts tr"},
    ]);
    let seen = browse(&out.path().join("report.html"), &steps);
    let s = &seen["steps"];
    assert_eq!(s[0], json!(tests.len()));
    assert_eq!(s[2], count(&|t| t["outcome"]["kind"] == "skipped"));
    assert_eq!(s[5], count(&|t| t["suite"] == "api"));
    assert_eq!(s[8], count(&|t| t["markers"].as_array().unwrap().contains(&json!("e2e"))));
    assert_eq!(s[11], count(&|t| t["name"].as_str().unwrap().contains("square")));
    assert_eq!(s[14], tests[0]["name"], "the first row opens the first test");
    assert_eq!(s[15], json!(tests[0]["attempts"].as_array().unwrap().len() + 1), "a line per attempt");
    // Not vacuous: each filter narrowed the table to some tests, and not to all.
    for at in [2, 5, 8, 11] {
        let n = s[at].as_u64().unwrap();
        assert!(n > 0 && n < tests.len() as u64, "step {at}: {n} of {}", tests.len());
    }
    let sections: Vec<&str> = seen["sections"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(sections, ["summary", "slowest", "tests", "detail"]);
}

#[test]
fn a_tests_resource_series_is_plotted() {
    let out = tempfile::tempdir().unwrap();
    suite(env!("CARGO_BIN_EXE_metrics-suite"), &["-k", "runs_1500ms"], out.path());
    let tests = report(out.path());
    assert_eq!(tests.len(), 1);
    let samples = tests[0]["attempts"][0]["measurements"]["series"].as_array().unwrap().len();
    assert!(samples >= 2, "a 1.5 s test keeps a series");
    let steps = json!([
        {"click": "#list tbody tr"}, {"count": "#detail figure.plot svg polyline"}, {"ink": "#detail figure.plot svg"},
    ]);
    let seen = browse(&out.path().join("report.html"), &steps);
    assert_eq!(seen["steps"][1], 2, "RSS and CPU lines: {seen}");
    assert!(seen["steps"][2].as_f64().unwrap() >= 200.0, "the plot rasterises to coloured lines: {seen}");
}

/// At 10,000 tests the page still loads whole, and a filter still narrows it exactly.
#[test]
fn ten_thousand_tests_stay_usable() {
    let out = tempfile::tempdir().unwrap();
    suite(env!("CARGO_BIN_EXE_many-suite"), &["--isolation", "thread"], out.path());
    assert_eq!(report(out.path()).len(), 10_000);
    let rows = "#list tbody tr";
    let steps = json!([
        {"count": rows}, {"select": "#f-suite", "value": "a3"}, {"count": rows},
        {"fill": "#f-name", "value": "::m4::n5::"}, {"count": rows}, {"text": "#shown"},
    ]);
    let seen = browse(&out.path().join("report.html"), &steps);
    assert_eq!(seen["steps"][0], 10_000);
    assert_eq!(seen["steps"][2], 1_000);
    assert_eq!(seen["steps"][4], 10);
    assert_eq!(seen["steps"][5], "10 of 10000 shown");
}
