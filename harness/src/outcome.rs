//! What happened to a test: the outcome kinds and the record of one attempt.
//!
//! These records are the facts the runner sends to reporters (summary, caches, reports).
//! They are serialisable because a child process writes one as its result.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The outcome of a test, after retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Passed on the first attempt.
    Passed,
    /// Failed (assertion, panic or returned error).
    Failed {
        /// The failure message.
        message: String,
    },
    /// A fixture's setup or teardown failed (pytest's *error*, distinct from a failure).
    Error {
        /// Which fixture and phase, and the message.
        message: String,
    },
    /// Did not finish within its timeout; killed (process mode) or abandoned (thread mode).
    TimedOut {
        /// The limit that was exceeded.
        #[serde(with = "secs")]
        after: Duration,
    },
    /// The test's process died: a signal (abort, segfault, stack overflow, OOM kill) or an exit
    /// without a result.
    Crashed {
        /// The cause, e.g. `killed by signal 11 (SIGSEGV)`.
        cause: String,
    },
    /// Skipped at run time, or by `skip_if`.
    Skipped {
        /// Why.
        reason: String,
    },
    /// An `xfail` test failed, as expected.
    #[serde(rename = "xfailed")]
    XFailed {
        /// The xfail reason.
        reason: String,
    },
    /// An `xfail` test passed; a failure when strict.
    #[serde(rename = "xpassed")]
    XPassed {
        /// The xfail reason.
        reason: String,
        /// Whether the xfail was strict.
        strict: bool,
    },
    /// Failed, then passed on a retry.
    Flaky {
        /// Attempts made, the last of which passed.
        attempts: u32,
    },
    /// Never started: `--maxfail` reached or the run was interrupted.
    NotRun {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// Short lowercase name, as in summaries and labels.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed { .. } => "failed",
            Outcome::Error { .. } => "error",
            Outcome::TimedOut { .. } => "timed_out",
            Outcome::Crashed { .. } => "crashed",
            Outcome::Skipped { .. } => "skipped",
            Outcome::XFailed { .. } => "xfailed",
            Outcome::XPassed { .. } => "xpassed",
            Outcome::Flaky { .. } => "flaky",
            Outcome::NotRun { .. } => "not_run",
        }
    }

    /// Whether this outcome fails the run. `flaky_fails` is `--flaky-fails`.
    pub fn is_failure(&self, flaky_fails: bool) -> bool {
        match self {
            Outcome::Failed { .. } | Outcome::Error { .. } | Outcome::TimedOut { .. } | Outcome::Crashed { .. } => true,
            Outcome::XPassed { strict, .. } => *strict,
            Outcome::Flaky { .. } => flaky_fails,
            Outcome::Passed | Outcome::Skipped { .. } | Outcome::XFailed { .. } | Outcome::NotRun { .. } => false,
        }
    }

    /// Whether a retry may change it (failures, not skips or expected failures).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Outcome::Failed { .. } | Outcome::Error { .. } | Outcome::TimedOut { .. } | Outcome::Crashed { .. }
        )
    }

    /// One line describing it, for failure reports.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Passed => "passed".into(),
            Outcome::Failed { message } => message.clone(),
            Outcome::Error { message } => format!("error: {message}"),
            Outcome::TimedOut { after } => format!("timed out after {:.1}s", after.as_secs_f64()),
            Outcome::Crashed { cause } => format!("crashed: {cause}"),
            Outcome::Skipped { reason } => format!("skipped: {reason}"),
            Outcome::XFailed { reason } => format!("xfailed: {reason}"),
            Outcome::XPassed { reason, strict } => {
                format!("xpassed{}: {reason}", if *strict { " (strict)" } else { "" })
            }
            Outcome::Flaky { attempts } => format!("flaky: passed on attempt {attempts}"),
            Outcome::NotRun { reason } => format!("not run: {reason}"),
        }
    }
}

/// Wall time of the three phases of one attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phases {
    /// Fixture setup.
    #[serde(with = "secs")]
    pub setup: Duration,
    /// The test body.
    #[serde(with = "secs")]
    pub call: Duration,
    /// Fixture teardown.
    #[serde(with = "secs")]
    pub teardown: Duration,
}

impl Phases {
    /// Sum of the phases.
    pub fn total(&self) -> Duration {
        self.setup + self.call + self.teardown
    }
}

/// One attempt at a test, as executed in-process (or reported by a child process).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The outcome of this attempt alone (before retries are considered).
    pub outcome: Outcome,
    /// Phase timings.
    pub phases: Phases,
    /// What the metrics layer measured, and the figures the test recorded.
    #[serde(default)]
    pub measurements: crate::measure::Measurements,
}

impl Attempt {
    /// An attempt that has only an outcome (it never really started, or its process died).
    pub fn bare(outcome: Outcome) -> Attempt {
        Attempt { outcome, phases: Phases::default(), measurements: Default::default() }
    }
}

/// The final record of a test: what reporters receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// Test name: borrowed from the registry in the run that made the report (no copy per
    /// test), owned when read back from a report file.
    pub name: Cow<'static, str>,
    /// Markers.
    pub markers: Vec<String>,
    /// Final outcome.
    pub outcome: Outcome,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// Captured output of the last attempt (process mode; empty with `--nocapture`).
    pub output: String,
    /// How many bytes the last attempt printed in all, counted as the parent read them (process
    /// mode; 0 in thread mode). More than `output` holds when that was cut to its ends.
    #[serde(default)]
    pub output_bytes: u64,
    /// `process` or `thread`.
    pub isolation: Cow<'static, str>,
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_and_retry_rules() {
        let failed = Outcome::Failed { message: "x".into() };
        assert!(failed.is_failure(false) && failed.is_retryable());
        let strict = Outcome::XPassed { reason: "r".into(), strict: true };
        assert!(strict.is_failure(false) && !strict.is_retryable());
        assert!(!Outcome::XPassed { reason: "r".into(), strict: false }.is_failure(true));
        let flaky = Outcome::Flaky { attempts: 2 };
        assert!(!flaky.is_failure(false) && flaky.is_failure(true));
        assert!(!Outcome::XFailed { reason: "r".into() }.is_retryable());
    }

    #[test]
    fn serialized_kind_is_the_label() {
        let all = [
            Outcome::Passed,
            Outcome::Failed { message: String::new() },
            Outcome::Error { message: String::new() },
            Outcome::TimedOut { after: Duration::ZERO },
            Outcome::Crashed { cause: String::new() },
            Outcome::Skipped { reason: String::new() },
            Outcome::XFailed { reason: String::new() },
            Outcome::XPassed { reason: String::new(), strict: false },
            Outcome::Flaky { attempts: 2 },
            Outcome::NotRun { reason: String::new() },
        ];
        for outcome in all {
            let json = serde_json::to_value(&outcome).unwrap();
            assert_eq!(json["kind"], outcome.label());
        }
    }

    #[test]
    fn attempts_round_trip_through_json() {
        let attempt = Attempt {
            outcome: Outcome::TimedOut { after: Duration::from_millis(1500) },
            phases: Phases { setup: Duration::from_millis(1), call: Duration::from_secs(2), teardown: Duration::ZERO },
            measurements: Default::default(),
        };
        let json = serde_json::to_string(&attempt).unwrap();
        assert!(json.contains("\"kind\":\"timed_out\""), "{json}");
        assert_eq!(serde_json::from_str::<Attempt>(&json).unwrap(), attempt);
    }
}
