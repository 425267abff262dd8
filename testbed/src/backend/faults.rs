//! Fault injection at the HTTP layer: which answer a request gets.
//!
//! A [`FaultPlan`] (global, or per project) is set at start-up or at run time through the admin
//! endpoint (`PUT /api/v1/faults`, `PUT /api/v1/projects/{p}/faults`). For each ingest request
//! the plan's rules are tried in order and the first whose condition holds decides the
//! [`Action`]; no match means a normal answer. Conditions:
//!
//! - `{"requests": {"from": 0, "to": 5}}` — by request order within the plan (0-based,
//!   `to` exclusive): "503 for the first 5 requests, then 200";
//! - `{"probability": 0.3}` — drawn from a PRNG seeded by the plan's `seed`, so a run is
//!   reproducible;
//! - `{"window": {"from_ms": 1000, "to_ms": 5000}}` — by time since the plan was set;
//! - `{"always": true}`.
//!
//! The decision is pure given the plan, the request's index and its arrival time; this module
//! does no IO.

use std::time::Duration;

use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// A fault plan: latency for every request, and rules that pick an answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Fixed delay before answering, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Extra random delay, uniform in `0..=jitter_ms`.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Seed of the PRNG behind `probability` and jitter.
    #[serde(default)]
    pub seed: u64,
    /// Tried in order; the first that applies decides.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A condition and what to do when it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// When the rule applies.
    pub when: When,
    /// What the request gets.
    pub action: Action,
}

/// A rule's condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum When {
    /// Every request.
    Always(bool),
    /// Requests whose 0-based index within the plan is in `from..to`.
    Requests {
        /// First index.
        #[serde(default)]
        from: u64,
        /// End, exclusive; none means forever.
        to: Option<u64>,
    },
    /// With this probability (0 to 1), from the seeded PRNG.
    Probability(f64),
    /// Requests arriving in this window after the plan was set.
    Window {
        /// Start, milliseconds after the plan was set.
        #[serde(default)]
        from_ms: u64,
        /// End, exclusive; none means forever.
        to_ms: Option<u64>,
    },
}

/// What a faulted request gets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// An error status: 429 or 503 (retryable, with `Retry-After`), 502, 504, or a
    /// non-retryable 500 or 400. The body is a `google.rpc.Status`.
    Status {
        /// 400..=599.
        code: u16,
        /// `Retry-After` in seconds.
        retry_after_seconds: Option<u64>,
        /// Send `Retry-After` as an HTTP date (now + the seconds) rather than seconds.
        #[serde(default)]
        retry_after_http_date: bool,
    },
    /// 200 with `partial_success` rejecting this many spans of the request (the last ones).
    PartialSuccess {
        /// Spans to reject.
        rejected: u64,
        /// The message.
        #[serde(default)]
        message: String,
    },
    /// Hold the request without answering until the client gives up (or `ms` passes), then
    /// close the connection.
    Hang {
        /// Upper bound, milliseconds (default 60 000).
        ms: Option<u64>,
    },
    /// Close the connection without answering.
    Close,
    /// Read the body at this rate, then answer normally. Decided when the request arrives, so it
    /// applies from the global plan, or from a project's plan when the project comes from a
    /// request header (`Config::project_header`), not from `service.name` in the body.
    SlowRead {
        /// Bytes per second.
        bytes_per_second: u64,
    },
}

impl Action {
    /// A short name for the ledger and stats (`status_503`, `hang`, ...).
    pub fn label(&self) -> String {
        match self {
            Action::Status { code, .. } => format!("status_{code}"),
            Action::PartialSuccess { .. } => "partial_success".into(),
            Action::Hang { .. } => "hang".into(),
            Action::Close => "close".into(),
            Action::SlowRead { .. } => "slow_read".into(),
        }
    }
}

/// A plan that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid fault plan: {0}")]
pub struct PlanError(pub String);

/// The longest delay a plan may ask for (latency + jitter, a hang): one hour.
pub const MAX_DELAY_MS: u64 = 3_600_000;
/// The longest `Retry-After` a plan may send: one day.
pub const MAX_RETRY_AFTER_SECONDS: u64 = 86_400;

impl FaultPlan {
    /// Checks values the types cannot: probabilities in 0..=1, error statuses, and delays that
    /// fit the clock (latency + jitter and hangs at most [`MAX_DELAY_MS`], `Retry-After` at most
    /// [`MAX_RETRY_AFTER_SECONDS`]).
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.latency_ms.checked_add(self.jitter_ms).is_none_or(|total| total > MAX_DELAY_MS) {
            return Err(PlanError(format!(
                "latency_ms {} + jitter_ms {} is more than {MAX_DELAY_MS} ms",
                self.latency_ms, self.jitter_ms
            )));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if let When::Probability(p) = rule.when
                && !(0.0..=1.0).contains(&p)
            {
                return Err(PlanError(format!("rule {i}: probability {p} is not between 0 and 1")));
            }
            match &rule.action {
                Action::Status { code, .. } if !(400..=599).contains(code) => {
                    return Err(PlanError(format!("rule {i}: status {code} is not an error status (400..=599)")));
                }
                Action::SlowRead { bytes_per_second: 0 } => {
                    return Err(PlanError(format!("rule {i}: slow_read needs bytes_per_second > 0")));
                }
                Action::Status { retry_after_seconds: Some(secs), .. } if *secs > MAX_RETRY_AFTER_SECONDS => {
                    return Err(PlanError(format!(
                        "rule {i}: retry_after_seconds {secs} is more than {MAX_RETRY_AFTER_SECONDS}"
                    )));
                }
                Action::Hang { ms: Some(ms) } if *ms > MAX_DELAY_MS => {
                    return Err(PlanError(format!("rule {i}: hang ms {ms} is more than {MAX_DELAY_MS}")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A plan in force, with its request counter and PRNG.
#[derive(Clone, Debug)]
pub struct ActivePlan {
    plan: FaultPlan,
    requests: u64,
    rng: SplitMix64,
}

/// The decision for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Delay before answering.
    pub delay: Duration,
    /// The fault, if any.
    pub action: Option<Action>,
}

impl ActivePlan {
    /// Starts a plan.
    pub fn new(plan: FaultPlan) -> ActivePlan {
        let rng = SplitMix64(plan.seed);
        ActivePlan { plan, requests: 0, rng }
    }

    /// The plan.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Decides for the next request, which arrived `since_set` after the plan was set.
    pub fn decide(&mut self, since_set: Duration) -> Decision {
        let index = self.requests;
        self.requests += 1;
        // Validated plans stay far from overflow; the arithmetic saturates for any other.
        let jitter = match self.plan.jitter_ms.checked_add(1) {
            Some(span) if span > 1 => self.rng.next() % span,
            _ => 0,
        };
        let delay = Duration::from_millis(self.plan.latency_ms.saturating_add(jitter).min(MAX_DELAY_MS));
        let elapsed_ms = since_set.as_millis() as u64;
        for rule in &self.plan.rules {
            let applies = match rule.when {
                When::Always(always) => always,
                When::Requests { from, to } => index >= from && to.is_none_or(|to| index < to),
                // Draw for every probability rule tried, so the sequence is the same whatever
                // came before.
                When::Probability(p) => self.rng.next_f64() < p,
                When::Window { from_ms, to_ms } => elapsed_ms >= from_ms && to_ms.is_none_or(|to| elapsed_ms < to),
            };
            if applies {
                return Decision { delay, action: Some(rule.action.clone()) };
            }
        }
        Decision { delay, action: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Action {
        Action::Status { code, retry_after_seconds: None, retry_after_http_date: false }
    }

    #[test]
    fn script_over_request_order() {
        let plan = FaultPlan {
            rules: vec![Rule { when: When::Requests { from: 0, to: Some(5) }, action: status(503) }],
            ..FaultPlan::default()
        };
        let mut active = ActivePlan::new(plan);
        let answers: Vec<Option<Action>> = (0..7).map(|_| active.decide(Duration::ZERO).action).collect();
        assert_eq!(answers[..5], vec![Some(status(503)); 5]);
        assert_eq!(answers[5..], [None, None]);
    }

    #[test]
    fn probability_is_reproducible_and_roughly_right() {
        let plan = FaultPlan {
            seed: 42,
            rules: vec![Rule { when: When::Probability(0.3), action: status(502) }],
            ..FaultPlan::default()
        };
        let draw = || {
            let mut active = ActivePlan::new(plan.clone());
            (0..10_000).map(|_| active.decide(Duration::ZERO).action.is_some()).collect::<Vec<_>>()
        };
        let (a, b) = (draw(), draw());
        assert_eq!(a, b, "the same seed replays the same faults");
        let hits = a.iter().filter(|x| **x).count();
        assert!((2800..3200).contains(&hits), "{hits}");
    }

    #[test]
    fn windows_latency_and_validation() {
        let plan = FaultPlan {
            latency_ms: 10,
            jitter_ms: 5,
            rules: vec![Rule { when: When::Window { from_ms: 100, to_ms: Some(200) }, action: Action::Close }],
            ..FaultPlan::default()
        };
        let mut active = ActivePlan::new(plan);
        let d = active.decide(Duration::from_millis(50));
        assert!(d.action.is_none() && (10..=15).contains(&(d.delay.as_millis() as u64)));
        assert_eq!(active.decide(Duration::from_millis(150)).action, Some(Action::Close));
        assert!(active.decide(Duration::from_millis(250)).action.is_none());

        let bad =
            FaultPlan { rules: vec![Rule { when: When::Always(true), action: status(200) }], ..FaultPlan::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("status 200 is not an error status"));
    }

    #[test]
    fn plans_read_from_json() {
        let plan: FaultPlan = serde_json::from_str(
            r#"{"seed": 7, "rules": [
                {"when": {"requests": {"to": 5}}, "action": {"kind": "status", "code": 503, "retry_after_seconds": 2}},
                {"when": {"probability": 0.1}, "action": {"kind": "partial_success", "rejected": 3}},
                {"when": {"always": true}, "action": {"kind": "slow_read", "bytes_per_second": 1000}}]}"#,
        )
        .unwrap();
        assert_eq!(plan.rules.len(), 3);
        assert!(
            serde_json::from_str::<FaultPlan>(
                r#"{"rules": [{"when": {"sometimes": 1}, "action": {"kind": "close"}}]}"#
            )
            .is_err()
        );
    }
}
