//! A load plan in YAML, read strictly: unknown keys, bad values and impossible profiles are
//! errors that name the file, line and column (and, for a choice, the valid ones).
//!
//! ```yaml
//! name: steady-1k
//! seed: 42
//! target:
//!   endpoint: embedded               # or http://host:port/v1/traces
//!   protocol: protobuf               # or json
//!   gzip: false
//!   headers:                         # header name: the environment variable holding its value
//!     x-api-key: LOAD_API_KEY
//! pipeline: raw                      # or sdk
//! workload:
//!   executor: constant-arrival-rate  # or ramping-arrival-rate, burst
//!   rate: 1000                       # iterations per second
//!   duration: 10s
//!   max-in-flight: 64
//! spans-per-iteration: 10            # one trace, one request per iteration
//! thresholds: ["p99_ms < 250", "error_rate < 0.001"]
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::scenario::{self, Scenario, Step};
use crate::schedule::{Profile, ProfileError, Spike};
use crate::threshold::Threshold;

/// A plan that could not be read: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct PlanError {
    /// The file (or `<string>`).
    pub origin: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A run: what to send where, how fast, and what must hold.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Plan {
    /// The plan's name (the results folder's suffix); the file's stem when missing.
    #[serde(default)]
    pub name: Option<String>,
    /// Seed of every random choice of the run.
    #[serde(default)]
    pub seed: u64,
    /// The spans' `service.name` (the target's project); default `load-<name>`.
    #[serde(default)]
    pub service: Option<String>,
    /// Where the spans go.
    #[serde(default)]
    pub target: Target,
    /// What sends them.
    #[serde(default)]
    pub pipeline: Pipeline,
    /// Spans each iteration sends (one trace, one request), default 10; for plans without
    /// `scenarios`.
    #[serde(default = "ten")]
    pub spans_per_iteration: u64,
    /// A weighted mix of GenAI workflows; each iteration is one trace of one of them.
    #[serde(default)]
    pub scenarios: Option<Vec<Scenario>>,
    /// How fast.
    pub workload: Workload,
    /// Conditions checked at the end (k6-style), e.g. `p99_ms < 250`; a breach is exit 1.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Settings of `load capacity` (the workload's `max-in-flight` applies to every step).
    #[serde(default)]
    pub capacity: Option<crate::capacity::Settings>,
    /// The system under test to watch (a pid, or a command to start).
    #[serde(default)]
    pub watch: Option<crate::watch::WatchSpec>,
}

fn ten() -> u64 {
    10
}

/// Where the spans go.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Target {
    /// `embedded` (a testbed backend started for the run, on loopback) or an OTLP/HTTP traces
    /// URL.
    pub endpoint: String,
    /// Wire encoding.
    pub protocol: Protocol,
    /// gzip request bodies.
    pub gzip: bool,
    /// Header name → the environment variable holding its value (secrets stay out of plans).
    pub headers: BTreeMap<String, String>,
}

impl Default for Target {
    fn default() -> Self {
        Target { endpoint: "embedded".into(), protocol: Protocol::Protobuf, gzip: false, headers: BTreeMap::new() }
    }
}

/// OTLP/HTTP encodings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// `application/x-protobuf`.
    #[default]
    Protobuf,
    /// `application/json`.
    Json,
}

/// What sends the spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pipeline {
    /// Pre-encoded OTLP requests straight over HTTP: stresses the target, not the SDK.
    #[default]
    Raw,
    /// The OpenTelemetry SDK's BatchSpanProcessor and OTLP/HTTP exporter.
    Sdk,
}

/// How fast: the executor and its settings. Which keys an executor takes:
///
/// | executor | required | optional |
/// |---|---|---|
/// | `constant-arrival-rate` | `rate`, `duration` | `max-in-flight` |
/// | `ramping-arrival-rate` | `stages` | `start-rate`, `max-in-flight` |
/// | `burst` | `baseline`, `duration` | `spikes`, `max-in-flight` |
/// | `virtual-users` | `users`, `duration` | `spawn-rate`, `think-time` |
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Workload {
    /// Which executor.
    pub executor: Executor,
    /// Iterations per second (`constant-arrival-rate`).
    #[serde(default)]
    pub rate: Option<Rate>,
    /// How long (`constant-arrival-rate`, `burst`).
    #[serde(default)]
    pub duration: Option<Length>,
    /// Iterations per second at the start (`ramping-arrival-rate`; default 0).
    #[serde(default)]
    pub start_rate: Option<Rate>,
    /// Ramp stages, in order (`ramping-arrival-rate`).
    #[serde(default)]
    pub stages: Option<Vec<Stage>>,
    /// Iterations per second outside the spikes (`burst`).
    #[serde(default)]
    pub baseline: Option<Rate>,
    /// The spikes (`burst`).
    #[serde(default)]
    pub spikes: Option<Vec<SpikeSpec>>,
    /// Iterations in flight at most (default 64); one due when all are busy is missed, and
    /// counted.
    #[serde(default)]
    pub max_in_flight: InFlight,
    /// Virtual users (`virtual-users`).
    #[serde(default)]
    pub users: Option<InFlight>,
    /// Users started per second (`virtual-users`; default: all in the first second).
    #[serde(default)]
    pub spawn_rate: Option<Rate>,
    /// Pause after each iteration (`virtual-users`; default none).
    #[serde(default)]
    pub think_time: Option<Length>,
}

/// The open-model executors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Executor {
    /// A fixed number of iterations per second.
    ConstantArrivalRate,
    /// From `start-rate`, ramping linearly through each stage to its target.
    RampingArrivalRate,
    /// A baseline rate with spikes.
    Burst,
    /// The closed model: users looping over weighted tasks with think time.
    VirtualUsers,
}

impl Executor {
    fn keys(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Executor::ConstantArrivalRate => (&["rate", "duration"], &["max-in-flight"]),
            Executor::RampingArrivalRate => (&["stages"], &["start-rate", "max-in-flight"]),
            Executor::Burst => (&["baseline", "duration"], &["spikes", "max-in-flight"]),
            Executor::VirtualUsers => (&["users", "duration"], &["spawn-rate", "think-time"]),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Executor::ConstantArrivalRate => "constant-arrival-rate",
            Executor::RampingArrivalRate => "ramping-arrival-rate",
            Executor::Burst => "burst",
            Executor::VirtualUsers => "virtual-users",
        }
    }
}

/// One stage of a ramp.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// How long the ramp to `target` takes.
    pub duration: Length,
    /// Iterations per second at the end of the stage.
    pub target: Rate,
}

/// One spike of a burst.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeSpec {
    /// When it starts, from the beginning of the run.
    pub at: Length,
    /// How long it lasts.
    pub duration: Length,
    /// Iterations per second during it.
    pub rate: Rate,
}

/// Iterations per second: a finite number ≥ 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate(pub f64);

/// Numbers and strings visited where they are, so an error carries the value's own line and
/// column (serde's `try_from` reports the enclosing mapping's instead).
struct ValueVisitor<T>(fn(Scalar<'_>) -> Result<T, String>);

enum Scalar<'a> {
    Number(f64),
    Text(&'a str),
}

impl<'de, T> serde::de::Visitor<'de> for ValueVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number or a string")
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        (self.0)(Scalar::Number(v)).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        (self.0)(Scalar::Number(v as f64)).map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        (self.0)(Scalar::Number(v as f64)).map_err(E::custom)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(Scalar::Text(v)).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        d.deserialize_any(ValueVisitor(|v| match v {
            Scalar::Number(n) if n.is_finite() && n >= 0.0 => Ok(Rate(n)),
            Scalar::Number(n) => Err(format!("a rate must be a number >= 0, not {n}")),
            Scalar::Text(t) => Err(format!("a rate must be a number >= 0, not {t:?}")),
        }))
    }
}

/// At least one iteration in flight (default 64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight(pub usize);

impl Default for InFlight {
    fn default() -> Self {
        InFlight(64)
    }
}

impl<'de> Deserialize<'de> for InFlight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<InFlight, D::Error> {
        d.deserialize_any(ValueVisitor(|v| match v {
            Scalar::Number(n) if n >= 1.0 && n.fract() == 0.0 && n <= 1e6 => Ok(InFlight(n as usize)),
            Scalar::Number(n) => Err(format!("max-in-flight must be a whole number from 1 to 1000000, not {n}")),
            Scalar::Text(t) => Err(format!("max-in-flight must be a whole number from 1 to 1000000, not {t:?}")),
        }))
    }
}

/// A length of time written as `250ms`, `10s`, `2m` or `1h` (a bare number is seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Length(pub Duration);

impl Length {
    fn parse(v: Scalar<'_>) -> Result<Length, String> {
        let bad = |shown: String| format!("a duration is a number with a unit (250ms, 10s, 2m, 1h), not {shown}");
        let (number, unit) = match v {
            Scalar::Number(n) => (n, "s"),
            Scalar::Text(s) => {
                let s = s.trim();
                let at = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
                (s[..at].parse::<f64>().map_err(|_| bad(format!("{s:?}")))?, s[at..].trim())
            }
        };
        let seconds = match unit {
            "ms" => number / 1e3,
            "s" | "" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return Err(bad(format!("the unit {unit:?}"))),
        };
        if !(seconds.is_finite() && (0.0..1e9).contains(&seconds)) {
            return Err(bad(format!("{number}{unit}")));
        }
        Ok(Length(Duration::from_secs_f64(seconds)))
    }
}

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Length, D::Error> {
        d.deserialize_any(ValueVisitor(Length::parse))
    }
}

impl Workload {
    fn given(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut add = |present: bool, key| {
            if present {
                keys.push(key);
            }
        };
        add(self.rate.is_some(), "rate");
        add(self.duration.is_some(), "duration");
        add(self.start_rate.is_some(), "start-rate");
        add(self.stages.is_some(), "stages");
        add(self.baseline.is_some(), "baseline");
        add(self.spikes.is_some(), "spikes");
        add(self.users.is_some(), "users");
        add(self.spawn_rate.is_some(), "spawn-rate");
        add(self.think_time.is_some(), "think-time");
        keys
    }

    /// A key the executor needs but lacks, or one it does not take: (key, message).
    fn misfit(&self) -> Option<(&'static str, String)> {
        let (required, optional) = self.executor.keys();
        let name = self.executor.name();
        if let Some(key) = required.iter().find(|k| !self.given().contains(k)) {
            return Some(("executor", format!("{name} needs `{key}` (it takes {})", required.join(", "))));
        }
        let taken: Vec<&str> = required.iter().chain(optional).copied().collect();
        self.given()
            .into_iter()
            .find(|k| !taken.contains(k))
            .map(|key| (key, format!("`{key}` is not a setting of {name} (it takes {})", taken.join(", "))))
    }

    /// The rate profile, or why it cannot run.
    pub fn profile(&self) -> Result<Profile, ProfileError> {
        let duration = self.duration.unwrap_or_default().0;
        match self.executor {
            Executor::ConstantArrivalRate => Profile::constant(self.rate.unwrap_or_default().0, duration),
            Executor::RampingArrivalRate => {
                let stages: Vec<(Duration, f64)> =
                    self.stages.iter().flatten().map(|s| (s.duration.0, s.target.0)).collect();
                Profile::ramping(self.start_rate.unwrap_or_default().0, &stages)
            }
            // The closed model has no schedule: its users set the pace.
            Executor::VirtualUsers => Profile::constant(0.0, duration),
            Executor::Burst => {
                let spikes: Vec<Spike> = self
                    .spikes
                    .iter()
                    .flatten()
                    .map(|s| Spike { at: s.at.0, duration: s.duration.0, rate: s.rate.0 })
                    .collect();
                Profile::burst(self.baseline.unwrap_or_default().0, duration, &spikes)
            }
        }
    }

    /// Iterations in flight at most.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.0
    }

    /// The closed model's settings, for `virtual-users`.
    pub fn users(&self) -> Option<crate::users::Users> {
        (self.executor == Executor::VirtualUsers).then(|| {
            let users = self.users.map_or(1, |u| u.0 as u64);
            crate::users::Users {
                users,
                spawn_rate: self.spawn_rate.map_or(users as f64, |r| r.0),
                duration: self.duration.unwrap_or_default().0,
                think: self.think_time.unwrap_or_default().0,
            }
        })
    }
}

/// Where `key:` sits in the block-style `workload:` mapping (line, column; 1-based), for
/// errors found after parsing; the `workload:` line when the key is not found there.
fn workload_position(text: &str, key: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("workload:")) else { return (0, 0) };
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let indent = line.len() - line.trim_start().len();
        if indent == 0 && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            break;
        }
        if line.trim_start().starts_with(&format!("{key}:")) {
            return (i + 1, indent + 1);
        }
    }
    (start + 1, 1)
}

/// A scenario ready to run: its name, weight, root agent and steps (built-ins resolved).
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// Its name.
    pub name: String,
    /// Its weight in the mix.
    pub weight: f64,
    /// The root agent.
    pub agent: String,
    /// The steps.
    pub steps: Vec<Step>,
}

/// Where a top-level `key:` sits (line, column; 1-based), or (0, 0).
fn top_position(text: &str, key: &str) -> (usize, usize) {
    text.lines().position(|l| l.starts_with(&format!("{key}:"))).map_or((0, 0), |i| (i + 1, 1))
}

impl Plan {
    /// The plan's mix, built-ins resolved; `Err` names what is wrong.
    pub fn mix(&self) -> Result<Option<Vec<Resolved>>, String> {
        let Some(scenarios) = &self.scenarios else { return Ok(None) };
        if scenarios.is_empty() || scenarios.iter().all(|s| s.weight.0 == 0.0) {
            return Err("scenarios: the mix needs at least one scenario of weight > 0".into());
        }
        let mut out = Vec::new();
        for s in scenarios {
            let (agent, steps) = match &s.steps {
                Some(steps) => (s.agent.clone().unwrap_or_else(|| s.name.clone()), steps.clone()),
                None => {
                    let (agent, steps) = scenario::built_in(&s.name).ok_or_else(|| {
                        format!(
                            "scenarios: {:?} is not a built-in scenario (built-ins: {}); give it steps",
                            s.name,
                            scenario::BUILT_IN.join(", ")
                        )
                    })?;
                    (s.agent.clone().unwrap_or_else(|| agent.to_owned()), steps)
                }
            };
            if steps.is_empty() {
                return Err(format!("scenarios: {:?} has no steps", s.name));
            }
            out.push(Resolved { name: s.name.clone(), weight: s.weight.0, agent, steps });
        }
        Ok(Some(out))
    }

    /// Reads a plan; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Plan, PlanError> {
        let plan: Plan = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            // serde_yaml ends its message with the position, which the error already leads with.
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(at) if line > 0 => message[..at].to_owned(),
                _ => message,
            };
            PlanError { origin: origin.to_owned(), line, column, message }
        })?;
        let at = |key: &str, message: String| {
            let (line, column) = workload_position(text, key);
            PlanError { origin: origin.to_owned(), line, column, message }
        };
        if let Some((key, message)) = plan.workload.misfit() {
            return Err(at(key, message));
        }
        if let Some(users) = plan.workload.users() {
            if users.duration.is_zero() || users.spawn_rate <= 0.0 {
                let key = if users.duration.is_zero() { "duration" } else { "spawn-rate" };
                return Err(at(key, format!("virtual-users needs a duration and a spawn-rate above 0 (`{key}`)")));
            }
        } else if let Err(e) = plan.workload.profile() {
            let key = match (&e, plan.workload.executor) {
                (ProfileError::BadSpike { .. }, _) => "spikes",
                (_, Executor::RampingArrivalRate) => "stages",
                _ => "duration",
            };
            return Err(at(key, format!("workload: {e}")));
        }
        if let Some(w) = &plan.watch
            && w.pid.is_some() == w.spawn.is_some()
        {
            let (line, column) = top_position(text, "watch");
            let message = "watch: give exactly one of `pid` (a running process) or `spawn` (a command to start)".into();
            return Err(PlanError { origin: origin.to_owned(), line, column, message });
        }
        if let Err(message) = plan.mix() {
            let (line, column) = top_position(text, "scenarios");
            return Err(PlanError { origin: origin.to_owned(), line, column, message });
        }
        Ok(plan)
    }

    /// Reads a plan file.
    pub fn load(path: &std::path::Path) -> Result<Plan, PlanError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PlanError {
            origin: origin.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Plan::from_yaml(&text, &origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_plan_reads() {
        let plan = Plan::from_yaml(
            "name: steady\nseed: 7\ntarget:\n  endpoint: http://127.0.0.1:4318/v1/traces\n  protocol: json\n  gzip: true\n  headers:\n    x-api-key: LOAD_KEY\npipeline: sdk\nworkload:\n  executor: constant-arrival-rate\n  rate: 1000\n  duration: 10s\n  max-in-flight: 8\nspans-per-iteration: 3\n",
            "p.yaml",
        )
        .unwrap();
        assert_eq!(plan.seed, 7);
        assert_eq!(plan.target.protocol, Protocol::Json);
        assert_eq!(plan.target.headers["x-api-key"], "LOAD_KEY");
        assert_eq!(plan.pipeline, Pipeline::Sdk);
        assert_eq!(plan.workload.max_in_flight(), 8);
        assert_eq!(plan.spans_per_iteration, 3);
        assert_eq!(plan.workload.profile().unwrap().count(), 10_000);
    }

    #[test]
    fn defaults_ramps_and_bursts() {
        let ramp = "workload:\n  executor: ramping-arrival-rate\n  stages:\n    - {duration: 2s, target: 200}\n    - {duration: 500ms, target: 0}\n";
        let plan = Plan::from_yaml(ramp, "r.yaml").unwrap();
        assert_eq!(plan.target, Target::default());
        assert_eq!(plan.pipeline, Pipeline::Raw);
        assert_eq!(plan.workload.max_in_flight(), 64);
        assert_eq!(plan.workload.profile().unwrap().count(), 250);
        let burst = "workload:\n  executor: burst\n  baseline: 10\n  duration: 1m\n  spikes: [{at: 10s, duration: 1s, rate: 1000}]\n";
        assert_eq!(Plan::from_yaml(burst, "b.yaml").unwrap().workload.profile().unwrap().count(), 59 * 10 + 1000);
    }

    /// Each bad plan: the error's line and column, and that it names the culprit.
    #[test]
    fn bad_plans_point_at_the_culprit() {
        let head = "workload:\n  executor: constant-arrival-rate\n";
        let cases = [
            (format!("{head}  rate: 1\n  duration: 1s\n  rtae: 5\n"), (5, 3), "rtae"),
            ("workload:\n  executor: constant-rate\n  rate: 1\n".to_owned(), (2, 13), "ramping-arrival-rate"),
            (format!("{head}  rate: -5\n  duration: 1s\n"), (3, 9), "-5"),
            (format!("{head}  rate: 5\n  duration: 10 parsecs\n"), (4, 13), "parsecs"),
            (format!("pipeline: turbo\n{head}  rate: 1\n  duration: 1s\n"), (1, 11), "sdk"),
            (format!("{head}  rate: 1\n  duration: 0s\n"), (4, 3), "empty"),
            (format!("{head}  rate: 1\n  duration: 1s\n  max-in-flight: 0\n"), (5, 18), "max-in-flight"),
            (format!("{head}  rate: 1\n  duration: 1s\n  stages: []\n"), (5, 3), "stages"),
            ("workload:\n  executor: burst\n  duration: 5s\n".to_owned(), (2, 3), "baseline"),
            (
                "workload:\n  executor: burst\n  baseline: 1\n  duration: 5s\n  spikes: [{at: 4s, duration: 2s, rate: 9}]\n"
                    .to_owned(),
                (5, 3),
                "spike",
            ),
            ("seed: 1\n".to_owned(), (1, 1), "workload"),
            ("workload:\n  executor: virtual-users\n  users: 3\n  duration: 1s\n  spawn-rate: 0\n".to_owned(), (5, 3), "spawn-rate"),
            ("workload:\n  executor: virtual-users\n  users: 3\n  duration: 1s\n  rate: 9\n".to_owned(), (5, 3), "rate"),
            (format!("{head}  rate: 1\n  duration: 1s\nthresholds: [\"p99_ms < 1\", \"p42 < 1\"]\n"), (5, 28), "p42"),
            (format!("{head}  rate: 1\n  duration: 1s\nscenarios:\n  - {{name: simple_qeury, weight: 1}}\n"), (5, 1), "simple_query"),
            (format!("{head}  rate: 1\n  duration: 1s\nscenarios:\n  - {{name: x, weight: 1, stesp: []}}\n"), (6, 26), "stesp"),
        ];
        for (text, (line, column), culprit) in cases {
            let e = Plan::from_yaml(&text, "plan.yaml").unwrap_err();
            assert_eq!((e.line, e.column), (line, column), "{e}");
            assert!(e.to_string().starts_with(&format!("plan.yaml:{line}:{column}: ")), "{e}");
            assert!(e.message.contains(culprit), "{e}");
        }
    }
}

#[cfg(test)]
mod examples {
    use super::*;

    /// The plans shipped in `load/plans/` read, and their profiles are what they say.
    #[test]
    fn every_example_plan_reads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
        let mut counts = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            let plan = Plan::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let name = plan.name.clone().unwrap_or_default();
            counts.insert(name, plan.workload.profile().map(|p| p.count()).unwrap_or_default());
        }
        assert_eq!(counts["steady-1k"], 10_000);
        // 100→1000 over 20 s (11,000) + 1000→5000 over 20 s (60,000) + 5000→0 over 10 s (25,000).
        assert_eq!(counts["ramp-to-5k"], 96_000);
        assert_eq!(counts["burst"], 50 * 200 + 2 * 5 * 2000);
        assert_eq!(counts["genai-mix"], 600);
        // The closed model has no schedule of its own.
        assert_eq!(counts["users"], 0);
    }
}
