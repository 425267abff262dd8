//! Merging the `report.json` files of a run's shards (`--partition KIND:M/N` on N machines)
//! into one run, from which every report is written again as if one machine had run it all.
//!
//! Refused, with the file that breaks it: a file that is not a report.json of this schema;
//! shards of different binaries or commits; a report that is not a shard, or shards of
//! different partitions (kind or N); a shard given twice or missing; a test reported by two
//! shards. Pure apart from reading the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::RunInfo;
use super::json::SCHEMA_VERSION;
use crate::outcome::TestReport;
use crate::select::partition::Partition;

#[derive(Deserialize)]
struct Document {
    schema_version: u32,
    run: RunInfo,
    tests: Vec<TestReport>,
}

/// One shard's report.
#[derive(Clone, Debug)]
pub struct Shard {
    /// Where it was read.
    pub path: PathBuf,
    /// Its run.
    pub run: RunInfo,
    /// Its tests.
    pub tests: Vec<TestReport>,
}

/// Reads one shard's `report.json` (or the report.json inside a directory).
pub fn read(path: &Path) -> Result<Shard, String> {
    let path = if path.is_dir() { path.join("report.json") } else { path.to_path_buf() };
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let document: Document =
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a report.json: {e}", path.display()))?;
    if document.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "{}: schema_version {} (this harness reads {SCHEMA_VERSION})",
            path.display(),
            document.schema_version
        ));
    }
    Ok(Shard { path, run: document.run, tests: document.tests })
}

/// Joins shards into one run: its tests sorted by name, its run info spanning them all.
pub fn merge(shards: &[Shard]) -> Result<(RunInfo, Vec<TestReport>), String> {
    let Some(first) = shards.first() else { return Err("nothing to merge: give the shards' report.json files".into()) };
    let partition_of = |s: &Shard| -> Result<Partition, String> {
        let text = s.run.partition.as_deref().ok_or_else(|| {
            format!("{} is not a shard (its run had no --partition): only shards of one run merge", s.path.display())
        })?;
        Partition::parse(text).ok_or_else(|| {
            format!("{}: partition {text:?} is not {}", s.path.display(), crate::select::partition::EXPECTED)
        })
    };
    let base = partition_of(first)?;
    let mut seen: Vec<Option<&Path>> = vec![None; base.total as usize];
    for shard in shards {
        let p = partition_of(shard)?;
        let differs = |what: &str, a: &str, b: &str| {
            format!(
                "{} and {} are not shards of one run: {what} {a:?} and {b:?}",
                first.path.display(),
                shard.path.display()
            )
        };
        if shard.run.binary != first.run.binary {
            return Err(differs("binaries", &first.run.binary, &shard.run.binary));
        }
        if let (Some(a), Some(b)) = (&first.run.commit, &shard.run.commit)
            && a != b
        {
            return Err(differs("commits", a, b));
        }
        if (p.kind, p.total) != (base.kind, base.total) {
            return Err(differs("partitions", &base.to_string(), &p.to_string()));
        }
        let slot = &mut seen[(p.shard - 1) as usize];
        if let Some(other) = slot {
            return Err(format!("shard {p} is given twice: {} and {}", other.display(), shard.path.display()));
        }
        *slot = Some(&shard.path);
    }
    if let Some(missing) = seen.iter().position(Option::is_none) {
        return Err(format!("shard {}/{} is missing (give every shard of the run)", missing + 1, base.total));
    }
    let mut by_name: BTreeMap<&str, (&Path, &TestReport)> = BTreeMap::new();
    for shard in shards {
        for test in &shard.tests {
            if let Some((other, _)) = by_name.insert(&test.name, (&shard.path, test)) {
                return Err(format!(
                    "test `{}` is in two shards: {} and {}",
                    test.name,
                    other.display(),
                    shard.path.display()
                ));
            }
        }
    }
    let tests: Vec<TestReport> = by_name.into_values().map(|(_, t)| t.clone()).collect();
    let start = shards.iter().map(|s| s.run.started_unix).fold(f64::INFINITY, f64::min);
    let end = shards.iter().map(|s| s.run.started_unix + s.run.duration_seconds).fold(f64::NEG_INFINITY, f64::max);
    let started = shards.iter().min_by(|a, b| a.run.started_unix.total_cmp(&b.run.started_unix)).unwrap_or(first);
    let mut hosts: Vec<&str> = shards.iter().map(|s| s.run.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let run = RunInfo {
        host: hosts.join(","),
        started_at: started.run.started_at.clone(),
        started_unix: start,
        duration_seconds: (end - start).max(0.0),
        interrupted: shards.iter().any(|s| s.run.interrupted),
        peak_rss_bytes: shards.iter().filter_map(|s| s.run.peak_rss_bytes).max(),
        partition: None,
        ..first.run.clone()
    };
    Ok((run, tests))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    fn shard(path: &str, partition: Option<&str>, names: &[&str], start: f64) -> Shard {
        Shard {
            path: PathBuf::from(path),
            run: RunInfo {
                binary: "suite".into(),
                commit: Some("abc".into()),
                host: format!("host-{path}"),
                started_unix: start,
                duration_seconds: 10.0,
                partition: partition.map(str::to_owned),
                ..RunInfo::default()
            },
            tests: names
                .iter()
                .map(|n| TestReport {
                    name: n.to_string().into(),
                    markers: Vec::new(),
                    outcome: Outcome::Passed,
                    attempts: Vec::new(),
                    output: String::new(),
                    output_bytes: 0,
                    isolation: "thread".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn shards_join_into_one_run_sorted_by_name() {
        let shards = [shard("b", Some("hash:2/2"), &["z", "a"], 100.0), shard("a", Some("hash:1/2"), &["m"], 95.0)];
        let (run, tests) = merge(&shards).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = tests.iter().map(|t| &*t.name).collect();
        assert_eq!(names, ["a", "m", "z"]);
        assert_eq!((run.started_unix, run.duration_seconds, run.partition), (95.0, 15.0, None));
        assert_eq!(run.host, "host-a,host-b");
    }

    /// Each way shards can fail to be one run is refused (by the condition, not the wording).
    #[test]
    fn foreign_repeated_missing_and_overlapping_shards_are_refused() {
        let ok = |p: &str, names: &[&str]| shard(p, Some(p), names, 0.0);
        let mut other_commit = ok("hash:2/2", &["b"]);
        other_commit.run.commit = Some("def".into());
        let mut other_binary = ok("hash:2/2", &["b"]);
        other_binary.run.binary = "other".into();
        let cases: Vec<Vec<Shard>> = vec![
            vec![],
            vec![ok("hash:1/2", &["a"]), other_commit],
            vec![ok("hash:1/2", &["a"]), other_binary],
            vec![ok("hash:1/2", &["a"]), ok("count:2/2", &["b"])],
            vec![ok("hash:1/2", &["a"]), ok("hash:2/3", &["b"])],
            vec![ok("hash:1/2", &["a"]), ok("hash:1/2", &["b"])],
            vec![ok("hash:1/2", &["a"])],
            vec![ok("hash:1/2", &["a"]), ok("hash:2/2", &["a"])],
            vec![ok("hash:1/2", &["a"]), shard("whole", None, &["b"], 0.0)],
        ];
        for (i, shards) in cases.iter().enumerate() {
            assert!(merge(shards).is_err(), "case {i} merged");
        }
        assert!(merge(&[ok("hash:1/2", &["a"]), ok("hash:2/2", &["b"])]).is_ok());
    }
}
