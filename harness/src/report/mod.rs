//! Reports written after every run, all from the same [`TestReport`]s: `report.json`,
//! `junit.xml`, `metrics.prom`, and a Markdown summary for `$GITHUB_STEP_SUMMARY`.
//!
//! Each format is a pure function from the run to text (tested on its own); writing goes
//! through `io::write_file`, whose errors carry the path.

pub mod durations;
pub mod html;
pub mod json;
pub mod junit;
pub mod lastfailed;
pub mod markdown;
pub mod merge;
pub mod progress;
pub mod prom;
pub mod summary;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::outcome::TestReport;

/// Facts about the run as a whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The test binary's name (e.g. `reliability`).
    pub binary: String,
    /// The commit under test, when known (`GITHUB_SHA`, `CI_COMMIT_SHA`, or git).
    pub commit: Option<String>,
    /// The branch, when known.
    pub branch: Option<String>,
    /// The CI workflow (`GITHUB_WORKFLOW`), when run by one.
    pub workflow: Option<String>,
    /// Host name.
    pub host: String,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// Start, Unix seconds.
    pub started_unix: f64,
    /// Wall time of the whole run.
    pub duration_seconds: f64,
    /// The harness version.
    pub version: String,
    /// The run was interrupted (Ctrl-C, SIGTERM).
    pub interrupted: bool,
    /// Peak resident set size of the run's own process (the parent), when the kernel says.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// The shard this run was (`--partition`, e.g. `hash:1/3`), if it was one.
    #[serde(default)]
    pub partition: Option<String>,
}

/// Where CI names the commit under test, in order of preference.
const COMMIT_VARS: &[&str] = &["GITHUB_SHA", "CI_COMMIT_SHA"];
/// Where CI names the branch, in order of preference.
const BRANCH_VARS: &[&str] = &["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"];

/// The commit and branch from git, looked up on a thread of its own (a `git` process costs a
/// few milliseconds) so that it overlaps the run.
#[derive(Debug)]
pub struct GitLookup(Option<std::thread::JoinHandle<(Option<String>, Option<String>)>>);

impl GitLookup {
    /// Starts `git rev-parse HEAD --abbrev-ref HEAD` in `CARGO_MANIFEST_DIR` (else the current
    /// directory) — unless CI variables already name the commit and the branch.
    pub fn start(env: &dyn Fn(&str) -> Option<String>) -> GitLookup {
        let set = |names: &[&str]| names.iter().any(|n| env(n).is_some_and(|v| !v.is_empty()));
        if set(COMMIT_VARS) && set(BRANCH_VARS) {
            return GitLookup(None);
        }
        let dir = env("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from);
        GitLookup(std::thread::Builder::new().name("reliability-git".into()).spawn(move || git_facts(dir)).ok())
    }

    fn finish(self) -> (Option<String>, Option<String>) {
        self.0.and_then(|thread| thread.join().ok()).unwrap_or_default()
    }
}

/// The commit and the branch (`None` when detached), from one `git` process.
fn git_facts(dir: Option<std::path::PathBuf>) -> (Option<String>, Option<String>) {
    let mut cmd = std::process::Command::new("git");
    cmd.args(["rev-parse", "HEAD", "--abbrev-ref", "HEAD"]).stderr(std::process::Stdio::null());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let Some(out) = cmd.output().ok().filter(|o| o.status.success()) else { return (None, None) };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(str::trim).map(|l| Some(l.to_string()).filter(|s| !s.is_empty() && s != "HEAD"));
    (lines.next().flatten(), lines.next().flatten())
}

impl RunInfo {
    /// Collects run metadata from the environment (CI variables first, then git).
    pub fn collect(
        env: &dyn Fn(&str) -> Option<String>,
        started: SystemTime,
        elapsed: Duration,
        interrupted: bool,
    ) -> RunInfo {
        RunInfo::collect_with(env, started, elapsed, interrupted, GitLookup::start(env))
    }

    /// [`RunInfo::collect`] with git's answer looked up already (see [`GitLookup`]).
    pub fn collect_with(
        env: &dyn Fn(&str) -> Option<String>,
        started: SystemTime,
        elapsed: Duration,
        interrupted: bool,
        git: GitLookup,
    ) -> RunInfo {
        let var = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        let (git_commit, git_branch) = git.finish();
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .map(|s| match s.rsplit_once('-') {
                // cargo names test binaries `name-<16 hex>`.
                Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
                    name.to_string()
                }
                _ => s,
            })
            .unwrap_or_default();
        let started_unix = started.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        RunInfo {
            binary,
            commit: var(COMMIT_VARS).or(git_commit),
            branch: var(BRANCH_VARS).or(git_branch),
            workflow: var(&["GITHUB_WORKFLOW"]),
            host: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
            started_at: rfc3339(started_unix as i64),
            started_unix,
            duration_seconds: elapsed.as_secs_f64(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            interrupted,
            peak_rss_bytes: crate::measure::peak_rss_bytes(),
            partition: None,
        }
    }
}

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-22T09:31:07Z`).
pub fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The suite of a test name: its first module, or `""` at the crate root.
pub fn suite_of(name: &str) -> &str {
    // A byte scan, not `split_once("::")`: this runs for every test in every report, and a
    // substring searcher costs more to set up than the scan of a short name.
    let bytes = name.as_bytes();
    (1..bytes.len()).find(|&i| bytes[i - 1] == b':' && bytes[i] == b':').map_or("", |i| &name[..i - 1])
}

/// Distinct suites of the reports, sorted.
pub fn suites(reports: &[TestReport]) -> Vec<&str> {
    let mut suites: Vec<&str> = reports.iter().map(|r| suite_of(&r.name)).collect();
    suites.sort_unstable();
    suites.dedup();
    suites
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_is_the_first_module() {
        assert_eq!(suite_of("delivery::baseline"), "delivery");
        assert_eq!(suite_of("a::b::c[x::y]"), "a");
        assert_eq!(suite_of("root_test"), "");
        assert_eq!(suite_of("::x"), "");
        assert_eq!(suite_of("a:b::c"), "a:b");
        assert_eq!(suite_of(""), "");
        assert_eq!(suite_of("ü::x"), "ü");
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_339_867), "2026-11-22T09:31:07Z");
    }

    /// Without CI variables the commit and branch come from git, in one call: checked on a
    /// repository made here, against what git itself says.
    #[test]
    fn git_names_the_commit_and_branch() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| panic!("git: {e}"));
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q", "-b", "shard-7"]);
        git(&["commit", "-q", "--allow-empty", "-m", "x"]);
        let sha = git(&["rev-parse", "HEAD"]);
        let path = dir.path().to_string_lossy().into_owned();
        let env = |k: &str| (k == "CARGO_MANIFEST_DIR").then(|| path.clone());
        let info = RunInfo::collect(&env, UNIX_EPOCH, Duration::from_secs(1), false);
        assert_eq!(sha.len(), 40);
        assert_eq!(info.commit.as_deref(), Some(sha.as_str()));
        assert_eq!(info.branch.as_deref(), Some("shard-7"));
    }

    #[test]
    fn ci_variables_win_over_git() {
        let env = |k: &str| match k {
            "GITHUB_SHA" => Some("abc123".to_string()),
            "GITHUB_REF_NAME" => Some("main".to_string()),
            "GITHUB_WORKFLOW" => Some("ci".to_string()),
            _ => None,
        };
        let info = RunInfo::collect(&env, UNIX_EPOCH, Duration::from_secs(2), false);
        assert_eq!(info.commit.as_deref(), Some("abc123"));
        assert_eq!(info.branch.as_deref(), Some("main"));
        assert_eq!(info.workflow.as_deref(), Some("ci"));
        assert_eq!(info.started_at, "1970-01-01T00:00:00Z");
        assert_eq!(info.duration_seconds, 2.0);
    }
}
