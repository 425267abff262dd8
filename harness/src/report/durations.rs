//! The durations cache (`durations.json`): each test's time in its last recorded run — setup,
//! call and teardown over every attempt — which `--partition duration:M/N` balances shards by.
//!
//! Written only by runs that are not partitioned: shards read it and must all see the same
//! figures to compute the same split, so no shard may change it under the others. A test that
//! did not run keeps its entry; a test that never ran has none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, TestReport};

/// The cache file's name under the output directory.
pub const FILE_NAME: &str = "durations.json";

/// Seconds by test name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// Each test's last recorded time, seconds.
    pub seconds: BTreeMap<String, f64>,
}

impl Durations {
    /// Reads the cache (missing or unreadable: empty, with a warning for unreadable).
    pub fn load(dir: &Path) -> Durations {
        crate::io::load_cache(&dir.join(FILE_NAME))
    }

    /// Folds this run's reports in: every test that ran gets its time.
    pub fn update(&mut self, reports: &[TestReport]) {
        for report in reports {
            if matches!(report.outcome, Outcome::NotRun { .. } | Outcome::Skipped { .. }) || report.attempts.is_empty()
            {
                continue;
            }
            let total: f64 = report
                .attempts
                .iter()
                .map(|a| (a.phases.setup + a.phases.call + a.phases.teardown).as_secs_f64())
                .sum();
            self.seconds.insert(report.name.to_string(), total);
        }
    }

    /// Writes the cache.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, String> {
        crate::io::save_cache(&dir.join(FILE_NAME), self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::outcome::{Attempt, Phases};

    fn report(name: &str, outcome: Outcome, calls: &[u64]) -> TestReport {
        TestReport {
            name: name.to_owned().into(),
            markers: Vec::new(),
            outcome: outcome.clone(),
            attempts: calls
                .iter()
                .map(|ms| Attempt {
                    phases: Phases {
                        setup: Duration::from_millis(1),
                        call: Duration::from_millis(*ms),
                        teardown: Duration::from_millis(1),
                    },
                    ..Attempt::bare(outcome.clone())
                })
                .collect(),
            output: String::new(),
            output_bytes: 0,
            isolation: "thread".into(),
        }
    }

    #[test]
    fn every_attempt_counts_and_tests_not_run_keep_their_entry() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut cache = Durations::default();
        cache.seconds.insert("old".into(), 9.0);
        cache.update(&[
            report("a", Outcome::Passed, &[100]),
            report("b", Outcome::Passed, &[200, 300]),
            report("c", Outcome::NotRun { reason: "maxfail".into() }, &[]),
        ]);
        cache.save(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let back = Durations::load(dir.path());
        assert_eq!(back.seconds.get("a").copied(), Some(0.102));
        assert_eq!(back.seconds.get("b").copied(), Some(0.504));
        assert_eq!(back.seconds.get("old").copied(), Some(9.0));
        assert!(!back.seconds.contains_key("c"));
    }
}
