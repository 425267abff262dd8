//! Pushing the run's series to a Prometheus Pushgateway, without ever losing them.
//!
//! - One group per suite: `/metrics/job/<job>/suite/<suite>{/<label>/<value>}` with the
//!   configured bounded labels, replaced with `PUT` at the end of every run (interrupted runs
//!   too). Repeated runs therefore keep the series count flat, and a removed test disappears.
//!   Values that are empty or contain `/` (or anything outside `[A-Za-z0-9._~-]`) use the
//!   `<label>@base64/<urlsafe base64>` form.
//! - Bounded: the whole push, every group and retry, has one deadline (`timeout`, default 5 s);
//!   each request gets what is left; a failed request is retried with backoff while time
//!   remains. The client is reqwest's blocking one, on the calling thread (the run's main
//!   thread, never a tokio worker: reqwest refuses to block inside a runtime).
//! - Nothing is lost: a group that could not be delivered is written to
//!   `target/reliability/spool/`. The next run delivers pending groups it does not replace
//!   itself (a newer PUT of the same group supersedes them), and `--push-pending` delivers
//!   them on demand. Credentials come from the environment at delivery time and are never
//!   written to the spool, printed, or put in an error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::config::options::PushOptions;

pub mod trace;

/// Environment variable holding a bearer token for the Pushgateway.
pub const TOKEN_ENV: &str = "RELIABILITY_PUSHGATEWAY_TOKEN";
/// Environment variables holding basic-auth credentials for the Pushgateway.
pub const USER_ENV: &str = "RELIABILITY_PUSHGATEWAY_USERNAME";
/// See [`USER_ENV`].
pub const PASSWORD_ENV: &str = "RELIABILITY_PUSHGATEWAY_PASSWORD";

/// One Pushgateway group: its URL path and exposition body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// `/metrics/job/...`.
    pub path: String,
    /// Text exposition.
    pub body: String,
}

fn is_plain(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
}

fn segment(name: &str, value: &str) -> String {
    if is_plain(value) {
        format!("/{name}/{value}")
    } else if value.is_empty() {
        format!("/{name}@base64/=")
    } else {
        format!("/{name}@base64/{}", base64::engine::general_purpose::URL_SAFE.encode(value))
    }
}

/// The grouping path of a suite's group.
pub fn group_path(job: &str, suite: &str, labels: &[(String, String)]) -> String {
    let mut all = vec![("suite".to_owned(), suite.to_owned())];
    all.extend_from_slice(labels);
    grouping_path(job, &all)
}

/// The grouping path of any group: `job` first, then `labels` in order (values that are not
/// plain URL text in the `@base64` form). For other tools of the project that push, such as
/// the load tool.
pub fn grouping_path(job: &str, labels: &[(String, String)]) -> String {
    let mut path = format!("/metrics{}", segment("job", job));
    for (name, value) in labels {
        path.push_str(&segment(name, value));
    }
    path
}

/// Why a group was not delivered.
#[derive(Debug, thiserror::Error)]
#[error("push of {path} to {url} failed: {reason}")]
pub struct PushError {
    /// The group.
    pub path: String,
    /// The Pushgateway, without user info (no credentials are ever part of it).
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// Authorization header value from the environment, if any.
fn authorization(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(token) = env(TOKEN_ENV).filter(|t| !t.is_empty()) {
        return Some(format!("Bearer {token}"));
    }
    let user = env(USER_ENV).filter(|u| !u.is_empty())?;
    let password = env(PASSWORD_ENV).unwrap_or_default();
    Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
}

/// Delivers groups within one deadline; returns the ones that failed.
pub fn push(
    options: &PushOptions,
    groups: &[Group],
    env: &dyn Fn(&str) -> Option<String>,
    deadline: Instant,
) -> Vec<(Group, PushError)> {
    let auth = authorization(env);
    let mut failed = Vec::new();
    let client = http_client();
    for group in groups {
        let result = match &client {
            Ok(client) => put(client, &options.url, group, auth.as_deref(), options.retries, deadline),
            Err(reason) => Err(reason.clone()),
        };
        if let Err(reason) = result {
            let error = PushError { path: group.path.clone(), url: options.shown_url(), reason };
            failed.push((group.clone(), error));
        }
    }
    failed
}

/// The HTTP client for the gateway.
fn http_client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder().build().map_err(|e| format!("failed to build the HTTP client: {}", chain(&e)))
}

/// An error with its causes, without the URL reqwest puts in (it may carry credentials).
fn chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn put(
    client: &reqwest::blocking::Client,
    base: &str,
    group: &Group,
    auth: Option<&str>,
    retries: u32,
    deadline: Instant,
) -> Result<(), String> {
    let url = format!("{base}{}", group.path);
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err("push timeout exhausted".into());
        }
        let mut request = client
            .put(&url)
            .timeout(remaining)
            .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .body(group.body.clone());
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let error = match request.send() {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                let body = response.text().unwrap_or_default();
                let reason = format!("HTTP {status}: {}", body.trim());
                // 4xx other than 429 will not get better by retrying.
                if status.is_client_error() && status.as_u16() != 429 {
                    return Err(reason);
                }
                reason
            }
            Err(err) => chain(&err.without_url()),
        };
        attempt += 1;
        if attempt > retries || Instant::now() + backoff >= deadline {
            return Err(error);
        }
        std::thread::sleep(backoff);
        backoff *= 2;
    }
}

/// The spool of undelivered groups.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool in `output_dir/spool`.
    pub fn new(output_dir: &Path) -> Spool {
        Spool { dir: output_dir.join("spool") }
    }

    fn file_for(&self, path: &str) -> PathBuf {
        let name: String = path.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        self.dir.join(format!("{name}.json"))
    }

    /// Keeps a group for later delivery (replacing an older copy of the same group).
    pub fn keep(&self, group: &Group) -> Result<PathBuf, String> {
        let file = self.file_for(&group.path);
        let json = serde_json::to_vec(group).map_err(|e| format!("failed to encode spooled group: {e}"))?;
        crate::io::write_file(&file, &json)?;
        Ok(file)
    }

    /// Pending groups, oldest file name first.
    pub fn pending(&self) -> Vec<(PathBuf, Group)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|file| {
                let group = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
                Some((file, group))
            })
            .collect()
    }

    /// Drops a pending group (delivered, or superseded by a newer push of the same group).
    pub fn drop_file(&self, file: &Path) {
        let _ = std::fs::remove_file(file);
    }
}

/// What a push at the end of a run did.
#[derive(Debug, Default)]
pub struct PushReport {
    /// Groups delivered (this run's and pending ones).
    pub delivered: usize,
    /// Failures, each spooled.
    pub errors: Vec<String>,
}

/// Pushes this run's groups, delivering pending ones first; spools whatever fails.
pub fn publish(
    options: &PushOptions,
    groups: Vec<Group>,
    spool: &Spool,
    env: &dyn Fn(&str) -> Option<String>,
) -> PushReport {
    let deadline = Instant::now() + options.timeout;
    let mut outcome = PushReport::default();
    let mut pending = Vec::new();
    for (file, group) in spool.pending() {
        if groups.iter().any(|g| g.path == group.path) {
            spool.drop_file(&file);
        } else {
            pending.push((file, group));
        }
    }
    let all: Vec<Group> = pending.iter().map(|(_, g)| g.clone()).chain(groups).collect();
    let failed = push(options, &all, env, deadline);
    for (file, group) in &pending {
        if !failed.iter().any(|(g, _)| g.path == group.path) {
            spool.drop_file(file);
        }
    }
    outcome.delivered = all.len() - failed.len();
    for (group, error) in failed {
        let kept = spool
            .keep(&group)
            .map_or_else(|e| format!(" (and could not spool it: {e})"), |f| format!("; kept in {}", f.display()));
        outcome.errors.push(format!("{error}{kept}"));
    }
    outcome
}

/// `--push-pending`: delivers the spool; returns how many were delivered and what failed.
pub fn push_pending(options: &PushOptions, spool: &Spool, env: &dyn Fn(&str) -> Option<String>) -> PushReport {
    publish(options, Vec::new(), spool, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_paths_use_base64_where_needed() {
        assert_eq!(group_path("reliability", "delivery", &[]), "/metrics/job/reliability/suite/delivery");
        let labels = vec![("branch".to_string(), "feature/x".to_string()), ("shard".to_string(), "1".to_string())];
        assert_eq!(
            group_path("reliability", "", &labels),
            "/metrics/job/reliability/suite@base64/=/branch@base64/ZmVhdHVyZS94/shard/1"
        );
    }

    #[test]
    fn credentials_come_from_the_environment() {
        let env = |k: &str| match k {
            USER_ENV => Some("ci".to_string()),
            PASSWORD_ENV => Some("pw".to_string()),
            _ => None,
        };
        assert_eq!(authorization(&env).as_deref(), Some("Basic Y2k6cHc="));
        let token = |k: &str| (k == TOKEN_ENV).then(|| "t0k".to_string());
        assert_eq!(authorization(&token).as_deref(), Some("Bearer t0k"));
        assert_eq!(authorization(&|_| None), None);
    }

    #[test]
    fn unreachable_gateway_is_bounded_and_spooled() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let spool = Spool::new(&dir);
        // Port 0: nothing can listen there, the connection is refused at once.
        let options = PushOptions {
            url: "http://127.0.0.1:0".into(),
            job: "reliability".into(),
            timeout: Duration::from_secs(2),
            retries: 2,
            labels: vec![],
        };
        let group = Group { path: group_path("reliability", "s", &[]), body: "x 1\n".into() };
        let outcome = publish(&options, vec![group.clone()], &spool, &|_| None);
        assert_eq!(outcome.delivered, 0);
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(spool.pending().into_iter().map(|(_, g)| g).collect::<Vec<_>>(), [group]);
    }
}
