//! Real OpenTelemetry clients against the backend: the Rust `opentelemetry-otlp` exporter over
//! protobuf and JSON, gzip on and off. Every span must arrive with ids, parent links,
//! attributes of every type, events and status intact.

#![expect(clippy::unwrap_used, reason = "test helpers: a panic is the failure report")]

mod common;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

fn attributes(marker: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("test_marker", marker.to_string()),
        KeyValue::new("str.unicode", "héllo wörld ✓ 🚀 שלום"),
        KeyValue::new("str.empty", ""),
        KeyValue::new("int.max", i64::MAX),
        KeyValue::new("int.min", i64::MIN),
        KeyValue::new("float", 3.5f64),
        KeyValue::new("bool", true),
        KeyValue::new("arr.str", Value::Array(Array::String(vec![StringValue::from("a"), StringValue::from("")]))),
        KeyValue::new("arr.int", Value::Array(Array::I64(vec![i64::MIN, 0, i64::MAX]))),
        KeyValue::new("arr.float", Value::Array(Array::F64(vec![-1.25, 0.0]))),
        KeyValue::new("arr.bool", Value::Array(Array::Bool(vec![true, false]))),
    ]
}

/// Exports one trace: parent → child, parent → grandchild → great-grandchild.
fn export(traces_url: &str, protocol: Protocol, gzip: bool, marker: &str) {
    let mut builder =
        opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(protocol).with_endpoint(traces_url);
    if gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    let exporter = builder.build().unwrap();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("clients").build())
        .build();
    let tracer = provider.tracer("testbed-clients");
    let mut parent =
        tracer.span_builder("parent").with_kind(SpanKind::Server).with_attributes(attributes(marker)).start(&tracer);
    parent.add_event("started", vec![KeyValue::new("event.attr", 42i64)]);
    let cx = Context::current_with_span(parent);
    let mut child = tracer
        .span_builder("child")
        .with_attributes(vec![KeyValue::new("test_marker", marker.to_string())])
        .start_with_context(&tracer, &cx);
    let child_cx = cx.with_span(
        tracer
            .span_builder("grandchild")
            .with_attributes(vec![KeyValue::new("test_marker", marker.to_string())])
            .start_with_context(&tracer, &cx),
    );
    let mut grandchild = tracer
        .span_builder("great-grandchild")
        .with_attributes(vec![KeyValue::new("test_marker", marker.to_string())])
        .start_with_context(&tracer, &child_cx);
    grandchild.set_status(Status::error("boom"));
    grandchild.end();
    child_cx.span().end();
    child.end();
    cx.span().end();
    provider.shutdown().unwrap();
}

fn value_of<'a>(span: &'a ProtoSpan, key: &str) -> &'a any_value::Value {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

#[test]
fn every_span_arrives_intact_over_protobuf_and_json_with_and_without_gzip() {
    let backend = testbed::Backend::start(testbed::Config::default()).unwrap();
    let base = backend.base_url();
    for (protocol, name) in [(Protocol::HttpBinary, "protobuf"), (Protocol::HttpJson, "json")] {
        for gzip in [false, true] {
            let marker = format!("{name}-gzip-{gzip}");
            export(&backend.traces_url(), protocol, gzip, &marker);
            let page =
                common::get(&format!("{base}/api/v1/projects/clients/traces?attr.test_marker={marker}"), &[]).json();
            assert_eq!(page["total"], 1, "{marker}: {page}");
            let spans: Vec<ProtoSpan> = page["traces"][0]["spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| serde_json::from_value(s.clone()).unwrap())
                .collect();
            assert_eq!(spans.len(), 4, "{marker}");
            let by_name =
                |n: &str| spans.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("{marker}: no span {n}"));
            let (parent, child, grandchild, great) =
                (by_name("parent"), by_name("child"), by_name("grandchild"), by_name("great-grandchild"));
            assert!(
                spans.iter().all(|s| s.trace_id == parent.trace_id && s.trace_id.len() == 16 && s.span_id.len() == 8)
            );
            assert!(parent.parent_span_id.is_empty());
            assert_eq!(child.parent_span_id, parent.span_id);
            assert_eq!(grandchild.parent_span_id, parent.span_id);
            assert_eq!(great.parent_span_id, grandchild.span_id);
            assert_eq!(parent.kind, 2, "SPAN_KIND_SERVER");
            use any_value::Value as V;
            assert_eq!(value_of(parent, "str.unicode"), &V::StringValue("héllo wörld ✓ 🚀 שלום".into()));
            assert_eq!(value_of(parent, "str.empty"), &V::StringValue(String::new()));
            assert_eq!(value_of(parent, "int.max"), &V::IntValue(i64::MAX));
            assert_eq!(value_of(parent, "int.min"), &V::IntValue(i64::MIN));
            assert_eq!(value_of(parent, "float"), &V::DoubleValue(3.5));
            assert_eq!(value_of(parent, "bool"), &V::BoolValue(true));
            let V::ArrayValue(ints) = value_of(parent, "arr.int") else { panic!("arr.int is not an array") };
            let ints: Vec<_> = ints.values.iter().map(|v| v.value.clone()).collect();
            assert_eq!(ints, [Some(V::IntValue(i64::MIN)), Some(V::IntValue(0)), Some(V::IntValue(i64::MAX))]);
            let V::ArrayValue(strs) = value_of(parent, "arr.str") else { panic!("arr.str is not an array") };
            assert_eq!(strs.values.len(), 2);
            assert!(matches!(value_of(parent, "arr.float"), V::ArrayValue(a) if a.values.len() == 2));
            assert!(matches!(value_of(parent, "arr.bool"), V::ArrayValue(a) if a.values.len() == 2));
            assert_eq!(parent.events.len(), 1);
            assert_eq!(parent.events[0].name, "started");
            assert_eq!(parent.events[0].attributes[0].value.as_ref().unwrap().value, Some(V::IntValue(42)));
            let status = great.status.as_ref().unwrap();
            assert_eq!((status.code, status.message.as_str()), (2, "boom"), "STATUS_CODE_ERROR");
            assert!(parent.start_time_unix_nano > 0 && parent.end_time_unix_nano >= parent.start_time_unix_nano);
        }
    }
    let stats = common::stats(&base, "clients");
    assert_eq!((stats["accepted"].as_u64(), stats["duplicates"].as_u64()), (Some(16), Some(0)), "{stats}");
    common::assert_accounted(&stats);
    let ledger = common::get(&format!("{base}/api/v1/ledger"), &[]).json();
    let entries = ledger["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["encoding"] == "json" && e["gzip"] == true));
    assert!(entries.iter().any(|e| e["encoding"] == "protobuf" && e["gzip"] == false));
    assert!(entries.iter().all(|e| e["status"] == 200));
}
