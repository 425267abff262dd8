//! Each fault: what the client sees (status, headers, body), and the stats and ledger after,
//! checked exactly. Also duplicates, storage limits, size limits and auth.

#![expect(clippy::unwrap_used, reason = "test helpers: a panic is the failure report")]

mod common;

use std::time::{Duration, Instant};

use common::{PROTOBUF, assert_accounted, get, post, protobuf, put_json, request, stats};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde_json::{Value, json};
use testbed::{Backend, Config};

fn start(config: Config) -> (Backend, String) {
    let backend = Backend::start(config).unwrap();
    let base = backend.base_url();
    (backend, base)
}

fn set_plan(base: &str, project: Option<&str>, plan: Value) {
    let url = match project {
        Some(p) => format!("{base}/api/v1/projects/{p}/faults"),
        None => format!("{base}/api/v1/faults"),
    };
    let answer = put_json(&url, &plan);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
}

fn send(base: &str, service: &str, trace: u8, n: u64) -> Result<common::Answer, String> {
    post(
        &format!("{base}/v1/traces"),
        &[PROTOBUF],
        &protobuf(&request(service, trace, n)),
        Some(Duration::from_secs(10)),
    )
}

fn ledger(base: &str) -> Vec<Value> {
    get(&format!("{base}/api/v1/ledger"), &[]).json()["entries"].as_array().unwrap().clone()
}

fn always(action: Value) -> Value {
    json!({ "rules": [{ "when": { "always": true }, "action": action }] })
}

#[test]
fn error_statuses_carry_retry_after_and_reject_every_span() {
    let (_backend, base) = start(Config::default());
    let cases: &[(u16, Value, Option<&str>)] = &[
        (429, json!({"kind": "status", "code": 429, "retry_after_seconds": 3}), Some("3")),
        (503, json!({"kind": "status", "code": 503, "retry_after_seconds": 5, "retry_after_http_date": true}), None),
        (502, json!({"kind": "status", "code": 502}), None),
        (504, json!({"kind": "status", "code": 504}), None),
        (500, json!({"kind": "status", "code": 500}), None),
        (400, json!({"kind": "status", "code": 400}), None),
    ];
    for (i, (code, action, retry_after)) in cases.iter().enumerate() {
        let service = format!("status-{code}");
        set_plan(&base, Some(&service), always(action.clone()));
        let answer = send(&base, &service, i as u8 + 1, 4).unwrap();
        assert_eq!(answer.status, *code);
        assert_eq!(answer.header("content-type"), Some("application/x-protobuf"));
        let status = testbed::ingest::RpcStatus::decode(answer.body.as_slice()).unwrap();
        assert_eq!(status.code, testbed::ingest::rpc_code(*code));
        match (code, retry_after) {
            (_, Some(seconds)) => assert_eq!(answer.header("retry-after"), Some(*seconds)),
            (503, None) => {
                let date = httpdate::parse_http_date(answer.header("retry-after").unwrap()).unwrap();
                let ahead = date.duration_since(std::time::SystemTime::now()).unwrap_or_default();
                assert!(ahead <= Duration::from_secs(6) && ahead >= Duration::from_secs(3), "{ahead:?}");
            }
            _ => assert_eq!(answer.header("retry-after"), None),
        }
        let s = stats(&base, &service);
        assert_eq!(s["received"], 4);
        assert_eq!(s["accepted"], 0, "a rejected request stores nothing");
        assert_eq!(s["rejected"][format!("status_{code}")], 4);
        assert_accounted(&s);
    }
    let entries = ledger(&base);
    assert_eq!(entries.len(), cases.len());
    for (entry, (code, ..)) in entries.iter().zip(cases) {
        assert_eq!(entry["status"], *code);
        assert_eq!(entry["fault"], format!("status_{code}"));
        assert_eq!(entry["spans"], 4);
    }
}

#[test]
fn partial_success_stores_the_rest_and_says_how_many() {
    let (_backend, base) = start(Config::default());
    set_plan(&base, Some("partial"), always(json!({"kind": "partial_success", "rejected": 2, "message": "2 too big"})));
    let answer = send(&base, "partial", 9, 5).unwrap();
    assert_eq!(answer.status, 200);
    let response = ExportTraceServiceResponse::decode(answer.body.as_slice()).unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!((partial.rejected_spans, partial.error_message.as_str()), (2, "2 too big"));
    let s = stats(&base, "partial");
    assert_eq!((s["accepted"].as_u64(), s["rejected"]["partial_success"].as_u64()), (Some(3), Some(2)));
    assert_accounted(&s);
    // The first three spans were kept.
    let page = get(&format!("{base}/api/v1/projects/partial/traces"), &[]).json();
    let names: Vec<&str> =
        page["traces"][0]["spans"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["span 1", "span 2", "span 3"]);
}

#[test]
fn hang_close_and_slow_read() {
    let (_backend, base) = start(Config::default());
    set_plan(&base, Some("hang"), always(json!({"kind": "hang", "ms": 60_000})));
    let err = post(
        &format!("{base}/v1/traces"),
        &[PROTOBUF],
        &protobuf(&request("hang", 1, 3)),
        Some(Duration::from_millis(300)),
    );
    assert!(err.is_err(), "the client gives up on a hanging request");

    set_plan(&base, Some("close"), always(json!({"kind": "close"})));
    let err = send(&base, "close", 2, 3).err().expect("the connection is closed without an answer");
    assert!(!err.is_empty());

    // Reading slowly is decided on arrival, before the body names its project: a global plan
    // (or a per-project plan with a project header).
    set_plan(&base, None, always(json!({"kind": "slow_read", "bytes_per_second": 4000})));
    let big = request("slow", 3, 100);
    let body = protobuf(&big);
    assert!(body.len() > 4000, "{}", body.len());
    let started = Instant::now();
    let answer = post(&format!("{base}/v1/traces"), &[PROTOBUF], &body, Some(Duration::from_secs(20))).unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status, 200);
    let expected = Duration::from_secs_f64(body.len() as f64 / 4000.0);
    assert!(took >= expected.mul_f64(0.8), "slow read took {took:?}, expected about {expected:?}");

    let entries = ledger(&base);
    let by_project = |p: &str| {
        entries.iter().find(|e| e["project"] == p).unwrap_or_else(|| panic!("no ledger entry for {p}: {entries:?}"))
    };
    assert_eq!(by_project("hang")["fault"], "hang");
    assert_eq!(by_project("hang")["status"], Value::Null);
    // The hang lasted until the client gave up (after its 300 ms timeout), not the plan's 60 s.
    let hung = by_project("hang")["handling_ms"].as_f64().unwrap();
    assert!((250.0..30_000.0).contains(&hung), "{hung}");
    assert_eq!(by_project("close")["fault"], "close");
    assert_eq!(by_project("close")["status"], Value::Null);
    assert_eq!(by_project("slow")["status"], 200);
    for (project, reason, n) in [("hang", "hang", 3), ("close", "close", 3)] {
        let s = stats(&base, project);
        assert_eq!((s["rejected"][reason].as_u64(), s["accepted"].as_u64()), (Some(n), Some(0)), "{project}: {s}");
        assert_accounted(&s);
    }
    assert_eq!(stats(&base, "slow")["accepted"], 100);
}

#[test]
fn scripts_windows_latency_and_seeded_probability() {
    let (_backend, base) = start(Config::default());
    // "503 for the first 2 requests, then 200".
    set_plan(
        &base,
        Some("script"),
        json!({"rules": [{"when": {"requests": {"to": 2}}, "action": {"kind": "status", "code": 503}}]}),
    );
    let statuses: Vec<u16> = (0..4).map(|i| send(&base, "script", i, 1).unwrap().status).collect();
    assert_eq!(statuses, [503, 503, 200, 200]);

    set_plan(&base, Some("slow-answer"), json!({"latency_ms": 250}));
    let started = Instant::now();
    assert_eq!(send(&base, "slow-answer", 1, 1).unwrap().status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Windows, measured from when the plan is set: one open for the next hour, one that ended
    // as it began, one that opens in an hour. (No sleeps: how windows move with time is the
    // plan's unit test, on a given clock.)
    for (i, (window, status)) in
        [(json!({"to_ms": 3_600_000}), 502), (json!({"to_ms": 0}), 200), (json!({"from_ms": 3_600_000}), 200)]
            .into_iter()
            .enumerate()
    {
        let project = format!("window-{i}");
        set_plan(
            &base,
            Some(&project),
            json!({"rules": [{"when": {"window": window}, "action": {"kind": "status", "code": 502}}]}),
        );
        assert_eq!(send(&base, &project, 1, 1).unwrap().status, status, "{window}");
    }

    // The same seed gives the same sequence.
    let draw = |project: &str| {
        set_plan(
            &base,
            Some(project),
            json!({"seed": 99, "rules": [{"when": {"probability": 0.5}, "action": {"kind": "status", "code": 503}}]}),
        );
        (0..20).map(|i| send(&base, project, i, 1).unwrap().status).collect::<Vec<_>>()
    };
    let (a, b) = (draw("seeded-a"), draw("seeded-b"));
    assert_eq!(a, b);
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");

    // A project's plan does not touch other projects; a global plan does.
    assert_eq!(send(&base, "untouched", 1, 1).unwrap().status, 200);
    set_plan(&base, None, always(json!({"kind": "status", "code": 500})));
    assert_eq!(send(&base, "untouched", 2, 1).unwrap().status, 500);
    let answer = common::put_json(
        &format!("{base}/api/v1/faults"),
        &json!({"rules": [{"when": {"always": true}, "action": {"kind": "status", "code": 200}}]}),
    );
    assert_eq!(answer.status, 400, "a success status is not a fault");
    assert!(String::from_utf8_lossy(&answer.body).contains("status 200 is not an error status"));
}

#[test]
fn duplicates_are_counted_and_stored_once() {
    let (_backend, base) = start(Config::default());
    for _ in 0..3 {
        assert_eq!(send(&base, "dup", 7, 10).unwrap().status, 200);
    }
    let s = stats(&base, "dup");
    assert_eq!(
        (s["received"].as_u64(), s["accepted"].as_u64(), s["duplicates"].as_u64()),
        (Some(30), Some(10), Some(20))
    );
    assert_eq!(s["unique"], 10);
    assert_accounted(&s);
}

#[test]
fn a_full_store_refuses_with_503_instead_of_growing() {
    let config = Config { limits: testbed::Limits { max_spans: 15, max_bytes: 1 << 20 }, ..Config::default() };
    let (_backend, base) = start(config);
    assert_eq!(send(&base, "full", 1, 10).unwrap().status, 200);
    let answer = send(&base, "full", 2, 10).unwrap();
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("retry-after"), Some("1"));
    let s = stats(&base, "full");
    assert_eq!((s["accepted"].as_u64(), s["rejected"]["storage_full"].as_u64()), (Some(10), Some(10)));
    assert_accounted(&s);
    // Deleting a project frees its room.
    assert_eq!(common::agent_delete(&format!("{base}/api/v1/projects/full")), 204);
    assert_eq!(send(&base, "full", 2, 10).unwrap().status, 200);
}

#[test]
fn size_limits_content_types_and_an_empty_request() {
    let config = Config { max_request_bytes: 64 << 10, ..Config::default() };
    let (_backend, base) = start(config);
    let url = format!("{base}/v1/traces");
    let too_big = protobuf(&request("big", 1, 2000));
    assert!(too_big.len() > 64 << 10);
    assert_eq!(post(&url, &[PROTOBUF], &too_big, None).unwrap().status, 413);
    let answer = post(&url, &[("content-type", "text/plain")], b"hello", None).unwrap();
    assert_eq!(answer.status, 415);
    assert_eq!(post(&url, &[PROTOBUF], b"", None).unwrap().status, 200, "an empty request is a success");
    let answer = post(&url, &[common::JSON], b"", None).unwrap();
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"{}"[..]));
    let answer = post(&url, &[common::JSON], b"{\"resourceSpans\": \"nope\"}", None).unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.header("content-type"), Some("application/json"), "errors answer in the request's encoding");
    assert_eq!(answer.json()["code"], 3);
}

#[test]
fn auth_guards_ingest_and_query_and_the_token_never_leaks() {
    let token = "s3cret-token-value";
    let config = Config { auth_token: Some(token.into()), ..Config::default() };
    let (_backend, base) = start(config);
    let url = format!("{base}/v1/traces");
    let body = protobuf(&request("auth", 1, 2));
    assert_eq!(post(&url, &[PROTOBUF], &body, None).unwrap().status, 401);
    assert_eq!(post(&url, &[PROTOBUF, ("authorization", "Bearer wrong")], &body, None).unwrap().status, 401);
    assert_eq!(
        post(&url, &[PROTOBUF, ("authorization", &format!("Bearer {token}"))], &body, None).unwrap().status,
        200
    );
    assert_eq!(post(&url, &[PROTOBUF, ("x-api-key", token)], &body, None).unwrap().status, 200);
    assert_eq!(get(&format!("{base}/api/v1/projects"), &[]).status, 401);
    let auth = [("x-api-key", token)];
    let mut seen = String::new();
    for path in ["/api/v1/projects", "/api/v1/ledger", "/metrics", "/api/v1/projects/auth/stats"] {
        let answer = get(&format!("{base}{path}"), &auth);
        assert_eq!(answer.status, 200, "{path}");
        seen.push_str(&String::from_utf8_lossy(&answer.body));
    }
    assert!(!seen.contains(token), "the token leaked into a response");
    assert!(seen.contains("\"unauthorized\""), "refused requests are in the ledger");
}
