//! Load figures beyond the results folder: pushed to a real Prometheus Pushgateway (Debian's
//! `prometheus-pushgateway`, started on a loopback port it picks), and the Kubernetes Indexed
//! Job of `load/deploy/indexed-job.yaml` — its command run here for every completion index
//! against one shared testbed target and the gateway, then merged.
//!
//! Needs `prometheus-pushgateway` and `promtool` (ci/test.sh installs them); without them the
//! tests fail and say so, never skip.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_load");

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!("{name} is not installed: ci/test.sh installs it (Debian prometheus-pushgateway, prometheus)")
    })
}

/// The TCP port `pid` listens on, from /proc (the gateway binds port 0: no port is assumed free).
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| Some(link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned()))
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let ours = f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| inodes.iter().any(|x| x == i));
        ours.then(|| u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()).flatten()
    })
}

/// A Pushgateway of its own (own state file), stopped on drop.
struct Gateway {
    child: Child,
    url: String,
}

impl Gateway {
    fn start(state: &Path) -> Gateway {
        let child = Command::new(tool("prometheus-pushgateway"))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg(format!("--persistence.file={}", state.join("pushgateway.data").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut gateway = Gateway { child, url: String::new() };
        // Liveness bound only: how long a slow machine may take to start it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(port) = listening_port(pid) {
                gateway.url = format!("http://127.0.0.1:{port}");
                if reqwest::blocking::get(format!("{}/-/ready", gateway.url)).is_ok_and(|r| r.status().is_success()) {
                    return gateway;
                }
            }
            assert!(Instant::now() < deadline, "the Pushgateway did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `reliability_load_*` samples: (name, labels, value).
    fn samples(&self) -> Vec<(String, BTreeMap<String, String>, f64)> {
        let text = reqwest::blocking::get(format!("{}/metrics", self.url)).unwrap().text().unwrap();
        text.lines()
            .filter(|l| l.starts_with("reliability_load_"))
            .map(|line| {
                let (head, value) = line.rsplit_once(' ').unwrap();
                let (name, labels) = head.split_once('{').unwrap_or((head, "}"));
                let labels = labels
                    .trim_end_matches('}')
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap();
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels, value.parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn value(samples: &[(String, BTreeMap<String, String>, f64)], name: &str, want: &[(&str, &str)]) -> Vec<f64> {
    samples
        .iter()
        .filter(|(n, labels, _)| n == name && want.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(v)))
        .map(|s| s.2)
        .collect()
}

fn summary(folder: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap()
}

/// A run's figures reach the gateway in its own group, each equal to `summary.json`'s; the
/// exposition passes `promtool check metrics`; a gateway that is not there costs exit 5 and
/// nothing else; a label that would clash with the grouping key is refused (exit 2).
#[test]
fn a_run_pushes_its_figures_to_the_pushgateway() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(dir.path());
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, "name: pushed\nworkload:\n  executor: constant-arrival-rate\n  rate: 50\n  duration: 1s\n")
        .unwrap();
    let out = dir.path().join("results");
    let load =
        |args: &[&str]| Command::new(BIN).arg("run").arg(&plan).arg("--out").arg(&out).args(args).output().unwrap();
    let output = load(&["--pushgateway", &gateway.url, "--pushgateway-label", "branch=main"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let folder = std::fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    let s = summary(&folder);

    let samples = gateway.samples();
    let key = [("job", "reliability-load"), ("plan", "pushed"), ("segment", "0of1"), ("branch", "main")];
    let one = |name: &str, extra: &[(&str, &str)]| {
        let want: Vec<(&str, &str)> = key.iter().chain(extra).copied().collect();
        let found = value(&samples, name, &want);
        assert_eq!(found.len(), 1, "{name} {extra:?} in {samples:?}");
        found[0]
    };
    for kind in ["offered", "started", "missed"] {
        assert_eq!(one("reliability_load_iterations", &[("kind", kind)]), s["iterations"][kind].as_f64().unwrap());
    }
    for fate in ["generated", "accepted", "rejected", "unfinished"] {
        assert_eq!(one("reliability_load_spans", &[("fate", fate)]), s["spans"][fate].as_f64().unwrap());
    }
    assert_eq!(one("reliability_load_iterations", &[("kind", "offered")]), 50.0);
    assert_eq!(one("reliability_load_target_accepted_spans", &[]), s["spans"]["target_accepted"].as_f64().unwrap());
    assert_eq!(
        one("reliability_load_latency_seconds", &[("quantile", "0.99")]),
        s["latency_ms"]["p99"].as_f64().unwrap() / 1e3
    );
    assert_eq!(one("reliability_load_thresholds_breached", &[]), 0.0);
    assert_eq!(one("reliability_load_latency_seconds_count", &[]), s["iterations"]["started"].as_f64().unwrap());

    // The gateway's whole exposition, ours included, passes promtool's lint.
    let text = reqwest::blocking::get(format!("{}/metrics", gateway.url)).unwrap().text().unwrap();
    let mut check = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("reliability_load")).collect();
    assert!(ours.is_empty(), "promtool check metrics: {said}");

    // No gateway there: the results are written, the exit code says the push failed.
    let before = std::fs::read_dir(&out).unwrap().count();
    let output = load(&["--pushgateway", "http://127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(5), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), before + 1);
    // A label that would overwrite the grouping key, or is no label name: a usage error.
    for bad in ["segment=1", "9x=1", "novalue"] {
        assert_eq!(load(&["--pushgateway-label", bad]).status.code(), Some(2), "{bad}");
    }
}

/// The Job's YAML documents, parsed.
fn manifest() -> (Value, Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/indexed-job.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .collect();
    let of = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}")).clone();
    (of("ConfigMap"), of("Job"))
}

/// The Indexed Job, run here: its command for every completion index, with the environment
/// the Job gives a pod (its own variables, `JOB_COMPLETION_INDEX`, the mounts at temporary
/// folders), against one shared testbed and a real Pushgateway. The N pushed groups and the
/// merged results each add up to one run of the plan, and to what the target counted.
#[test]
fn the_indexed_job_runs_its_segments_and_they_add_up() {
    let (config_map, job) = manifest();
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let container = &spec["template"]["spec"]["containers"][0];
    let env: BTreeMap<String, String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
        .collect();
    let segments: u64 = env["SEGMENTS"].parse().unwrap();
    assert_eq!((spec["completions"].as_u64(), spec["parallelism"].as_u64()), (Some(segments), Some(segments)));
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    let uid = container["env"].as_array().unwrap().iter().find(|e| e["name"] == "RUN_ID").unwrap();
    assert_eq!(uid["valueFrom"]["fieldRef"]["fieldPath"], "metadata.labels['batch.kubernetes.io/controller-uid']");
    assert_eq!(container["command"], serde_json::json!(["sh", "-c"]));
    let script = container["args"][0].as_str().unwrap().to_owned();

    // The plan in the ConfigMap is a valid plan; it runs here shortened to one second.
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plan");
    std::fs::create_dir_all(&plan_dir).unwrap();
    let text = config_map["data"]["plan.yaml"].as_str().unwrap();
    std::fs::write(plan_dir.join("plan.yaml"), text).unwrap();
    reliability_load::plan::Plan::load(&plan_dir.join("plan.yaml")).unwrap();
    let mut plan: Value = serde_yaml::from_str(text).unwrap();
    plan["workload"]["rate"] = 40.into();
    plan["workload"]["duration"] = "1s".into();
    std::fs::write(plan_dir.join("plan.yaml"), serde_yaml::to_string(&plan).unwrap()).unwrap();
    let results = dir.path().join("results");
    let mounts: BTreeMap<&str, PathBuf> = BTreeMap::from([("plan", plan_dir.clone()), ("results", results.clone())]);
    let mut script = script;
    for mount in container["volumeMounts"].as_array().unwrap() {
        let at = mount["mountPath"].as_str().unwrap();
        let here = mounts[mount["name"].as_str().unwrap()].to_str().unwrap();
        script = script.replace(&format!(" {at}"), &format!(" {here}"));
    }

    let target = testbed::Backend::start(testbed::Config::default()).unwrap();
    let gateway = Gateway::start(dir.path());
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for index in 0..segments {
        let output = Command::new("sh")
            .args(["-c", &script])
            .envs(&env)
            .env("LOAD_TARGET", target.traces_url())
            .env("PROMETHEUS_PUSHGATEWAY_URL", &gateway.url)
            .env("RUN_ID", "test-run")
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(output.status.success(), "index {index}: {}", String::from_utf8_lossy(&output.stderr));
    }

    let samples = gateway.samples();
    let offered = value(&samples, "reliability_load_iterations", &[("kind", "offered"), ("run", "test-run")]);
    assert_eq!(offered.len() as u64, segments, "one group per segment: {samples:?}");
    assert_eq!(offered.iter().sum::<f64>(), 40.0);
    let accepted: f64 =
        value(&samples, "reliability_load_spans", &[("fate", "accepted"), ("run", "test-run")]).iter().sum();
    let url = format!("{}/projects/load-genai-mix-distributed/stats", target.query_url());
    let stats: Value = serde_json::from_slice(&reqwest::blocking::get(url).unwrap().bytes().unwrap()).unwrap();
    assert_eq!(stats["accepted"].as_f64().unwrap(), accepted, "the target counted what the segments pushed");
    assert!(accepted > 0.0);

    let folders: Vec<PathBuf> = std::fs::read_dir(&results).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(folders.len() as u64, segments);
    let merged = dir.path().join("merged");
    let output = Command::new(BIN).arg("merge").args(&folders).arg("--out").arg(&merged).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let m = summary(&std::fs::read_dir(&merged).unwrap().next().unwrap().unwrap().path());
    assert_eq!(m["iterations"]["offered"], 40);
    assert_eq!(m["spans"]["accepted"].as_f64().unwrap(), accepted);
}
