//! The last-failed cache (`--lf`, `--ff`): which tests failed in earlier runs.
//!
//! pytest's rule: a failure is added; a test that ran and did not fail is removed; a test that
//! did not run this time keeps its entry, so `--lf` after a partial run still remembers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, TestReport};

/// The cache file's name under the output directory.
pub const FILE_NAME: &str = "lastfailed.json";

/// Names of the tests that failed last time they ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFailed {
    /// The failed tests.
    pub failed: BTreeSet<String>,
}

impl LastFailed {
    /// Reads the cache (missing or unreadable: empty, with a warning for unreadable).
    pub fn load(dir: &Path) -> LastFailed {
        crate::io::load_cache(&dir.join(FILE_NAME))
    }

    /// Folds this run's reports in. `flaky_fails` is `--flaky-fails`.
    pub fn update(&mut self, reports: &[TestReport], flaky_fails: bool) {
        for report in reports {
            if report.outcome.is_failure(flaky_fails) {
                self.failed.insert(report.name.to_string());
            } else if !matches!(report.outcome, Outcome::NotRun { .. }) {
                self.failed.remove(&*report.name);
            }
        }
    }

    /// Writes the cache.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, String> {
        crate::io::save_cache(&dir.join(FILE_NAME), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, outcome: Outcome) -> TestReport {
        TestReport {
            name: name.to_owned().into(),
            markers: vec![],
            outcome,
            attempts: vec![],
            output: String::new(),
            output_bytes: 0,
            isolation: "thread".into(),
        }
    }

    #[test]
    fn failures_are_added_passes_removed_unrun_kept() {
        let mut cache = LastFailed { failed: ["a", "b", "c"].map(String::from).into() };
        cache.update(
            &[
                report("a", Outcome::Passed),
                report("b", Outcome::NotRun { reason: "maxfail".into() }),
                report("d", Outcome::Crashed { cause: "SIGSEGV".into() }),
                report("c", Outcome::Flaky { attempts: 2 }),
            ],
            false,
        );
        assert_eq!(cache.failed, ["b", "d"].map(String::from).into());
    }

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let cache = LastFailed { failed: ["x::y[1]"].map(String::from).into() };
        cache.save(&dir).unwrap();
        assert_eq!(LastFailed::load(&dir), cache);
        std::fs::write(dir.join(FILE_NAME), b"not json").unwrap();
        assert_eq!(LastFailed::load(&dir), LastFailed::default());
    }
}
