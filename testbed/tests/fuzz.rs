//! Seeded fuzzing of every input the backend takes: OTLP protobuf, OTLP JSON and gzip bodies
//! (in-process, through the decoder), fault plans (in-process: parse, validate, then decide a
//! few requests with every plan that validates), and the query and fault-plan APIs over HTTP
//! (random paths and query strings with broken percent escapes and multi-byte characters,
//! mutated plan JSON). Nothing may panic, and the HTTP answers are never 5xx.
//!
//! The default is a quick run. `TESTBED_FUZZ_CASES=1000000` is the long mode: that many cases
//! in all, split across the six kinds; it prints the count per kind.

mod common;

use common::Rng;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{protobuf, request};
use testbed::ingest::{self, Encoding};
use testbed::{Backend, Config, FaultPlan};

/// Draws beyond `common::Rng`'s.
trait Draw {
    fn below(&mut self, n: u64) -> u64;
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T;
}

impl Draw for Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn total_cases() -> u64 {
    std::env::var("TESTBED_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(6_000)
}

/// Mutates `valid` a little or a lot.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    match rng.below(4) {
        0 => v.truncate(rng.below(v.len() as u64 + 1) as usize),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(v.len() as u64) as usize;
                if let Some(b) = v.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
        }
        2 => {
            let at = rng.below(v.len() as u64 + 1) as usize;
            let junk: Vec<u8> = (0..rng.below(32)).map(|_| rng.next() as u8).collect();
            v.splice(at..at, junk);
        }
        _ => v = (0..rng.below(600)).map(|_| rng.next() as u8).collect(),
    }
    v
}

fn fuzz_bodies(rng: &mut Rng, cases: u64) {
    let valid = protobuf(&request("fuzz", 1, 20));
    let json = serde_json::to_vec(&request("fuzz", 2, 5)).expect("OTLP JSON");
    let gzipped = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&valid).expect("gzip");
        gz.finish().expect("gzip")
    };
    for case in 0..cases {
        let kind = case % 3;
        let input = match kind {
            0 => mutate(rng, &valid),
            1 => mutate(rng, &json),
            _ => mutate(rng, &gzipped),
        };
        let outcome = std::panic::catch_unwind(|| match kind {
            0 | 1 => {
                let encoding = if kind == 0 { Encoding::Protobuf } else { Encoding::Json };
                if let Ok(request) = ingest::decode(&input, encoding) {
                    ingest::batches(request, None);
                }
            }
            _ => {
                if let Ok(body) = ingest::decompress(&input, Some("gzip"), 1 << 20) {
                    let _ = ingest::decode(&body, Encoding::Protobuf);
                }
            }
        });
        assert!(outcome.is_ok(), "body case {case} (kind {kind}) panicked on {input:?}");
    }
}

/// Numbers that break careless arithmetic.
const EDGES: &[&str] =
    &["-1", "1e308", "-1e308", "18446744073709551615", "18446744073709551616", "4294967296", "NaN", "3600001"];
/// Numbers a plan may well hold.
const PLAUSIBLE: &[&str] = &["0", "1", "0.5", "0.1", "10", "250", "429", "503", "1000", "3600000"];

fn random_plan(rng: &mut Rng) -> String {
    // Mostly plausible, so that many plans validate and reach decide(); sometimes an edge.
    let number = |rng: &mut Rng| match rng.below(5) {
        0 => rng.pick(EDGES).to_string(),
        _ => rng.pick(PLAUSIBLE).to_string(),
    };
    let when = match rng.below(5) {
        0 => r#"{"always": true}"#.to_string(),
        1 => format!(r#"{{"requests": {{"from": {}, "to": {}}}}}"#, number(rng), number(rng)),
        2 => format!(r#"{{"probability": {}}}"#, number(rng)),
        3 => format!(r#"{{"window": {{"from_ms": {}, "to_ms": {}}}}}"#, number(rng), number(rng)),
        _ => r#"{"sometimes": 1}"#.to_string(),
    };
    let action = match rng.below(6) {
        0 => format!(r#"{{"kind": "status", "code": {}, "retry_after_seconds": {}}}"#, number(rng), number(rng)),
        1 => format!(r#"{{"kind": "partial_success", "rejected": {}}}"#, number(rng)),
        2 => format!(r#"{{"kind": "hang", "ms": {}}}"#, number(rng)),
        3 => r#"{"kind": "close"}"#.to_string(),
        4 => format!(r#"{{"kind": "slow_read", "bytes_per_second": {}}}"#, number(rng)),
        _ => r#"{"kind": "explode"}"#.to_string(),
    };
    let plan = format!(
        r#"{{"latency_ms": {}, "jitter_ms": {}, "seed": {}, "rules": [{{"when": {when}, "action": {action}}}]}}"#,
        number(rng),
        number(rng),
        number(rng)
    );
    // Sometimes break the JSON itself.
    match rng.below(8) {
        0 => String::from_utf8_lossy(&mutate(rng, plan.as_bytes())).into_owned(),
        _ => plan,
    }
}

fn fuzz_plans(rng: &mut Rng, cases: u64) -> u64 {
    let mut validated = 0;
    for case in 0..cases {
        let text = random_plan(rng);
        let outcome = std::panic::catch_unwind(|| {
            let Ok(plan) = serde_json::from_str::<FaultPlan>(&text) else { return false };
            if plan.validate().is_err() {
                return false;
            }
            let mut active = testbed::faults::ActivePlan::new(plan);
            for ms in [0u64, 1, 1000, u64::MAX / 2] {
                active.decide(Duration::from_millis(ms));
            }
            true
        });
        match outcome {
            Ok(valid) => validated += u64::from(valid),
            Err(_) => panic!("plan case {case} panicked on {text}"),
        }
    }
    validated
}

/// Query strings and path segments with broken escapes, multi-byte characters and huge numbers.
fn random_component(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "%",
        "%a",
        "%aé",
        "%zz",
        "%e2%82",
        "%ff",
        "é",
        "🚀",
        "+",
        "&",
        "=",
        "attr.",
        "limit",
        "offset",
        "project",
        "since",
        "x",
        "18446744073709551616",
        "-1",
        "%00",
        "..",
        "/",
        "%2F",
    ];
    (0..rng.below(8)).map(|_| *rng.pick(PIECES)).collect()
}

fn fuzz_http(rng: &mut Rng, cases: u64) {
    let backend = Backend::start(Config::default()).expect("a backend");
    let base = backend.base_url();
    // One project with spans, so queries reach the paging code.
    let answer = common::post(
        &backend.traces_url(),
        &[common::PROTOBUF],
        &protobuf(&request("fuzzed", 3, 10)),
        Some(Duration::from_secs(30)),
    )
    .expect("ingest");
    assert_eq!(answer.status, 200);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for case in 0..cases {
        let (method, url, body) = match case % 6 {
            0 => {
                let q = format!("{}={}&{}", random_component(rng), random_component(rng), random_component(rng));
                (reqwest::Method::GET, format!("{base}/api/v1/projects/fuzzed/traces?{q}"), None)
            }
            1 => {
                let path = random_component(rng);
                let tail = *rng.pick(&["traces", "stats", "", "faults", "nope"]);
                let method = rng.pick(&[reqwest::Method::GET, reqwest::Method::DELETE]).clone();
                (method, format!("{base}/api/v1/projects/{path}x/{tail}"), None)
            }
            2 => (reqwest::Method::GET, format!("{base}/api/v1/ledger?{}", random_component(rng)), None),
            // Side-channel bodies, mutated; evaluations never get a plan (a hang would stall
            // this loop), tags only get plans and are never posted to.
            3 => {
                let valid = br#"{"evaluations": [{"id": "e1", "trace_id": "t1", "score": 0.5, "labels": ["a"]}]}"#;
                let body = String::from_utf8_lossy(&mutate(rng, valid)).into_owned();
                (reqwest::Method::POST, format!("{base}/api/v1/evaluations"), Some(body))
            }
            4 => (reqwest::Method::PUT, format!("{base}/api/v1/faults?endpoint=tags"), Some(random_plan(rng))),
            _ => {
                let target = if rng.below(2) == 0 { "faults".to_string() } else { "projects/fz/faults".to_string() };
                (reqwest::Method::PUT, format!("{base}/api/v1/{target}"), Some(random_plan(rng)))
            }
        };
        let mut request = client.request(method, url.as_str());
        if let Some(body) = body.clone() {
            request = request.body(body);
        }
        // A URL reqwest refuses to send is not a case for the server.
        let Ok(request) = request.build() else { continue };
        let response = client.execute(request).unwrap_or_else(|e| panic!("case {case}: {url}: {e}"));
        let status = response.status().as_u16();
        assert!(status < 500, "case {case}: {url} {body:?} answered {status}");
        *statuses.entry(status).or_default() += 1;
    }
    // The server is still fine, and the plans PUT did not leave a fault that breaks ingest.
    let _ = client.delete(format!("{base}/api/v1/faults")).send();
    let stats = common::stats(&base, "fuzzed");
    assert_eq!(stats["unique"], 10, "{stats}");
    assert!(statuses.contains_key(&200) && statuses.contains_key(&400), "{statuses:?}");
}

#[test]
fn every_input_is_answered_without_a_panic_or_a_5xx() {
    let total = total_cases();
    // Bodies are the cheapest and the most varied: half of the cases; plans a third; HTTP
    // (the slowest) the rest.
    let (bodies, plans) = (total / 2, total / 3);
    let http = total - bodies - plans;
    let mut rng = Rng(0xF022);
    fuzz_bodies(&mut rng, bodies);
    let validated = fuzz_plans(&mut rng, plans);
    fuzz_http(&mut rng, http);
    println!(
        "fuzzed {total} cases: {bodies} bodies (protobuf, JSON, gzip), {plans} plans ({validated} valid), {http} HTTP \
         requests to the query, fault-plan and side-channel APIs"
    );
    assert!(validated > 0, "some generated plans must be valid, or decide() is never fuzzed");
}
