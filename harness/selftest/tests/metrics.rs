//! The metrics layer, end to end: fidelity of the figures (`src/metrics.rs` has tests with
//! known resource use), the report files (promtool must accept `metrics.prom`), and a real
//! Prometheus Pushgateway (Debian's `prometheus-pushgateway`, which `ci/test.sh` installs):
//! series arrive, stay flat across runs, and survive the gateway being down.
#![expect(clippy::unwrap_used, reason = "test helpers: a panic is the failure report")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_metrics-suite");
const MIB: f64 = 1024.0 * 1024.0;

/// A fresh directory of a name no earlier run can have used (pids are reused).
fn scratch() -> PathBuf {
    tempfile::Builder::new().prefix("metrics-selftest-").tempdir().unwrap().keep()
}

fn suite(args: &[&str], out: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("RELIABILITY_") || key.starts_with("NEXTEST") || key.starts_with("PROMETHEUS_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("RELIABILITY_OUTPUT_DIR", out)
        .env("RELIABILITY_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("reliability.toml"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// test name → measurements of its last attempt.
fn measurements(out: &Path) -> BTreeMap<String, Value> {
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    report["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["attempts"].as_array().unwrap().last().unwrap()["measurements"].clone(),
            )
        })
        .collect()
}

fn cpu(m: &Value) -> f64 {
    ["setup", "call", "teardown"].iter().map(|p| m["cpu_seconds"][p].as_f64().unwrap()).sum()
}

fn within(value: f64, want: f64, tolerance: f64) -> bool {
    (value - want).abs() <= want * tolerance
}

fn check_fidelity(m: &BTreeMap<String, Value>, process: bool) {
    let growth = |t: &str| m[t]["heap_growth_bytes"].as_f64().unwrap();
    let kept = growth("fidelity::keeps_1mib");
    assert!(within(kept, MIB, 0.01), "1 MiB kept: growth {kept}");
    let churn = &m["fidelity::churns_64mib"];
    assert!(churn["heap_growth_bytes"].as_f64().unwrap().abs() < 0.01 * MIB, "{churn}");
    assert!(churn["peak_heap_bytes"].as_f64().unwrap() >= 64.0 * MIB, "{churn}");
    let busy = cpu(&m["fidelity::busy_300ms"]);
    assert!(within(busy, 0.30, 0.15), "busy 300 ms: cpu {busy}");
    let sleep = cpu(&m["fidelity::sleeps_300ms"]);
    assert!(sleep < 0.03, "sleep 300 ms: cpu {sleep}");
    let two = cpu(&m["fidelity::two_threads_busy_300ms"]);
    assert!(within(two, 0.60, 0.15), "two threads busy 300 ms: cpu {two}");
    let figures = &m["fidelity::records_figures"]["figures"];
    assert_eq!(figures["values"]["spans_delivered"], 100.0);
    assert_eq!(figures["values"]["spans_generated"], 100.0);
    assert_eq!(figures["throughput"]["export"], 4000.0);
    assert_eq!(figures["latency"]["export"]["count"], 100);
    assert!(within(figures["latency"]["export"]["p99"].as_f64().unwrap(), 0.099, 0.01), "{figures}");
    let long = &m["fidelity::runs_1500ms"];
    if process {
        assert!(long["peak_rss_bytes"].as_f64().unwrap() >= 48.0 * MIB, "{long}");
        let series = long["series"].as_array().unwrap();
        assert!(series.len() >= 4, "a 1.5 s test keeps its 250 ms series: {long}");
        // The peak, not the last sample: on a busy machine the sampler may tick once more after
        // the test has freed its blocks (seen in ci/stability.sh beside 8 test threads).
        let rss = |sample: &Value| sample["rss_bytes"].as_f64().unwrap();
        let first = rss(series.first().unwrap());
        let peak = series.iter().map(rss).fold(0.0, f64::max);
        // The test adds an 8 MiB block every 250 ms of CPU: later samples see at least one more.
        assert!(peak >= first + 8.0 * MIB, "RSS grows over the test: {series:?}");
    } else {
        assert_eq!(long["peak_rss_bytes"], Value::Null, "thread isolation reports no per-test RSS");
    }
    assert!(m.values().all(|m| m["shared"] == false), "one test thread: nothing is shared");
}

#[test]
fn figures_are_faithful_in_process_isolation() {
    let out = scratch();
    let output = suite(&["--test-threads", "1"], &out, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    check_fidelity(&measurements(&out), true);
}

#[test]
#[cfg(not(feature = "dhat-heap"))]
fn figures_are_faithful_in_thread_isolation_and_marked_shared_when_parallel() {
    let out = scratch();
    let output = suite(&["--test-threads", "1", "--isolation", "thread"], &out, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    check_fidelity(&measurements(&out), false);
    let out = scratch();
    suite(&["--test-threads", "2", "--isolation", "thread", "-k", "sleeps"], &out, &[]);
    assert_eq!(measurements(&out)["fidelity::sleeps_300ms"]["shared"], true);
}

/// dhat builds: growth from dhat's statistics agrees with the counting allocator's figure (1 MiB
/// within 1 %), and `--heap-profile` writes a profile per test that dhat's viewer reads.
#[test]
#[cfg(feature = "dhat-heap")]
fn dhat_mode_agrees_and_writes_profiles() {
    let out = scratch();
    let output = suite(&["--test-threads", "1", "-k", "keeps_1mib or churns", "--heap-profile"], &out, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let m = measurements(&out);
    let kept = m["fidelity::keeps_1mib"]["heap_growth_bytes"].as_f64().unwrap();
    assert!(within(kept, MIB, 0.01), "dhat growth {kept}");
    let profile: Value =
        serde_json::from_slice(&std::fs::read(out.join("dhat/fidelity__keeps_1mib.json")).unwrap()).unwrap();
    assert_eq!(profile["dhatFileVersion"], 2);
}

#[test]
#[cfg(not(feature = "dhat-heap"))]
fn flags_this_build_or_configuration_cannot_serve_are_usage_errors() {
    let out = scratch();
    let output = suite(&["--heap-profile"], &out, &[]);
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(!out.join("report.json").exists(), "refused before any test ran");
    // --push-pending with no gateway configured anywhere: also a usage error.
    assert_eq!(suite(&["--push-pending"], &scratch(), &[]).status.code(), Some(2));
}

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()))
        .unwrap_or_default();
    found.unwrap_or_else(|| {
        panic!("{name} is not installed: ci/test.sh installs it (Debian packages prometheus-pushgateway, prometheus)")
    })
}

#[test]
fn promtool_accepts_metrics_prom_and_junit_and_json_are_written() {
    let out = scratch();
    let extra = out.join("elsewhere").join("junit-copy.xml");
    suite(
        &["-k", "records_figures or keeps_1mib or sleeps", "--junitxml", extra.to_str().unwrap()],
        &out,
        &[("GITHUB_STEP_SUMMARY", out.join("summary.md").to_str().unwrap())],
    );
    let prom = std::fs::read_to_string(out.join("metrics.prom")).unwrap();
    for series in [
        "reliability_spans_delivered{suite=\"fidelity\",test=\"fidelity::records_figures\"} 100",
        "reliability_latency_seconds{suite=\"fidelity\",test=\"fidelity::records_figures\",operation=\"export\",quantile=\"0.99\"}",
        "reliability_throughput_per_second{suite=\"fidelity\",test=\"fidelity::records_figures\",operation=\"export\"} 4000",
        "reliability_tests{suite=\"fidelity\",outcome=\"passed\"} 3",
        "reliability_test_outcome{suite=\"fidelity\",test=\"fidelity::sleeps_300ms\",outcome=\"passed\"} 1",
    ] {
        assert!(prom.contains(series), "missing {series} in\n{prom}");
    }
    let output = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(out.join("metrics.prom")).unwrap())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");

    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<property name=\"spans_delivered\" value=\"100\"/>"), "{junit}");
    assert_eq!(std::fs::read_to_string(&extra).unwrap(), junit, "--junitxml holds the same document");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("| passed | 3 |"), "{summary}");
}

/// A Pushgateway on a loopback port, stopped on drop.
struct Gateway {
    child: Option<Child>,
    port: u16,
}

/// A URL where nothing can listen: port 0 is never bound, so connecting is refused at once.
const NOTHING_LISTENS: &str = "http://127.0.0.1:0";

/// The TCP port `pid` listens on, from /proc: the gateway binds port 0 (no port is assumed
/// free) and does not print the port it got.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| Some(link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_string()))
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local_address is `HEXIP:HEXPORT`, st 0A is LISTEN, field 9 the inode.
        let listening = fields.get(3) == Some(&"0A") && fields.get(9).is_some_and(|i| inodes.iter().any(|x| x == i));
        listening.then(|| u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok()).flatten()
    })
}

fn http_get(url: &str) -> Result<String, String> {
    let response = reqwest::blocking::get(url).map_err(|e| e.to_string())?;
    match response.status().is_success() {
        true => response.text().map_err(|e| e.to_string()),
        false => Err(format!("HTTP {}", response.status())),
    }
}

impl Gateway {
    /// A fresh gateway on a free loopback port, with its own empty state: Debian's binary
    /// defaults `--persistence.file` to a shared file under /var/lib, which would hand every
    /// gateway the series of earlier ones.
    fn start(state: &Path) -> Gateway {
        let child = Command::new(tool("prometheus-pushgateway"))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg(format!("--persistence.file={}", state.join("pushgateway.data").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut gateway = Gateway { child: Some(child), port: 0 };
        // Liveness bound only: how long a slow machine may take to start the gateway.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(port) = listening_port(pid) {
                gateway.port = port;
                if http_get(&format!("{}/-/ready", gateway.url())).is_ok() {
                    return gateway;
                }
            }
            assert!(Instant::now() < deadline, "the Pushgateway did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `reliability_*` samples the gateway holds, parsed.
    fn samples(&self) -> Vec<Sample> {
        let text = http_get(&format!("{}/metrics", self.url())).unwrap();
        parse(&text).into_iter().filter(|s| s.name.starts_with("reliability_")).collect()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, PartialEq, PartialOrd)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses text exposition samples (enough for what the harness writes).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, rest) = line.split_at(line.find(['{', ' ']).unwrap());
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        chars.next(); // opening quote
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => value.push(match chars.next().unwrap().1 {
                                    'n' => '\n',
                                    other => other,
                                }),
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end..];
        }
        let value = rest.trim().split(' ').next().unwrap().parse().unwrap();
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    samples
}

#[test]
fn pushgateway_holds_the_series_and_repeated_runs_stay_flat() {
    let gateway = Gateway::start(&scratch());
    assert!(gateway.samples().is_empty(), "a fresh gateway holds nothing");
    let url = gateway.url();
    let out = scratch();
    let args = [
        "-k",
        "records_figures or keeps_1mib",
        "--pushgateway-url",
        url.as_str(),
        "--pushgateway-label",
        "branch=feature/x",
    ];
    let first = suite(&args, &out, &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stdout));
    assert!(String::from_utf8_lossy(&first.stdout).contains(&format!("pushed 1 group(s) to {url}")));
    let samples = gateway.samples();
    let find = |name: &str, test: &str| {
        samples
            .iter()
            .find(|s| s.name == name && s.labels.get("test").map(String::as_str) == Some(test))
            .unwrap_or_else(|| panic!("{name} for {test} not in the gateway: {samples:?}"))
    };
    let delivered = find("reliability_spans_delivered", "fidelity::records_figures");
    assert_eq!(delivered.value, 100.0);
    assert_eq!(delivered.labels["job"], "reliability");
    assert_eq!(delivered.labels["suite"], "fidelity");
    assert_eq!(delivered.labels["branch"], "feature/x");
    assert!(within(find("reliability_test_heap_growth_bytes", "fidelity::keeps_1mib").value, MIB, 0.01));
    assert_eq!(find("reliability_test_outcome", "fidelity::keeps_1mib").labels["outcome"], "passed");

    let count = samples.len();
    let second = suite(&args, &out, &[]);
    assert!(second.status.success());
    assert_eq!(gateway.samples().len(), count, "a second run must replace its group, not add series");
    // A run of fewer tests replaces the group: the removed test's series disappear.
    suite(&["-k", "records_figures", "--pushgateway-url", &url, "--pushgateway-label", "branch=feature/x"], &out, &[]);
    assert!(gateway.samples().iter().all(|s| s.labels.get("test").map(String::as_str) != Some("fidelity::keeps_1mib")));
}

#[test]
fn a_down_gateway_is_a_warning_and_the_spooled_push_arrives_later() {
    let url = NOTHING_LISTENS;
    let out = scratch();
    let run = suite(&["-k", "records_figures", "--pushgateway-url", url], &out, &[]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "a failed push is a warning: {stdout}");
    assert!(
        stdout.contains(&format!("warning: push of /metrics/job/reliability/suite/fidelity to {url} failed")),
        "{stdout}"
    );
    let spooled: Vec<PathBuf> = std::fs::read_dir(out.join("spool")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(spooled.len(), 1);
    let group: Value = serde_json::from_slice(&std::fs::read(&spooled[0]).unwrap()).unwrap();
    let payload = parse(group["body"].as_str().unwrap());

    // --require-push turns the failure into exit code 6.
    let strict = suite(&["-k", "records_figures", "--pushgateway-url", url, "--require-push"], &scratch(), &[]);
    assert_eq!(strict.status.code(), Some(6));

    let gateway = Gateway::start(&scratch());
    let pending = suite(&["--push-pending", "--pushgateway-url", &gateway.url()], &out, &[]);
    assert!(pending.status.success(), "{}", String::from_utf8_lossy(&pending.stderr));
    assert!(String::from_utf8_lossy(&pending.stdout).contains("delivered 1 pending push(es)"));
    assert!(std::fs::read_dir(out.join("spool")).unwrap().next().is_none(), "the spool is empty after delivery");
    let mut arrived: Vec<Sample> = gateway
        .samples()
        .into_iter()
        .map(|mut s| {
            // Labels the gateway adds from the grouping key.
            s.labels.remove("job");
            s.labels.remove("instance");
            s
        })
        .collect();
    let mut payload = payload;
    arrived.sort_by(|a, b| a.partial_cmp(b).unwrap());
    payload.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(arrived, payload, "the pending push arrives identical");
}

/// Secrets planted in every place one can enter the harness — the gateway's bearer token and
/// basic-auth variables, and user info in the gateway URL — never show in stdout, stderr, or
/// any file the run writes (reports, cache, spool), whether the push fails or succeeds.
#[test]
fn planted_secrets_never_reach_output_reports_or_the_spool() {
    let (token, password, user) = ("planted-token-91c2", "planted-password-4be7", "planted-user-0d3f");
    let gateway = Gateway::start(&scratch());
    let with_userinfo = |base: &str| base.replacen("://", &format!("://{user}:{password}@"), 1);
    let mut seen = String::new();
    let out = scratch();
    for (url, env) in [
        // Down: warnings name the URL; the groups go to the spool.
        (with_userinfo(NOTHING_LISTENS), vec![("RELIABILITY_PUSHGATEWAY_TOKEN", token)]),
        (
            with_userinfo(NOTHING_LISTENS),
            vec![("RELIABILITY_PUSHGATEWAY_USERNAME", user), ("RELIABILITY_PUSHGATEWAY_PASSWORD", password)],
        ),
        // Up: the success line names the URL.
        (with_userinfo(&gateway.url()), vec![]),
    ] {
        let run = suite(&["-k", "records_figures or keeps_1mib", "--pushgateway-url", &url], &out, &env);
        seen.push_str(&String::from_utf8_lossy(&run.stdout));
        seen.push_str(&String::from_utf8_lossy(&run.stderr));
    }
    assert!(seen.contains("pushed 1 group(s) to http://127.0.0.1:"), "the push went through: {seen}");
    for entry in walk(&out) {
        seen.push_str(&String::from_utf8_lossy(&std::fs::read(&entry).unwrap()));
    }
    for secret in [token, password, user] {
        assert!(!seen.contains(secret), "a planted secret ({secret}) shows in the run's output or files");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}
