//! The `raw` pipeline: OTLP/HTTP export requests built by the generator and sent straight
//! over HTTP (no SDK), to stress the target rather than the client. Every iteration is one
//! request of `spans` spans with ids unique across the run, so a deduplicating target counts
//! each span once.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use crate::plan::{Protocol, Resolved};
use crate::run::{Outcome, Status};
use crate::scenario::{Rng, TraceBuilder, text};

/// Iteration `i`'s request: one trace of `spans` spans (a root and its children) for
/// `service`, ids derived from (seed, i) so that no two iterations share one.
pub fn request(seed: u64, i: u64, spans: u64, service: &str) -> ExportTraceServiceRequest {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&seed.to_be_bytes());
    trace_id[8..].copy_from_slice(&i.to_be_bytes());
    let span_id = |j: u64| (i.wrapping_mul(1 << 16) + j + 1).to_be_bytes().to_vec();
    let spans = (0..spans)
        .map(|j| Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id(j),
            parent_span_id: if j == 0 { Vec::new() } else { span_id(0) },
            name: if j == 0 { "invoke_agent load".into() } else { format!("chat step {j}") },
            kind: if j == 0 { 2 } else { 3 },
            start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000_000 + j,
            end_time_unix_nano: 1_700_000_000_000_500_000 + i * 1_000_000 + j,
            attributes: vec![
                text("gen_ai.operation.name", if j == 0 { "invoke_agent" } else { "chat" }),
                text("gen_ai.request.model", "gpt-4o"),
                text("load.iteration", i.to_string()),
            ],
            ..Span::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![text("service.name", service)], ..Resource::default() }),
            scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
}

/// Sends iterations to one endpoint.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::blocking::Client,
    url: String,
    protocol: Protocol,
    headers: Vec<(String, String)>,
    seed: u64,
    spans: u64,
    service: String,
    mix: Option<Vec<Resolved>>,
    gzip: bool,
}

impl Sender {
    /// A sender of `spans`-span requests to `url`; each request times out after `timeout`.
    pub fn new(
        url: &str,
        protocol: Protocol,
        headers: Vec<(String, String)>,
        seed: u64,
        spans: u64,
        service: &str,
        timeout: Duration,
    ) -> Result<Sender, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Sender {
            client,
            url: url.to_owned(),
            protocol,
            headers,
            seed,
            spans,
            service: service.to_owned(),
            mix: None,
            gzip: false,
        })
    }

    /// The same sender, gzip-compressing bodies (`Content-Encoding: gzip`) when `gzip`.
    pub fn with_gzip(mut self, gzip: bool) -> Sender {
        self.gzip = gzip;
        self
    }

    /// The same sender drawing each iteration's trace from a weighted mix of scenarios.
    pub fn with_mix(mut self, mix: Vec<Resolved>) -> Sender {
        self.mix = Some(mix);
        self
    }

    /// The spans iteration `i` sends (the same draw as [`Sender::build`], without building).
    pub fn spans_of(&self, i: u64) -> u64 {
        match &self.mix {
            None => self.spans,
            Some(mix) => crate::scenario::span_count(&mix[self.pick(i, &mut self.rng_for(i))].steps),
        }
    }

    fn rng_for(&self, i: u64) -> Rng {
        Rng(self.seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407))
    }

    fn pick(&self, _i: u64, rng: &mut Rng) -> usize {
        let mix = self.mix.as_deref().unwrap_or_default();
        let total: f64 = mix.iter().map(|s| s.weight).sum();
        let mut draw = rng.next_f64() * total;
        let pick = mix.iter().position(|s| {
            draw -= s.weight;
            draw < 0.0
        });
        pick.unwrap_or(mix.len().saturating_sub(1))
    }

    /// Iteration `i`'s request and its scenario: drawn from the mix by weight with a PRNG
    /// seeded by (seed, i), so the run replays; the filler trace without a mix.
    pub fn build(&self, i: u64) -> (ExportTraceServiceRequest, usize) {
        let Some(mix) = &self.mix else { return (request(self.seed, i, self.spans, &self.service), 0) };
        let mut rng = self.rng_for(i);
        let index = self.pick(i, &mut rng);
        let scenario = &mix[index];
        let mut builder = TraceBuilder::new(self.seed, i, &mut rng);
        builder.agent(&[], &scenario.agent, &scenario.steps);
        let spans = std::mem::take(&mut builder.spans);
        let mut request = request(self.seed, i, 0, &self.service);
        request.resource_spans[0].scope_spans[0].spans = spans;
        (request, index)
    }

    /// Does iteration `i`: builds, sends and classifies its request.
    pub fn iteration(&self, i: u64) -> Outcome {
        let (request, scenario) = self.build(i);
        let spans = request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len() as u64).sum();
        let (body, content_type) = match self.protocol {
            Protocol::Protobuf => (request.encode_to_vec(), "application/x-protobuf"),
            Protocol::Json => (serde_json::to_vec(&request).unwrap_or_default(), "application/json"),
        };
        let body = if self.gzip { gzip(&body) } else { body };
        let bytes = body.len() as u64;
        let mut post = self.client.post(&self.url).header("content-type", content_type);
        if self.gzip {
            post = post.header("content-encoding", "gzip");
        }
        let mut post = post.body(body);
        for (name, value) in &self.headers {
            post = post.header(name.as_str(), value.as_str());
        }
        let outcome = |status, rejected| Outcome { status, spans, rejected, bytes, scenario };
        match post.send() {
            Ok(response) => {
                let status = Status::of(response.status().as_u16());
                let rejected = match (status, self.protocol) {
                    (Status::Ok, Protocol::Protobuf) => response
                        .bytes()
                        .ok()
                        .and_then(|b| ExportTraceServiceResponse::decode(b.as_ref()).ok())
                        .and_then(|r| r.partial_success)
                        .map_or(0, |p| p.rejected_spans.max(0) as u64),
                    _ => 0,
                };
                outcome(status, rejected.min(spans))
            }
            Err(e) if e.is_timeout() => outcome(Status::Timeout, 0),
            Err(_) => outcome(Status::ConnectionError, 0),
        }
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_iterations() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            for span in &request(9, i, 12, "s").resource_spans[0].scope_spans[0].spans {
                assert!(seen.insert((span.trace_id.clone(), span.span_id.clone())));
            }
        }
        assert_eq!(seen.len(), 200 * 12);
    }
}
