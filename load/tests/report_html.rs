//! `report.html` in a real browser: a load run's page is opened in headless Chromium (Debian's
//! `chromium`, driven by npm's `playwright-core` through `ci/browser/check.js`), which must load
//! it without an error or a request for anything outside the file, lay out every graph, draw
//! every line and rasterise coloured pixels for it; the tables carry the summary's rows. A
//! broken page is run through the same check first, so the check is known to fail.
//!
//! Needs Node.js, Chromium and `npm ci --prefix ci/browser` (ci/test.sh installs all three);
//! without them the test fails and says so, never skips.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_load");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// What the browser saw of `page`.
fn browse(page: &Path) -> Value {
    let script = root().join("ci/browser/check.js");
    assert!(
        root().join("ci/browser/node_modules/playwright-core/package.json").is_file(),
        "playwright-core is not installed: run `npm ci --prefix {}` (ci/test.sh does)",
        root().join("ci/browser").display()
    );
    let output = Command::new("node").arg(&script).arg(page).output().unwrap_or_else(|e| {
        panic!("cannot run node (ci/test.sh installs Node.js): {e}");
    });
    assert!(
        output.status.success(),
        "the browser check failed to run (is Debian's chromium installed?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn n(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The PNG's width and height, from its IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The check itself can fail: a page whose plot draws nothing, which throws, and which asks
/// for something outside itself is caught on each count.
#[test]
fn the_browser_check_catches_a_broken_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>broken</title></head><body>\
         <figure class=\"plot\" id=\"graph-empty\"><svg width=\"900\" height=\"360\" \
         xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"900\" height=\"360\" fill=\"#fff\"/></svg></figure>\
         <img src=\"http://127.0.0.1:9/missing.png\"><script>throw new Error('broken');</script></body></html>",
    )
    .unwrap();
    let seen = browse(&page);
    let errors = seen["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["kind"] == "pageerror"), "{seen}");
    assert!(errors.iter().any(|e| e["kind"] == "requestfailed"), "{seen}");
    assert_eq!(seen["requests"].as_array().unwrap().len(), 1, "{seen}");
    let plot = &seen["plots"][0];
    assert_eq!((n(&plot["ink"]), n(&plot["lines"]), n(&plot["texts"])), (0.0, 0.0, 0.0), "{seen}");
}

#[test]
fn a_runs_report_html_loads_and_every_plot_renders() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "name: html\nworkload:\n  executor: ramping-arrival-rate\n  stages: [{target: 40, duration: 1s}, {target: 10, duration: 1s}]\n\
         scenarios: [{name: simple_query, weight: 40}, {name: single_service_search, weight: 30}, \
         {name: delegated_booking, weight: 20}, {name: multi_service_complex, weight: 10}]\nwatch: {spawn: \"sleep 120\", cpu-limit-cores: 1.0, memory-limit-mb: 200}\n\
         thresholds: [\"error_rate < 0.5\"]\n",
    )
    .unwrap();
    let out = dir.path().join("results");
    let output =
        Command::new(BIN).args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let folder = std::fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    let summary: Value = serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();

    let names = ["throughput", "latency", "status", "cpu", "memory"];
    for name in names {
        assert_eq!(png_size(&folder.join(format!("graphs/{name}.png"))), (900, 360), "{name}.png");
        let svg = std::fs::read_to_string(folder.join(format!("graphs/{name}.svg"))).unwrap();
        assert!(svg.trim_start().starts_with("<svg"), "{name}.svg");
    }

    let seen = browse(&folder.join("report.html"));
    assert_eq!(seen["status"], 200, "the page loaded: {seen}");
    assert_eq!(seen["title"], "Load run: html");
    assert_eq!(seen["errors"].as_array().unwrap().len(), 0, "{seen}");
    assert_eq!(seen["requests"].as_array().unwrap().len(), 0, "the page is self-contained: {seen}");
    let plots = seen["plots"].as_array().unwrap();
    let ids: Vec<&str> = plots.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, names.map(|g| format!("graph-{g}")));
    for plot in plots {
        assert_eq!((n(&plot["width"]), n(&plot["height"])), (900.0, 360.0), "{plot}");
        // Axes, ticks, the series and (cpu, memory) the limits: lines with length; the title,
        // axis names and tick labels: text with width; the series themselves: coloured pixels.
        assert!(n(&plot["lines"]) >= 20.0, "{plot}");
        assert!(n(&plot["texts"]) >= 8.0, "{plot}");
        assert!(n(&plot["ink"]) >= 500.0, "{plot}");
    }

    let sections: Vec<&str> = seen["sections"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for want in ["graphs", "iterations", "spans", "responses-by-status", "scenarios", "thresholds", "resources"] {
        assert!(sections.contains(&want), "no section {want}: {sections:?}");
    }
    let rows: Vec<u64> = seen["tables"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect();
    let statuses = summary["iterations"]["by_status"].as_object().unwrap().len() as u64;
    let scenarios = summary["scenarios"].as_array().unwrap().len() as u64;
    let thresholds = summary["thresholds"].as_array().unwrap().len() as u64;
    assert_eq!(scenarios, 4, "the GenAI mix");
    // Iterations, spans, statuses, latency, scenarios, thresholds: a head row plus the rows.
    assert_eq!(rows, [2, 2, 1 + statuses, 2, 1 + scenarios, 1 + thresholds]);
}
