//! Helpers shared by the testbed's integration tests: raw HTTP against the backend, and OTLP
//! requests built by hand.
#![allow(dead_code, unreachable_pub, reason = "each test binary uses part of the helpers")]
#![expect(clippy::unwrap_used, reason = "test helpers: a panic is the failure report")]

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

/// The project's SplitMix64 (`testbed::rng`), so a failing case replays from its seed and
/// number.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut g = testbed::rng::SplitMix64(self.0);
        let n = g.next();
        self.0 = g.0;
        n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn client(timeout: Option<Duration>) -> reqwest::blocking::Client {
    // reqwest's default timeout is 30 s; `None` here means none at all.
    reqwest::blocking::Client::builder().timeout(timeout).build().unwrap()
}

fn answer(response: reqwest::blocking::Response) -> Answer {
    let status = response.status().as_u16();
    let headers =
        response.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    let body = response.bytes().map(|b| b.to_vec()).unwrap_or_default();
    Answer { status, headers, body }
}

fn send(request: reqwest::blocking::RequestBuilder, headers: &[(&str, &str)]) -> Result<Answer, String> {
    let request = headers.iter().fold(request, |r, (k, v)| r.header(*k, *v));
    request.send().map(answer).map_err(|e| e.to_string())
}

/// POSTs `body`; `Err` when the connection failed or timed out.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8], timeout: Option<Duration>) -> Result<Answer, String> {
    send(client(timeout).post(url).body(body.to_vec()), headers)
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    send(client(Some(Duration::from_secs(10))).get(url), headers).unwrap()
}

pub fn put_json(url: &str, body: &Value) -> Answer {
    send(client(Some(Duration::from_secs(10))).put(url).body(body.to_string()), &[("content-type", "application/json")])
        .unwrap()
}

pub fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..KeyValue::default()
    }
}

/// An export request of `n` spans for `service`, trace `trace` (span ids 1..=n).
pub fn request(service: &str, trace: u8, n: u64) -> ExportTraceServiceRequest {
    let spans = (1..=n)
        .map(|i| Span {
            trace_id: vec![trace; 16],
            span_id: i.to_be_bytes().to_vec(),
            name: format!("span {i}"),
            attributes: vec![string("i", &i.to_string())],
            ..Span::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![string("service.name", service)], ..Resource::default() }),
            scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
}

pub fn protobuf(request: &ExportTraceServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}

pub const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");
pub const JSON: (&str, &str) = ("content-type", "application/json");

pub fn stats(base: &str, project: &str) -> Value {
    get(&format!("{base}/api/v1/projects/{project}/stats"), &[]).json()
}

/// received = accepted + duplicates + Σ rejected.
pub fn assert_accounted(stats: &Value) {
    let n = |k: &str| stats[k].as_u64().unwrap();
    let rejected: u64 = stats["rejected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(n("received"), n("accepted") + n("duplicates") + rejected, "{stats}");
}

/// DELETE; the status.
pub fn agent_delete(url: &str) -> u16 {
    send(client(Some(Duration::from_secs(10))).delete(url), &[]).unwrap().status
}
