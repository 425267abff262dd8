//! The standalone binary: `testbed serve --listen ADDR` prints its URLs, serves, and stops on
//! Ctrl-C; bad flags get a clear message and exit code 2.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_testbed");

#[test]
fn serve_prints_urls_serves_and_stops_on_ctrl_c() {
    // Port 0: the kernel picks a free port and the first line names it.
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--max-spans", "1000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first.strip_prefix("testbed listening on http://127.0.0.1:").unwrap().parse().unwrap();
    assert_ne!(port, 0);
    let traces = lines.next().unwrap().unwrap();
    assert!(traces.ends_with(&format!("http://127.0.0.1:{port}/v1/traces")), "{traces}");
    let url = format!("http://127.0.0.1:{port}/v1/traces");
    let answer = common::post(
        &url,
        &[common::PROTOBUF],
        &common::protobuf(&common::request("standalone", 1, 3)),
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(common::stats(&format!("http://127.0.0.1:{port}"), "standalone")["accepted"], 3);
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(lines.any(|l| l.unwrap() == "testbed stopping"));
}

/// Bad flags, a missing token variable, an invalid plan, and a non-loopback address without
/// credentials: each refused before anything listens, exit 2, an error naming what is wrong.
#[test]
fn bad_input_exits_2_and_names_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, r#"{"latency_ms": 18446744073709551615, "jitter_ms": 1}"#).unwrap();
    let plan = plan.to_str().unwrap().to_string();
    for (args, culprit) in [
        (vec!["serve", "--listen", "nowhere"], "nowhere"),
        (vec!["serve", "--max-spans", "lots"], "lots"),
        (vec!["serve", "--auth-token-env", "TESTBED_NO_SUCH_VAR"], "TESTBED_NO_SUCH_VAR"),
        (vec!["serve", "--faults", &plan], "latency_ms"),
        (vec!["serve", "--listen", "0.0.0.0:0"], "0.0.0.0:0"),
        (vec!["serve", "--no-such-flag"], "--no-such-flag"),
        (vec!["launch"], "launch"),
    ] {
        let output = Command::new(BIN).args(&args).env_remove("TESTBED_NO_SUCH_VAR").output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error:") && stderr.contains(culprit), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: nothing listened");
    }
}
