//! The side channels (evaluations, trace tags): stored once, counted exactly, faulted by their
//! own plans (not trace ingest's), in the ledger with their endpoint, in `/metrics`; bad
//! bodies and plans are refused.

#![expect(clippy::unwrap_used, reason = "test helpers: a panic is the failure report")]

mod common;

use std::time::Duration;

use common::{get, post, put_json};
use serde_json::{Value, json};
use testbed::{Backend, Config};

const JSON: (&str, &str) = ("content-type", "application/json");

fn send(base: &str, channel: &str, body: &Value, timeout: Duration) -> Result<common::Answer, String> {
    post(&format!("{base}/api/v1/{channel}"), &[JSON], body.to_string().as_bytes(), Some(timeout))
}

fn stats(base: &str) -> Value {
    get(&format!("{base}/api/v1/side/stats"), &[]).json()
}

fn ledger(base: &str, endpoint: &str) -> Vec<Value> {
    get(&format!("{base}/api/v1/ledger?endpoint={endpoint}"), &[]).json()["entries"].as_array().unwrap().clone()
}

fn evaluations(ids: &[&str], trace: &str) -> Value {
    json!({ "evaluations": ids.iter().map(|id| json!({"id": id, "trace_id": trace, "score": 1})).collect::<Vec<_>>() })
}

#[test]
fn evaluations_and_tags_are_stored_once_and_counted() {
    let backend = Backend::start(Config::default()).unwrap();
    let base = backend.base_url();
    let ten = Duration::from_secs(10);
    let answer = send(&base, "evaluations", &evaluations(&["e1", "e2", "e3"], "t1"), ten).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!((answer.json()["accepted"].as_u64(), answer.json()["duplicates"].as_u64()), (Some(3), Some(0)));
    let again = send(&base, "evaluations", &evaluations(&["e3", "e4"], "t2"), ten).unwrap().json();
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(1), Some(1)));
    let tags = json!({"tags": [{"trace_id": "t1", "tags": ["a", "b"]}, {"trace_id": "t1", "tags": ["a"]}]});
    let tagged = send(&base, "tags", &tags, ten).unwrap().json();
    assert_eq!((tagged["accepted"].as_u64(), tagged["duplicates"].as_u64()), (Some(2), Some(1)));

    let s = stats(&base);
    let e = &s["evaluations"];
    assert_eq!([&e["requests"], &e["received"], &e["accepted"], &e["duplicates"], &e["rejected"]], [2, 5, 4, 1, 0]);
    let t = &s["tags"];
    assert_eq!([&t["requests"], &t["received"], &t["accepted"], &t["duplicates"], &t["rejected"]], [1, 3, 2, 1, 0]);
    let of_t1 = get(&format!("{base}/api/v1/evaluations?trace_id=t1"), &[]).json();
    assert_eq!(of_t1["evaluations"].as_array().unwrap().len(), 3);
    assert_eq!(get(&format!("{base}/api/v1/tags?trace_id=t1"), &[]).json()["tags"], json!(["a", "b"]));
    assert_eq!(get(&format!("{base}/api/v1/tags"), &[]).status, 400, "tags are read per trace");

    // The ledger: one entry per request, with its endpoint and item count; none among traces.
    let entries = ledger(&base, "evaluations");
    assert_eq!(entries.iter().map(|e| e["items"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 2]);
    assert!(entries.iter().all(|e| e["status"] == 200));
    assert_eq!(ledger(&base, "tags").len(), 1);
    assert_eq!(ledger(&base, "traces").len(), 0);

    // /metrics counts the same items, by fate.
    let metrics = String::from_utf8(get(&format!("{base}/metrics"), &[]).body).unwrap();
    for (line, n) in [
        ("testbed_side_items_total{endpoint=\"evaluations\",fate=\"received\"}", 5),
        ("testbed_side_items_total{endpoint=\"evaluations\",fate=\"accepted\"}", 4),
        ("testbed_side_items_total{endpoint=\"evaluations\",fate=\"duplicate\"}", 1),
        ("testbed_side_items_total{endpoint=\"tags\",fate=\"accepted\"}", 2),
        ("testbed_side_requests_total{endpoint=\"evaluations\",status=\"200\"}", 2),
    ] {
        let value = metrics.lines().find_map(|l| l.strip_prefix(line)).map(str::trim);
        assert_eq!(value, Some(n.to_string().as_str()), "{line} in\n{metrics}");
    }
    backend.shutdown();
}

#[test]
fn each_channel_has_its_own_fault_plan() {
    let backend = Backend::start(Config::default()).unwrap();
    let base = backend.base_url();
    let ten = Duration::from_secs(10);
    // The first 2 evaluation requests get 429 with Retry-After, then 200; tags and traces
    // are untouched by that plan.
    let plan = json!({"rules": [{"when": {"requests": {"from": 0, "to": 2}},
        "action": {"kind": "status", "code": 429, "retry_after_seconds": 7}}]});
    assert_eq!(put_json(&format!("{base}/api/v1/faults?endpoint=evaluations"), &plan).status, 200);
    let statuses: Vec<u16> = (0..3)
        .map(|i| send(&base, "evaluations", &evaluations(&[&format!("e{i}")], "t"), ten).unwrap())
        .map(|a| {
            if a.status == 429 {
                assert_eq!(a.header("retry-after"), Some("7"));
            }
            a.status
        })
        .collect();
    assert_eq!(statuses, [429, 429, 200]);
    assert_eq!(send(&base, "tags", &json!({"tags": [{"trace_id": "t", "tags": ["x"]}]}), ten).unwrap().status, 200);
    let e = &stats(&base)["evaluations"];
    assert_eq!([&e["requests"], &e["received"], &e["accepted"], &e["rejected"]], [3, 3, 1, 2]);
    let faults: Vec<Value> = ledger(&base, "evaluations").iter().map(|e| e["fault"].clone()).collect();
    assert_eq!(faults, [json!("status_429"), json!("status_429"), Value::Null]);
    assert_eq!(get(&format!("{base}/api/v1/faults?endpoint=evaluations"), &[]).json(), plan_with_defaults(&plan));
    assert_eq!(get(&format!("{base}/api/v1/faults"), &[]).json(), Value::Null, "trace ingest has no plan");

    // A hanging tag endpoint: the client gives up, the items are counted rejected, and the
    // request is in the ledger with the fault.
    let hang = json!({"rules": [{"when": {"always": true}, "action": {"kind": "hang", "ms": 60_000}}]});
    assert_eq!(put_json(&format!("{base}/api/v1/faults?endpoint=tags"), &hang).status, 200);
    let gave_up =
        send(&base, "tags", &json!({"tags": [{"trace_id": "t", "tags": ["y", "z"]}]}), Duration::from_millis(300));
    assert!(gave_up.is_err());
    let t = &stats(&base)["tags"];
    assert_eq!([&t["requests"], &t["received"], &t["accepted"], &t["rejected"]], [2, 3, 1, 2]);
    // The hung request is recorded when the server notices the client left; wait for it (a
    // liveness bound, not a timing assumption).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ledger(&base, "tags").len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the hung request never reached the ledger");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ledger(&base, "tags")[1]["fault"], "hang");
    let deleted = common::agent_delete(&format!("{base}/api/v1/faults?endpoint=tags"));
    assert_eq!(deleted, 204);
    assert_eq!(send(&base, "tags", &json!({"tags": [{"trace_id": "t", "tags": ["y"]}]}), ten).unwrap().status, 200);
    backend.shutdown();
}

fn plan_with_defaults(plan: &Value) -> Value {
    let mut plan = plan.clone();
    plan["latency_ms"] = json!(0);
    plan["jitter_ms"] = json!(0);
    plan["seed"] = json!(0);
    plan["rules"][0]["action"]["retry_after_http_date"] = json!(false);
    plan
}

#[test]
fn bad_bodies_plans_and_endpoints_are_refused() {
    let backend = Backend::start(Config::default()).unwrap();
    let base = backend.base_url();
    let ten = Duration::from_secs(10);
    for (channel, body) in [
        ("evaluations", json!({"evaluations": [{"trace_id": "t"}]})),
        ("evaluations", json!({"nope": []})),
        ("tags", json!({"tags": [{"trace_id": "", "tags": ["a"]}]})),
    ] {
        let answer = send(&base, channel, &body, ten).unwrap();
        assert_eq!(answer.status, 400, "{body}");
        assert!(answer.json()["error"].is_string());
    }
    let e = &stats(&base)["evaluations"];
    assert_eq!([&e["requests"], &e["received"]], [2, 0], "refused bodies have no items to count");
    assert_eq!(ledger(&base, "evaluations").iter().filter(|e| e["status"] == 400).count(), 2);

    let partial = json!({"rules": [{"when": {"always": true}, "action": {"kind": "partial_success", "rejected": 1}}]});
    assert_eq!(put_json(&format!("{base}/api/v1/faults?endpoint=tags"), &partial).status, 400);
    assert_eq!(put_json(&format!("{base}/api/v1/faults?endpoint=logs"), &json!({})).status, 400);
    assert_eq!(put_json(&format!("{base}/api/v1/faults?endpoint=traces"), &partial).status, 200, "fine for traces");
    backend.shutdown();
}

#[test]
fn side_channels_need_the_token_like_ingest() {
    let config = Config { auth_token: Some("side-secret".into()), ..Config::default() };
    let backend = Backend::start(config).unwrap();
    let base = backend.base_url();
    let body = evaluations(&["e1"], "t").to_string();
    let refused = post(&format!("{base}/api/v1/evaluations"), &[JSON], body.as_bytes(), None).unwrap();
    assert_eq!(refused.status, 401);
    let key = ("x-api-key", "side-secret");
    let ok = post(&format!("{base}/api/v1/evaluations"), &[JSON, key], body.as_bytes(), None).unwrap();
    assert_eq!(ok.status, 200);
    let entries = get(&format!("{base}/api/v1/ledger?endpoint=evaluations"), &[key]).json();
    let statuses: Vec<&Value> = entries["entries"].as_array().unwrap().iter().map(|e| &e["status"]).collect();
    assert_eq!(statuses, [&json!(401), &json!(200)]);
    backend.shutdown();
}
