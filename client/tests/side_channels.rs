//! The side channels against the testbed's evaluation and tag endpoints and their faults:
//! the caller is never held (a worker that can never send does not stop `evaluate` or `tag`),
//! full queues and buffers drop the new items and count them, retryable answers are retried
//! (Retry-After waited, checked from the backend's arrival times), others are not, tags are
//! de-duplicated and delivered after an outage, shutdown is bounded — and every item is
//! counted where it happens, the test counting what it offered and the backend what arrived.

#![expect(clippy::unwrap_used, reason = "test code: a panic is the failure report")]

#[path = "../../testbed/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use reliability_client::ExportGate;
use reliability_client::retry::RetryPolicy;
use reliability_client::side::{SideChannels, SideConfig, SideHealth, SideHooks};
use serde_json::{Value, json};
use testbed::{Backend, Config};

fn side(backend: &Backend, change: impl FnOnce(&mut SideConfig)) -> SideChannels {
    let mut config = SideConfig {
        base_url: backend.query_url(),
        retry: RetryPolicy { base: Duration::from_millis(20), ..RetryPolicy::default() },
        shutdown_timeout: Duration::from_secs(120),
        ..SideConfig::default()
    };
    change(&mut config);
    SideChannels::start(config)
}

fn evaluation(id: usize) -> Value {
    json!({ "id": format!("e{id}"), "trace_id": format!("t{}", id % 7), "name": "relevance", "score": 0.5 })
}

fn backend_stats(backend: &Backend, channel: &str) -> Value {
    common::get(&format!("{}/side/stats", backend.query_url()), &[]).json()[channel].clone()
}

fn set_plan(backend: &Backend, channel: &str, plan: &Value) {
    let url = format!("{}/faults?endpoint={channel}", backend.query_url());
    assert_eq!(common::put_json(&url, plan).status, 200);
}

fn ledger(backend: &Backend, channel: &str) -> Vec<Value> {
    let url = format!("{}/ledger?endpoint={channel}", backend.query_url());
    common::get(&url, &[]).json()["entries"].as_array().unwrap().clone()
}

/// The identities, each term counted by its own observer.
fn assert_balanced(h: &SideHealth) {
    assert_eq!(h.evaluations_offered, h.evaluations_enqueued + h.evaluations_dropped + h.evaluations_refused, "{h:#?}");
    assert_eq!(
        h.evaluations_enqueued,
        h.evaluations_sent + h.evaluations_failed + h.evaluations_in_flight + h.evaluations_unsent,
        "{h:#?}"
    );
    assert_eq!(h.tags_offered, h.tags_buffered + h.tags_deduplicated + h.tags_dropped, "{h:#?}");
}

#[test]
fn every_evaluation_arrives_and_is_counted() {
    let backend = Backend::start(Config::default()).unwrap();
    let channels = side(&backend, |c| c.evaluation_batch = 40);
    let taken = (0..250).filter(|i| channels.evaluate(evaluation(*i))).count();
    let h = channels.shutdown();
    assert!(h.shutdown_completed);
    assert_eq!((taken, h.evaluations_offered, h.evaluations_enqueued), (250, 250, 250));
    assert_eq!((h.evaluations_sent, h.evaluations_dropped, h.evaluations_failed, h.evaluations_unsent), (250, 0, 0, 0));
    assert_balanced(&h);
    let stats = backend_stats(&backend, "evaluations");
    assert_eq!(stats["accepted"], 250);
    assert_eq!(stats["duplicates"], 0);
    // Batches of at most 40: at least 7 requests.
    let entries = ledger(&backend, "evaluations");
    assert!(entries.len() >= 7 && entries.iter().all(|e| e["items"].as_u64().unwrap() <= 40), "{entries:?}");
    assert_eq!(entries.iter().map(|e| e["items"].as_u64().unwrap()).sum::<u64>(), 250);
}

#[test]
fn a_stuck_worker_never_holds_the_caller_and_a_full_queue_drops_the_new_ones() {
    let backend = Backend::start(Config::default()).unwrap();
    let gate = ExportGate::closed();
    let channels = side(&backend, |c| {
        c.evaluation_queue = 100;
        c.evaluation_batch = 10;
        c.hooks.worker_gate = Some(gate.clone());
    });
    // The worker can never send while the gate is shut: had `evaluate` waited for it, this
    // loop would never end.
    let taken = (0..150).filter(|i| channels.evaluate(evaluation(*i))).count();
    let h = channels.health();
    // The queue holds 100; the worker took at most one batch of 10 before the gate.
    assert!((100..=110).contains(&taken), "taken {taken}");
    assert_eq!((h.evaluations_enqueued, h.evaluations_dropped), (taken as u64, 150 - taken as u64));
    assert_eq!(h.evaluations_sent, 0);
    assert_balanced(&h);
    gate.open();
    let h = channels.shutdown();
    assert!(h.shutdown_completed);
    assert_eq!(h.evaluations_sent, taken as u64);
    assert_eq!(backend_stats(&backend, "evaluations")["accepted"], taken);
    // Which end was dropped: the newest. The first 100 evaluations all arrived.
    let arrived = common::get(&format!("{}/evaluations", backend.query_url()), &[]).json();
    let ids: std::collections::BTreeSet<&str> =
        arrived["evaluations"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!((0..100).all(|i| ids.contains(format!("e{i}").as_str())));
    assert_balanced(&h);
}

#[test]
fn retryable_answers_are_retried_and_others_are_not() {
    let backend = Backend::start(Config::default()).unwrap();
    let plan =
        json!({"rules": [{"when": {"requests": {"from": 0, "to": 2}}, "action": {"kind": "status", "code": 503}}]});
    set_plan(&backend, "evaluations", &plan);
    let channels = side(&backend, |_| {});
    assert!(channels.evaluate(evaluation(1)));
    let h = channels.shutdown();
    assert_eq!((h.evaluations_sent, h.evaluations_failed, h.retries), (1, 0, 2), "{h:#?}");
    assert_eq!(h.api_errors.get("evaluations 503"), Some(&2));
    assert_eq!(backend_stats(&backend, "evaluations")["rejected"], 2);
    assert_eq!(backend_stats(&backend, "evaluations")["accepted"], 1);

    // A 500 is not retried: the evaluations are counted failed, once per batch.
    let always = json!({"rules": [{"when": {"always": true}, "action": {"kind": "status", "code": 500}}]});
    set_plan(&backend, "evaluations", &always);
    let channels = side(&backend, |c| c.evaluation_batch = 1000);
    let taken = (10..30).filter(|i| channels.evaluate(evaluation(*i))).count();
    let h = channels.shutdown();
    assert_eq!((h.evaluations_failed, h.evaluations_sent, h.retries), (taken as u64, 0, 0), "{h:#?}");
    let requests = ledger(&backend, "evaluations").iter().filter(|e| e["status"] == 500).count() as u64;
    assert_eq!(h.api_errors.get("evaluations 500"), Some(&requests));
    assert_balanced(&h);
}

#[test]
fn retry_after_is_waited_at_least() {
    let backend = Backend::start(Config::default()).unwrap();
    let plan = json!({"rules": [{"when": {"requests": {"from": 0, "to": 1}},
        "action": {"kind": "status", "code": 429, "retry_after_seconds": 1}}]});
    set_plan(&backend, "evaluations", &plan);
    let channels = side(&backend, |_| {});
    assert!(channels.evaluate(evaluation(1)));
    let h = channels.shutdown();
    assert_eq!((h.evaluations_sent, h.retries), (1, 1));
    let entries = ledger(&backend, "evaluations");
    assert_eq!(entries.iter().map(|e| e["status"].as_u64().unwrap()).collect::<Vec<_>>(), [429, 200]);
    let waited = entries[1]["arrival_unix_ms"].as_u64().unwrap() - entries[0]["arrival_unix_ms"].as_u64().unwrap();
    assert!(waited >= 1000, "the client came back after {waited} ms, before Retry-After's 1 s");
}

#[test]
fn tags_are_deduplicated_batched_and_delivered_after_an_outage() {
    let backend = Backend::start(Config::default()).unwrap();
    // The first two tag requests hang until the client gives up.
    let plan =
        json!({"rules": [{"when": {"requests": {"from": 0, "to": 2}}, "action": {"kind": "hang", "ms": 60000}}]});
    set_plan(&backend, "tags", &plan);
    let channels = side(&backend, |c| {
        c.request_timeout = Duration::from_millis(300);
        c.tag_flush_interval = Duration::from_secs(3600);
    });
    assert_eq!(channels.tag("t1", &["a", "b", "a"]), 2);
    assert_eq!(channels.tag("t1", &["b", "c"]), 1);
    assert_eq!(channels.tag("t2", &["a"]), 1);
    let h = channels.shutdown();
    assert!(h.shutdown_completed, "{h:#?}");
    assert_eq!((h.tags_offered, h.tags_buffered, h.tags_deduplicated, h.tags_flushed), (6, 4, 2, 4), "{h:#?}");
    assert_eq!(h.api_errors.get("tags network"), Some(&2));
    assert_balanced(&h);
    let tags = |trace: &str| {
        common::get(&format!("{}/tags?trace_id={trace}", backend.query_url()), &[]).json()["tags"].clone()
    };
    assert_eq!((tags("t1"), tags("t2")), (json!(["a", "b", "c"]), json!(["a"])));
    // One batch, sent three times: two hung, the third delivered all four tags at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while ledger(&backend, "tags").len() < 3 {
        assert!(std::time::Instant::now() < deadline, "the hung requests never reached the ledger");
        std::thread::sleep(Duration::from_millis(20));
    }
    let entries = ledger(&backend, "tags");
    let delivered: Vec<&Value> = entries.iter().filter(|e| e["status"] == 200).collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["items"], 4);
}

#[test]
fn a_full_tag_buffer_drops_the_new_tags_and_shutdown_is_bounded() {
    let backend = Backend::start(Config::default()).unwrap();
    let gate = ExportGate::closed();
    let channels = side(&backend, |c| {
        c.tag_buffer_max = 5;
        c.tag_flush_size = 1000;
        c.tag_flush_interval = Duration::from_secs(3600);
        c.hooks = SideHooks { worker_gate: Some(gate.clone()), ..SideHooks::default() };
        c.shutdown_timeout = Duration::from_millis(200);
    });
    let taken = channels.tag("t", &["1", "2", "3", "4", "5", "6", "7", "8"]);
    assert_eq!(taken, 5);
    assert!(channels.evaluate(evaluation(1)));
    // The workers are stuck at the gate: shutdown gives up at its bound and says so.
    let h = channels.shutdown();
    assert!(!h.shutdown_completed);
    assert_eq!((h.tags_buffered, h.tags_dropped, h.tags_flushed), (5, 3, 0));
    assert_eq!(h.tags_in_flight + h.tags_unsent, 5);
    assert_eq!(h.evaluations_in_flight + h.evaluations_unsent, 1);
    assert_balanced(&h);
    // After shutdown nothing is taken; a released worker sends nothing more.
    assert!(!channels.evaluate(evaluation(2)));
    gate.open();
    assert_eq!(channels.health().evaluations_dropped, 1);
    assert_eq!(backend_stats(&backend, "evaluations")["accepted"], 0);
}

#[test]
fn the_health_counts_render_as_prometheus_text() {
    let backend = Backend::start(Config::default()).unwrap();
    let channels = side(&backend, |_| {});
    for i in 0..3 {
        channels.evaluate(evaluation(i));
    }
    channels.tag("t", &["x", "x"]);
    channels.shutdown();
    let text = channels.metrics();
    for line in [
        "reliability_client_side_evaluations_total{fate=\"sent\"} 3",
        "reliability_client_side_tags_total{fate=\"deduplicated\"} 1",
        "reliability_client_side_tags_total{fate=\"flushed\"} 1",
        "reliability_client_side_retries_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

/// Evaluations nested 1,000 deep or weighing 2 MB are refused at the door and counted (the
/// caller's thread neither recurses nor copies); ordinary ones still arrive.
#[test]
fn pathological_evaluations_are_refused_and_counted() {
    let backend = Backend::start(Config::default()).unwrap();
    let channels = side(&backend, |_| {});
    let mut deep = json!("leaf");
    for _ in 0..1_000 {
        deep = json!({ "nested": deep });
    }
    let deep = json!({ "id": "deep", "trace_id": "t", "output": deep });
    let huge = json!({ "id": "huge", "trace_id": "t", "output": "x".repeat(2 << 20) });
    let wide = json!({ "id": "wide", "trace_id": "t", "output": vec![0.5; 200_000] });
    assert!(!channels.evaluate(deep) && !channels.evaluate(huge) && !channels.evaluate(wide));
    let nan = json!({ "id": "nan", "trace_id": "t", "score": f64::NAN });
    assert!(channels.evaluate(nan), "NaN becomes null in JSON: a normal evaluation");
    assert!(channels.evaluate(evaluation(1)));
    let h = channels.shutdown();
    assert_balanced(&h);
    assert_eq!((h.evaluations_refused, h.evaluations_enqueued, h.evaluations_sent), (3, 2, 2), "{h:#?}");
    assert_eq!(backend_stats(&backend, "evaluations")["accepted"], 2);
}

/// The first 2 batches panic while being sent (a crashing worker): they are counted failed,
/// the worker goes on, later batches arrive, and shutdown completes.
#[test]
fn a_panicking_worker_loses_only_its_batch_and_goes_on() {
    let backend = Backend::start(Config::default()).unwrap();
    let gate = ExportGate::closed();
    let channels = side(&backend, |c| {
        c.evaluation_batch = 10;
        c.hooks = SideHooks { worker_gate: Some(gate.clone()), panic_batches: 2, ..SideHooks::default() };
        c.tag_flush_interval = Duration::from_secs(3600);
    });
    // The worker holds its first batch (1 evaluation) at the gate while the rest queue up.
    let taken = (0..51).filter(|i| channels.evaluate(evaluation(*i))).count() as u64;
    gate.open();
    let h = channels.shutdown();
    assert!(h.shutdown_completed, "{h:#?}");
    assert_balanced(&h);
    assert_eq!(h.worker_panics, 2, "{h:#?}");
    assert_eq!(h.evaluations_sent + h.evaluations_failed, taken, "{h:#?}");
    assert!(h.evaluations_failed >= 2 && h.evaluations_failed <= 20, "two batches of at most 10: {h:#?}");
    assert_eq!(backend_stats(&backend, "evaluations")["accepted"].as_u64(), Some(h.evaluations_sent));
}
