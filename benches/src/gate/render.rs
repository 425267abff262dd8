//! The gate's outputs from its rows: the table it prints, `bench.json` and Prometheus text.

use serde::Serialize;

use super::verdict::{Row, Verdict, failed};

/// What was compared with what.
#[derive(Clone, Debug, Serialize)]
pub struct Sides {
    /// The base ref as given (or chosen), and its commit.
    pub base_ref: String,
    /// Base commit.
    pub base_commit: String,
    /// Candidate commit (the work tree's HEAD).
    pub candidate_commit: String,
    /// The candidate had uncommitted changes.
    pub candidate_dirty: bool,
}

/// `bench.json` schema version.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    sides: &'a Sides,
    passed: bool,
    /// Tiers that could not run, and why (e.g. Valgrind missing).
    skipped: &'a [String],
    benches: &'a [Row],
}

fn figure(value: f64, unit: &str) -> String {
    match unit {
        "ns" if value >= 1e6 => format!("{:.3} ms", value / 1e6),
        "ns" if value >= 1e3 => format!("{:.3} µs", value / 1e3),
        "ns" => format!("{value:.1} ns"),
        _ => format!("{value:.0}"),
    }
}

fn percent(value: f64) -> String {
    format!("{:+.2}%", value * 100.0)
}

/// The table: bench, base, candidate, change, confidence interval, verdict.
pub fn table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "tier".to_string(),
        "bench".into(),
        "base".into(),
        "candidate".into(),
        "change".into(),
        "95% interval".into(),
        "threshold".into(),
        "verdict".into(),
    ]];
    for row in rows {
        let unit = if row.tier == super::config::Tier::Wall { "ns" } else { "instr" };
        let verdict = match row.rounds_regressed {
            Some((n, of)) if row.verdict != Verdict::New => format!("{} ({n}/{of} rounds slower)", row.verdict.label()),
            _ => row.verdict.label().to_string(),
        };
        lines.push([
            row.tier.label().to_string(),
            row.bench.clone(),
            row.base.map_or_else(|| "-".into(), |b| figure(b, unit)),
            figure(row.candidate, unit),
            row.change.map_or_else(|| "-".into(), percent),
            row.interval.map_or_else(|| "-".into(), |(lo, hi)| format!("[{}, {}]", percent(lo), percent(hi))),
            format!("{:.0}%", row.threshold * 100.0),
            verdict,
        ]);
    }
    let widths: Vec<usize> = (0..8).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `bench.json`.
pub fn json(sides: &Sides, rows: &[Row], skipped: &[String]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&Document {
        schema_version: SCHEMA_VERSION,
        sides,
        passed: !failed(rows),
        skipped,
        benches: rows,
    })
}

/// Prometheus text: one series per bench and side, plus the change and the verdict. Labels
/// are bounded: the tier, the bench (a fixed set in the source) and the side.
pub fn prometheus(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
        if samples.is_empty() {
            return;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    };
    let labels = |row: &Row| format!("tier=\"{}\",bench=\"{}\"", row.tier.label(), row.bench.replace('"', "'"));
    let mut values = Vec::new();
    for row in rows {
        if let Some(base) = row.base {
            values.push((format!("{},side=\"base\"", labels(row)), base));
        }
        values.push((format!("{},side=\"candidate\"", labels(row)), row.candidate));
    }
    family(
        "reliability_bench_value",
        "Bench figure: nanoseconds per iteration (wall) or instructions per call (instructions).",
        "gauge",
        values,
    );
    family(
        "reliability_bench_change_ratio",
        "Relative change of the candidate against the base (0.1 = 10% slower).",
        "gauge",
        rows.iter().filter_map(|r| r.change.map(|c| (labels(r), c))).collect(),
    );
    family(
        "reliability_bench_threshold_ratio",
        "The threshold applied to the bench.",
        "gauge",
        rows.iter().map(|r| (labels(r), r.threshold)).collect(),
    );
    family(
        "reliability_bench_regressed",
        "1 when the gate found the bench regressed.",
        "gauge",
        rows.iter().map(|r| (labels(r), f64::from(u8::from(r.verdict == Verdict::Regressed)))).collect(),
    );
    family(
        "reliability_bench_gate_failed",
        "1 when any bench regressed.",
        "gauge",
        vec![(String::new(), f64::from(u8::from(failed(rows))))],
    );
    out.replace("{}", "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::verdict::{Change, instructions, wall};

    fn rows() -> Vec<Row> {
        let slow = [Change { estimate: 0.2, low: 0.15, high: 0.25 }; 3];
        vec![
            wall("otlp/decode_512", Some(1_000_000.0), 1_200_000.0, &slow, 0.1),
            instructions("otlp/decode_512/batch", Some(1000.0), 1000.0, 0.02),
            instructions("harness/new/one", None, 10.0, 0.02),
        ]
    }

    #[test]
    fn the_table_has_a_line_per_bench_with_its_verdict() {
        let table = table(&rows());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].contains("otlp/decode_512") && lines[1].contains("+20.00%") && lines[1].contains("REGRESSED"));
        assert!(lines[1].contains("[+15.00%, +25.00%]") && lines[1].contains("3/3"));
        assert!(lines[2].contains("+0.00%") && lines[2].ends_with("ok"));
        assert!(lines[3].ends_with("new"));
    }

    #[test]
    fn json_carries_every_figure() {
        let sides = Sides {
            base_ref: "main".into(),
            base_commit: "a".repeat(40),
            candidate_commit: "b".repeat(40),
            candidate_dirty: false,
        };
        let doc: serde_json::Value = serde_json::from_str(&json(&sides, &rows(), &[]).unwrap()).unwrap();
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["passed"], false);
        assert_eq!(doc["benches"].as_array().unwrap().len(), 3);
        assert_eq!(doc["benches"][0]["verdict"], "regressed");
        assert_eq!(doc["benches"][0]["base"], 1_000_000.0);
        assert_eq!(doc["benches"][2]["base"], serde_json::Value::Null);
    }

    #[test]
    fn prometheus_text_has_bounded_labels() {
        let text = prometheus(&rows());
        assert!(
            text.contains("reliability_bench_value{tier=\"wall\",bench=\"otlp/decode_512\",side=\"base\"} 1000000\n")
        );
        assert!(text.contains("reliability_bench_regressed{tier=\"wall\",bench=\"otlp/decode_512\"} 1\n"));
        assert!(text.contains("reliability_bench_gate_failed 1\n"));
        // The new bench has no base sample and no change.
        assert!(!text.contains("bench=\"harness/new/one\",side=\"base\""));
    }
}
