//! The in-memory span store: per project, deduplicated by (trace id, span id), bounded.
//!
//! Spans are kept as decoded protobuf (compact), with their resource and scope shared per
//! request; JSON is made only when queried. Limits on spans and bytes are checked before a
//! request is stored: a request that does not fit is refused whole (the caller answers 503
//! with `Retry-After`), so the store never grows past its limits.
//!
//! Accounting, per project: `received = accepted + duplicates + Σ rejected[reason]`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

use serde::Serialize;

/// The resource attribute naming the project by default.
pub const SERVICE_NAME: &str = "service.name";
/// The project of spans whose resource has no `service.name`.
pub const UNKNOWN_PROJECT: &str = "unknown_service";

/// A stored span with what it shares with its request.
#[derive(Clone, Debug)]
pub struct StoredSpan {
    /// The span as received.
    pub span: Span,
    /// Its resource.
    pub resource: Arc<Option<Resource>>,
    /// Its instrumentation scope.
    pub scope: Arc<Option<InstrumentationScope>>,
}

/// Counts of one project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Spans in decodable requests for this project.
    pub received: u64,
    /// Spans stored (first time seen).
    pub accepted: u64,
    /// Spans seen before (same trace id and span id), not stored again.
    pub duplicates: u64,
    /// Spans refused, by reason (`status_503`, `partial_success`, `storage_full`, ...).
    pub rejected: BTreeMap<String, u64>,
    /// Decoded (decompressed) request bytes.
    pub bytes: u64,
    /// Ingest requests.
    pub requests: u64,
}

impl Stats {
    /// Spans stored now.
    pub fn unique(&self) -> u64 {
        self.accepted
    }
}

#[derive(Debug, Default)]
struct Project {
    spans: Vec<StoredSpan>,
    index: HashMap<([u8; 16], [u8; 8]), usize>,
    stats: Stats,
    bytes: u64,
}

/// Limits of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Spans across all projects.
    pub max_spans: u64,
    /// Memory the stored spans take across all projects, in heap bytes ([`memory_of`]: the
    /// decoded spans and the store's own tables, not their encoded size).
    pub max_bytes: u64,
}

impl Default for Limits {
    /// One million spans or 1 GiB of memory, whichever comes first: room for the suites' largest
    /// test (100k spans of ~2 KB) many times over, on a 2-core CI machine.
    fn default() -> Self {
        Limits { max_spans: 1_000_000, max_bytes: 1 << 30 }
    }
}

/// Heap bytes one stored span takes: its decoded strings, ids, attributes, events and links
/// (by capacity, as the allocator hands them out), not counting the containers it sits in
/// (see [`Store::store`]) or its request's resource and scope, which its batch shares.
pub fn memory_of(span: &Span) -> u64 {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    fn value(v: &AnyValue) -> usize {
        match &v.value {
            Some(any_value::Value::StringValue(s)) => s.capacity(),
            Some(any_value::Value::BytesValue(b)) => b.capacity(),
            Some(any_value::Value::ArrayValue(a)) => {
                a.values.capacity() * std::mem::size_of::<AnyValue>() + a.values.iter().map(value).sum::<usize>()
            }
            Some(any_value::Value::KvlistValue(l)) => attributes(&l.values),
            _ => 0,
        }
    }
    fn attributes(list: &Vec<KeyValue>) -> usize {
        list.capacity() * std::mem::size_of::<KeyValue>()
            + list.iter().map(|kv| kv.key.capacity() + kv.value.as_ref().map_or(0, value)).sum::<usize>()
    }
    let events = span.events.capacity() * std::mem::size_of::<Event>()
        + span.events.iter().map(|e| e.name.capacity() + attributes(&e.attributes)).sum::<usize>();
    let links = span.links.capacity() * std::mem::size_of::<Link>()
        + span
            .links
            .iter()
            .map(|l| {
                l.trace_id.capacity() + l.span_id.capacity() + l.trace_state.capacity() + attributes(&l.attributes)
            })
            .sum::<usize>();
    let status = span.status.as_ref().map_or(0, |s| s.message.capacity());
    let own = span.name.capacity()
        + span.trace_id.capacity()
        + span.span_id.capacity()
        + span.parent_span_id.capacity()
        + span.trace_state.capacity();
    (own + attributes(&span.attributes) + events + links + status) as u64
}

/// What one more entry in a project's span list and index costs, beside the span's own heap.
const ENTRY_BYTES: u64 =
    (std::mem::size_of::<StoredSpan>() + std::mem::size_of::<(([u8; 16], [u8; 8]), usize)>() + 1) as u64;

/// Heap bytes of a project's span list and index (by capacity).
fn container_bytes(project: &Project) -> u64 {
    let list = project.spans.capacity() * std::mem::size_of::<StoredSpan>();
    // hashbrown: one control byte per bucket beside each bucket's entry.
    let index = project.index.capacity() * (std::mem::size_of::<(([u8; 16], [u8; 8]), usize)>() + 1);
    (list + index) as u64
}

/// The store.
#[derive(Debug)]
pub struct Store {
    projects: BTreeMap<String, Project>,
    limits: Limits,
    spans: u64,
    bytes: u64,
}

/// A batch of spans of one project from one request.
#[derive(Debug)]
pub struct Batch {
    /// The project.
    pub project: String,
    /// Spans with their resource and scope.
    pub spans: Vec<StoredSpan>,
}

/// The key of a span; ids of the wrong length are padded or cut (and counted as sent).
fn key(span: &Span) -> ([u8; 16], [u8; 8]) {
    let mut trace = [0u8; 16];
    let mut id = [0u8; 8];
    let t = span.trace_id.len().min(16);
    let s = span.span_id.len().min(8);
    trace[..t].copy_from_slice(&span.trace_id[..t]);
    id[..s].copy_from_slice(&span.span_id[..s]);
    (trace, id)
}

/// What storing a request did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// New spans stored.
    pub accepted: u64,
    /// Duplicates.
    pub duplicates: u64,
}

impl Store {
    /// An empty store.
    pub fn new(limits: Limits) -> Store {
        Store { projects: BTreeMap::new(), limits, spans: 0, bytes: 0 }
    }

    fn project(&mut self, name: &str) -> &mut Project {
        self.projects.entry(name.to_string()).or_default()
    }

    /// Counts a request's spans as received, per project, and its bytes.
    pub fn receive(&mut self, batches: &[Batch], decoded_bytes: u64) {
        for (i, batch) in batches.iter().enumerate() {
            let project = self.project(&batch.project);
            project.stats.received += batch.spans.len() as u64;
            if i == 0 {
                project.stats.requests += 1;
                project.stats.bytes += decoded_bytes;
            }
        }
    }

    /// Counts spans as rejected for `reason`.
    pub fn reject(&mut self, project: &str, reason: &str, spans: u64) {
        if spans > 0 {
            *self.project(project).stats.rejected.entry(reason.to_string()).or_default() += spans;
        }
    }

    /// Whether the new spans of `batches` fit the limits.
    pub fn fits(&self, batches: &[Batch]) -> bool {
        let (mut spans, mut bytes) = (0u64, 0u64);
        for batch in batches {
            let project = self.projects.get(&batch.project);
            for s in &batch.spans {
                if project.is_none_or(|p| !p.index.contains_key(&key(&s.span))) {
                    spans += 1;
                    bytes += memory_of(&s.span) + ENTRY_BYTES;
                }
            }
        }
        self.spans + spans <= self.limits.max_spans && self.bytes + bytes <= self.limits.max_bytes
    }

    /// Stores spans (call [`Store::fits`] first); duplicates are counted, not stored.
    pub fn store(&mut self, batches: Vec<Batch>) -> Stored {
        let mut done = Stored::default();
        for batch in batches {
            let project = self.projects.entry(batch.project).or_default();
            for span in batch.spans {
                let k = key(&span.span);
                if project.index.contains_key(&k) {
                    project.stats.duplicates += 1;
                    done.duplicates += 1;
                    continue;
                }
                // The span's own heap, plus what the list and the index grow by (by capacity:
                // a doubling is counted when it happens).
                let before = container_bytes(project);
                let own = memory_of(&span.span);
                project.index.insert(k, project.spans.len());
                project.spans.push(span);
                let size = own + container_bytes(project) - before;
                project.stats.accepted += 1;
                project.bytes += size;
                self.spans += 1;
                self.bytes += size;
                done.accepted += 1;
            }
        }
        done
    }

    /// Projects with their stored span counts.
    pub fn projects(&self) -> Vec<(String, u64)> {
        self.projects.iter().map(|(name, p)| (name.clone(), p.spans.len() as u64)).collect()
    }

    /// A project's counts.
    pub fn stats(&self, project: &str) -> Option<Stats> {
        self.projects.get(project).map(|p| p.stats.clone())
    }

    /// Removes a project; whether it existed.
    pub fn delete(&mut self, project: &str) -> bool {
        match self.projects.remove(project) {
            Some(p) => {
                self.spans -= p.spans.len() as u64;
                self.bytes -= p.bytes;
                true
            }
            None => false,
        }
    }

    /// Spans stored, bytes stored.
    pub fn totals(&self) -> (u64, u64) {
        (self.spans, self.bytes)
    }

    /// Traces of `project` having at least one span whose attributes match all `filters`
    /// (string forms equal), in order of first arrival; with `offset` and `limit`.
    pub fn traces(
        &self,
        project: &str,
        filters: &[(String, String)],
        offset: usize,
        limit: usize,
    ) -> Option<TracePage> {
        let p = self.projects.get(project)?;
        let mut order: Vec<[u8; 16]> = Vec::new();
        let mut by_trace: HashMap<[u8; 16], Vec<&StoredSpan>> = HashMap::new();
        for s in &p.spans {
            let (trace, _) = key(&s.span);
            by_trace.entry(trace).or_insert_with(|| {
                order.push(trace);
                Vec::new()
            });
            if let Some(spans) = by_trace.get_mut(&trace) {
                spans.push(s);
            }
        }
        let matching: Vec<[u8; 16]> = order
            .into_iter()
            .filter(|t| {
                filters.is_empty()
                    || by_trace[t].iter().any(|s| {
                        filters.iter().all(|(k, v)| {
                            s.span
                                .attributes
                                .iter()
                                .any(|kv| &kv.key == k && kv.value.as_ref().map(value_text).as_ref() == Some(v))
                        })
                    })
            })
            .collect();
        let total = matching.len();
        let traces = matching
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|t| TraceView { trace_id: hex(&t), spans: by_trace[&t].iter().map(|s| span_view(s)).collect() })
            .collect();
        Some(TracePage { total, traces })
    }
}

/// A page of traces.
#[derive(Debug, Serialize)]
pub struct TracePage {
    /// Traces matching, before paging.
    pub total: usize,
    /// This page.
    pub traces: Vec<TraceView>,
}

/// One trace.
#[derive(Debug, Serialize)]
pub struct TraceView {
    /// Hex trace id.
    pub trace_id: String,
    /// Its spans, in arrival order.
    pub spans: Vec<serde_json::Value>,
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text form of a value, for attribute filters.
pub fn value_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// A span as the query API shows it: the OTLP JSON form of the span (ids in hex, attributes as
/// `AnyValue` objects), plus its resource and scope.
fn span_view(s: &StoredSpan) -> serde_json::Value {
    let mut value = serde_json::to_value(&s.span).unwrap_or(serde_json::Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert("resource".into(), serde_json::to_value(&*s.resource).unwrap_or_default());
        object.insert("scope".into(), serde_json::to_value(&*s.scope).unwrap_or_default());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValue;

    fn span(trace: u8, id: u8, marker: &str) -> StoredSpan {
        StoredSpan {
            span: Span {
                trace_id: vec![trace; 16],
                span_id: vec![id; 8],
                name: format!("s{id}"),
                attributes: vec![KeyValue {
                    key: "test_marker".into(),
                    value: Some(AnyValue { value: Some(any_value::Value::StringValue(marker.into())) }),
                    ..KeyValue::default()
                }],
                ..Span::default()
            },
            resource: Arc::new(None),
            scope: Arc::new(None),
        }
    }

    fn batch(project: &str, spans: Vec<StoredSpan>) -> Vec<Batch> {
        vec![Batch { project: project.into(), spans }]
    }

    #[test]
    fn dedup_accounting_and_limits() {
        let mut store = Store::new(Limits { max_spans: 3, max_bytes: 1 << 20 });
        let b = batch("p", vec![span(1, 1, "a"), span(1, 2, "a"), span(1, 1, "a")]);
        store.receive(&b, 100);
        assert!(store.fits(&b));
        assert_eq!(store.store(b), Stored { accepted: 2, duplicates: 1 });
        let more = batch("p", vec![span(2, 1, "b"), span(2, 2, "b")]);
        store.receive(&more, 50);
        assert!(!store.fits(&more), "2 new spans do not fit in the 1 left");
        store.reject("p", "storage_full", 2);
        let stats = store.stats("p").unwrap();
        assert_eq!((stats.received, stats.accepted, stats.duplicates, stats.bytes), (5, 2, 1, 150));
        assert_eq!(stats.received, stats.accepted + stats.duplicates + stats.rejected.values().sum::<u64>());
        assert!(store.delete("p"));
        assert_eq!(store.totals(), (0, 0));
    }

    #[test]
    fn traces_filter_by_attribute_and_page() {
        let mut store = Store::new(Limits { max_spans: 100, max_bytes: 1 << 20 });
        store.store(batch("p", vec![span(1, 1, "a"), span(2, 1, "b"), span(1, 2, "b"), span(3, 1, "a")]));
        let page = store.traces("p", &[("test_marker".into(), "a".into())], 0, 10).unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(page.traces[0].trace_id, "01".repeat(16));
        assert_eq!(page.traces[0].spans.len(), 2, "a matching trace comes with all its spans");
        assert_eq!(page.traces[0].spans[0]["spanId"], "0101010101010101");
        let page = store.traces("p", &[], 1, 1).unwrap();
        assert_eq!((page.total, page.traces.len(), page.traces[0].trace_id.as_str()), (3, 1, "02".repeat(16).as_str()));
        assert!(store.traces("nope", &[], 0, 10).is_none());
    }
}
