//! Runner options, validated: the `[run]` layer of file, environment and flags, parsed once
//! with errors that name where a bad value came from.

use std::time::Duration;

use crate::config::{Origin, RunSettings, Sourced};

/// Where a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// In a child process of its own (the default): crashes, hangs and memory limits are
    /// contained and output is captured.
    Process,
    /// On libtest-mimic's thread pool in this process: fast, no containment.
    Thread,
}

impl Isolation {
    /// `process` or `thread`.
    pub fn label(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::Thread => "thread",
        }
    }
}

/// Validated runner options.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Default isolation (a test's own setting wins).
    pub isolation: Isolation,
    /// Default per-test timeout (a test's own setting wins); `None` for no limit.
    pub timeout: Option<Duration>,
    /// Retries after a failure (a test's own `retries` wins).
    pub reruns: u32,
    /// Pause between retries.
    pub reruns_delay: Duration,
    /// A flaky test fails the run.
    pub flaky_fails: bool,
    /// Stop scheduling after this many failures.
    pub maxfail: Option<u32>,
    /// Print the N slowest phases (`Some(0)`: all).
    pub durations: Option<usize>,
    /// Run only this shard.
    pub partition: Option<crate::select::partition::Partition>,
    /// Run only last run's failures.
    pub last_failed: bool,
    /// Run last run's failures first.
    pub failed_first: bool,
    /// The metrics layer is on.
    pub metrics: bool,
    /// Write a dhat profile per test.
    pub heap_profile: bool,
    /// An extra JUnit XML path.
    pub junitxml: Option<std::path::PathBuf>,
    /// Where and how to push, if anywhere.
    pub push: Option<PushOptions>,
    /// A failed push fails the run.
    pub require_push: bool,
}

/// Pushgateway settings. `Debug` and [`PushOptions::shown_url`] never show credentials.
#[derive(Clone, PartialEq)]
pub struct PushOptions {
    /// Base URL, e.g. `http://127.0.0.1:9091`.
    pub url: String,
    /// Job name.
    pub job: String,
    /// Budget for the whole push, all groups and retries.
    pub timeout: Duration,
    /// Retries of one failed request.
    pub retries: u32,
    /// Extra grouping labels.
    pub labels: Vec<(String, String)>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("url", &self.shown_url())
            .field("job", &self.job)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("labels", &self.labels)
            .finish()
    }
}

impl PushOptions {
    /// The URL as it may be printed or reported: without user info (`user:password@`).
    pub fn shown_url(&self) -> String {
        without_user_info(&self.url)
    }
}

/// `url` without the `user:password@` of its authority, if it has one.
pub fn without_user_info(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let authority_end = url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end], &url[scheme_end + at + 1..]),
        None => url.to_string(),
    }
}

/// Grouping label names the harness sets itself.
const RESERVED_LABELS: &[&str] = &["job", "suite", "test", "outcome", "instance", "quantile", "operation"];

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            isolation: Isolation::Process,
            timeout: None,
            reruns: 0,
            reruns_delay: Duration::ZERO,
            flaky_fails: false,
            maxfail: None,
            durations: None,
            partition: None,
            last_failed: false,
            failed_first: false,
            metrics: true,
            heap_profile: false,
            junitxml: None,
            push: None,
            require_push: false,
        }
    }
}

/// A value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid {key} {value:?} (from {origin}): expected {expected}")]
pub struct InvalidValue {
    /// The setting.
    pub key: &'static str,
    /// The value given.
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
    /// What would be valid.
    pub expected: &'static str,
}

fn parse<T>(
    item: &Option<Sourced<String>>,
    key: &'static str,
    expected: &'static str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, InvalidValue> {
    let Some(item) = item else { return Ok(None) };
    f(item.value.trim()).map(Some).ok_or_else(|| InvalidValue {
        key,
        value: item.value.clone(),
        origin: item.origin.clone(),
        expected,
    })
}

fn seconds(text: &str) -> Option<Duration> {
    text.parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok())
}

fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// How long the setup of a shared fixture for another process, or a shared fixture's teardown
/// at the end of its suite or run, may take when no default timeout is set.
pub const FIXTURE_BOUND: Duration = Duration::from_secs(300);

impl RunOptions {
    /// How long the parent's setup of a shared fixture (for a child) or the teardown of one
    /// suite or session fixture may take: the default test timeout when one is set, else
    /// [`FIXTURE_BOUND`]. Past it the waiting child gets an error and the run goes on to its
    /// reports.
    pub fn fixture_bound(&self) -> Duration {
        self.timeout.unwrap_or(FIXTURE_BOUND)
    }

    /// Validates layered settings.
    pub fn resolve(settings: &RunSettings) -> Result<RunOptions, InvalidValue> {
        let defaults = RunOptions::default();
        let isolation = parse(&settings.isolation, "isolation", "one of: process, thread", |v| match v {
            "process" => Some(Isolation::Process),
            "thread" => Some(Isolation::Thread),
            _ => None,
        })?;
        let timeout = parse(&settings.timeout, "timeout", "seconds, a number >= 0 (0: no timeout)", seconds)?;
        Ok(RunOptions {
            isolation: isolation.unwrap_or(defaults.isolation),
            timeout: timeout.filter(|t| !t.is_zero()),
            reruns: parse(&settings.reruns, "reruns", "a whole number >= 0", |v| v.parse().ok())?.unwrap_or(0),
            reruns_delay: parse(&settings.reruns_delay, "reruns-delay", "seconds, a number >= 0", seconds)?
                .unwrap_or_default(),
            flaky_fails: parse(&settings.flaky_fails, "flaky-fails", "a boolean", boolean)?.unwrap_or(false),
            maxfail: parse(&settings.maxfail, "maxfail", "a whole number >= 1", |v| v.parse().ok().filter(|n| *n > 0))?,
            durations: parse(&settings.durations, "durations", "a whole number >= 0 (0: all)", |v| v.parse().ok())?,
            partition: parse(
                &settings.partition,
                "partition",
                crate::select::partition::EXPECTED,
                crate::select::partition::Partition::parse,
            )?,
            last_failed: parse(&settings.last_failed, "last-failed", "a boolean", boolean)?.unwrap_or(false),
            failed_first: parse(&settings.failed_first, "failed-first", "a boolean", boolean)?.unwrap_or(false),
            metrics: parse(&settings.metrics, "metrics", "a boolean", boolean)?.unwrap_or(true),
            heap_profile: parse(&settings.heap_profile, "heap-profile", "a boolean", boolean)?.unwrap_or(false),
            junitxml: settings.junitxml.as_ref().map(|p| std::path::PathBuf::from(&p.value)),
            push: Self::push(settings)?,
            require_push: parse(&settings.require_push, "require-push", "a boolean", boolean)?.unwrap_or(false),
        })
    }

    fn push(settings: &RunSettings) -> Result<Option<PushOptions>, InvalidValue> {
        let url = parse(&settings.pushgateway_url, "pushgateway url", "an http:// or https:// URL", |v| {
            (v.starts_with("http://") || v.starts_with("https://")).then(|| v.trim_end_matches('/').to_string())
        })?;
        let Some(url) = url.filter(|u| !u.is_empty()) else { return Ok(None) };
        let job = parse(&settings.pushgateway_job, "pushgateway job", "a non-empty name", |v| {
            (!v.is_empty()).then(|| v.to_string())
        })?;
        let mut labels = Vec::new();
        for item in &settings.pushgateway_labels {
            let label = parse(
                &Some(item.clone()),
                "pushgateway label",
                "NAME=VALUE with NAME a Prometheus label name, \
                 not one the harness sets (job, suite, test, outcome, instance, quantile, operation), and VALUE non-empty",
                |v| {
                    let (name, value) = v.split_once('=')?;
                    let mut chars = name.chars();
                    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !name.starts_with("__")
                        && !RESERVED_LABELS.contains(&name);
                    (valid && !value.is_empty()).then(|| (name.to_string(), value.to_string()))
                },
            )?;
            labels.extend(label);
        }
        Ok(Some(PushOptions {
            url,
            job: job.unwrap_or_else(|| "reliability".to_string()),
            timeout: parse(&settings.push_timeout, "pushgateway timeout", "seconds, a number > 0", seconds)?
                .filter(|t| !t.is_zero())
                .unwrap_or(Duration::from_secs(5)),
            retries: parse(&settings.push_retries, "pushgateway retries", "a whole number >= 0", |v| v.parse().ok())?
                .unwrap_or(2),
            labels,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(value: &str, flag: &'static str) -> Option<Sourced<String>> {
        Some(Sourced { value: value.to_string(), origin: Origin::Flag(flag) })
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(RunOptions::resolve(&RunSettings::default()).unwrap(), RunOptions::default());
        let settings = RunSettings {
            isolation: flag("thread", "--isolation"),
            timeout: flag("1.5", "--timeout"),
            reruns: flag("2", "--reruns"),
            maxfail: flag("1", "-x"),
            durations: flag("0", "--durations"),
            ..Default::default()
        };
        let options = RunOptions::resolve(&settings).unwrap();
        assert_eq!(options.isolation, Isolation::Thread);
        assert_eq!(options.timeout, Some(Duration::from_millis(1500)));
        assert_eq!((options.reruns, options.maxfail, options.durations), (2, Some(1), Some(0)));
        let zero = RunSettings { timeout: flag("0", "--timeout"), ..Default::default() };
        assert_eq!(RunOptions::resolve(&zero).unwrap().timeout, None);
    }

    #[test]
    fn pushgateway_options() {
        let settings = RunSettings {
            pushgateway_url: flag("http://127.0.0.1:9091/", "--pushgateway-url"),
            pushgateway_labels: vec![Sourced {
                value: "branch=feature/x".into(),
                origin: Origin::Flag("--pushgateway-label"),
            }],
            ..Default::default()
        };
        let push = RunOptions::resolve(&settings).unwrap().push.unwrap();
        assert_eq!(push.url, "http://127.0.0.1:9091");
        assert_eq!((push.job.as_str(), push.timeout, push.retries), ("reliability", Duration::from_secs(5), 2));
        assert_eq!(push.labels, [("branch".to_string(), "feature/x".to_string())]);
        for bad in ["suite=x", "branch=", "1x=y", "noequals"] {
            let settings = RunSettings {
                pushgateway_url: flag("http://h:1", "--pushgateway-url"),
                pushgateway_labels: vec![Sourced { value: bad.into(), origin: Origin::Flag("--pushgateway-label") }],
                ..Default::default()
            };
            assert!(RunOptions::resolve(&settings).is_err(), "{bad}");
        }
        let ftp = RunSettings { pushgateway_url: flag("ftp://h", "--pushgateway-url"), ..Default::default() };
        assert!(RunOptions::resolve(&ftp).unwrap_err().to_string().contains("expected an http:// or https:// URL"));
    }

    #[test]
    fn bad_values_name_origin_and_valid_choices() {
        let settings = RunSettings { isolation: flag("fork", "--isolation"), ..Default::default() };
        assert_eq!(
            RunOptions::resolve(&settings).unwrap_err().to_string(),
            "invalid isolation \"fork\" (from flag --isolation): expected one of: process, thread"
        );
        for (settings, key) in [
            (RunSettings { timeout: flag("-1", "--timeout"), ..Default::default() }, "timeout"),
            (RunSettings { maxfail: flag("0", "--maxfail"), ..Default::default() }, "maxfail"),
            (RunSettings { reruns: flag("two", "--reruns"), ..Default::default() }, "reruns"),
        ] {
            let err = RunOptions::resolve(&settings).unwrap_err();
            assert_eq!(err.key, key);
        }
    }

    #[test]
    fn printed_urls_lose_their_user_info() {
        use super::without_user_info as strip;
        assert_eq!(strip("https://user:pa%40ss@gw.example:9091/x?y=1"), "https://gw.example:9091/x?y=1");
        assert_eq!(strip("http://token@127.0.0.1:9091"), "http://127.0.0.1:9091");
        assert_eq!(strip("http://127.0.0.1:9091/a@b"), "http://127.0.0.1:9091/a@b");
        assert_eq!(strip("not a url"), "not a url");
    }
}
