//! The store accounts its memory in real heap bytes: what the counting allocator sees it
//! keep, for spans small and large, within 15 %. (The limit `max_bytes` is that figure, so a
//! limit of 1 GiB means about 1 GiB of memory, not 1 GiB of encoded protobuf.)

mod common;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use testbed::ingest::{self, Encoding};
use testbed::store::{Limits, Store};

reliability_harness::global_allocator!();

fn live() -> i64 {
    reliability_harness::measure::counters().expect("the counting allocator is installed").live_bytes as i64
}

/// `n` spans of `attributes` string attributes of `value_len` bytes each, in requests of 500.
fn bodies(n: u64, attributes: usize, value_len: usize) -> Vec<Vec<u8>> {
    (0..n.div_ceil(500))
        .map(|r| {
            let mut request = common::request("memory", (r % 250) as u8 + 1, 500);
            for span in &mut request.resource_spans[0].scope_spans[0].spans {
                span.trace_id[0] = (r / 250) as u8;
                span.attributes.extend((0..attributes).map(|a| KeyValue {
                    key: format!("attribute.{a}"),
                    value: Some(AnyValue { value: Some(any_value::Value::StringValue("v".repeat(value_len))) }),
                    ..KeyValue::default()
                }));
            }
            common::protobuf(&request)
        })
        .collect()
}

#[test]
fn the_store_counts_the_memory_it_keeps() {
    for (spans, attributes, value_len) in [(20_000u64, 0usize, 0usize), (10_000, 10, 40), (2_000, 5, 4_000)] {
        let bodies = bodies(spans, attributes, value_len);
        let mut store = Store::new(Limits { max_spans: u64::MAX, max_bytes: u64::MAX });
        let before = live();
        for body in &bodies {
            let request = ingest::decode(body, Encoding::Protobuf).expect("decode");
            let batches = ingest::batches(request, None);
            assert!(store.fits(&batches));
            store.store(batches);
        }
        let kept = (live() - before) as f64;
        let (stored, accounted) = store.totals();
        assert_eq!(stored, spans);
        let ratio = accounted as f64 / kept;
        println!(
            "{spans} spans x {attributes} attributes of {value_len} B: kept {kept} B, accounted {accounted} B ({ratio:.3})"
        );
        assert!((0.85..=1.15).contains(&ratio), "accounted {accounted} B for {kept} B kept ({ratio:.3})");
    }
}
