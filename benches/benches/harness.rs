//! The harness's own hot paths: per-test overhead of a run in thread isolation with metrics
//! on (100 trivial tests, in-process, reports written), `-m` expression evaluation,
//! Prometheus exposition rendering for 1,000 tests, and latency recording into the `Metrics`
//! fixture's HDR histogram.
//!
//! Run: `cargo bench -p reliability-benches --bench harness`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reliability_benches::inputs::{MARK_EXPRESSION, count_matches, marker_sets, reports};
use reliability_harness::registry::{Settings, TestCase, TestDef};
use reliability_harness::select::expr::Expr;

reliability_harness::global_allocator!();

const TESTS: usize = 100;

fn trivial(
    call: &mut reliability_harness::__private::TestCall<'_>,
) -> Result<(), reliability_harness::__private::Interrupted> {
    call.call(|| Ok(()))
}

static TRIVIAL: TestDef = TestDef {
    path: "bench::trivial",
    markers: &[],
    file: file!(),
    package_dir: "",
    line: line!(),
    settings: None,
    fixtures: &[],
    run: trivial,
};

fn trivial_tests() -> Vec<TestCase> {
    (0..TESTS)
        .map(|i| TestCase {
            name: format!("bench::trivial_{i:03}").leak(),
            markers: Vec::new(),
            settings: &Settings {
                isolation: Some(reliability_harness::__private::Isolation::Thread),
                ..Settings::DEFAULT
            },
            def: &TRIVIAL,
        })
        .collect()
}

fn per_test_overhead(c: &mut Criterion) {
    let out = tempfile::tempdir().expect("a scratch directory");
    let out_dir = out.path().to_string_lossy().into_owned();
    let env = move |key: &str| (key == "RELIABILITY_OUTPUT_DIR").then(|| out_dir.clone());
    // libtest's log goes to a file: the run prints nothing (no summary either).
    let log = out.path().join("libtest.log").to_string_lossy().into_owned();
    let args: Vec<std::ffi::OsString> =
        ["bench", "--test-threads", "1", "--logfile", log.as_str()].iter().map(Into::into).collect();
    let mut group = c.benchmark_group("harness");
    group.throughput(Throughput::Elements(TESTS as u64));
    group.sample_size(20);
    group.bench_function("run_thread_metrics_100", |b| {
        b.iter(|| {
            let code = reliability_harness::run(trivial_tests(), args.clone(), &env).expect("the run");
            assert_eq!(code, 0);
        });
    });
    group.finish();
}

fn select_and_report(c: &mut Criterion) {
    let expr = Expr::parse(MARK_EXPRESSION).expect("the expression parses");
    let sets = marker_sets();
    let (run, reports) = reports(1000);
    let metrics = reliability_harness::Metrics::default();
    let mut group = c.benchmark_group("harness");
    group.bench_function("markexpr_eval", |b| b.iter(|| count_matches(black_box(&expr), &sets)));
    group.bench_function("prom_render_1000", |b| {
        b.iter(|| reliability_harness::report::prom::render(black_box(&run), &reports, None))
    });
    let mut micros = 0u64;
    group.bench_function("hdr_record", |b| {
        b.iter(|| {
            micros = micros % 100_000 + 37;
            metrics.record_latency("export", black_box(Duration::from_micros(micros)));
        })
    });
    group.finish();
}

criterion_group!(benches, per_test_overhead, select_and_report);
criterion_main!(benches);
