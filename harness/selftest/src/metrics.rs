//! Tests with known resource use, for the metrics layer's fidelity tests (`tests/metrics.rs`):
//! exact heap growth, allocation churn with a known peak, known CPU time, recorded figures.

use std::time::Duration;

use reliability_harness as rh;

reliability_harness::global_allocator!();

/// Burns `cpu` of this thread's CPU time (not wall time: on a loaded machine a wall-clock
/// loop gets less than a core, and its CPU would be unknown).
fn busy(cpu: Duration) {
    let now = || {
        Duration::from(nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock"))
    };
    let until = now() + cpu;
    let mut x = 0u64;
    while now() < until {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

mod fidelity {
    use super::*;

    /// Keeps exactly 1 MiB alive past the end of the test.
    #[rh::test]
    fn keeps_1mib() {
        let kept: Vec<u8> = vec![7u8; 1 << 20];
        std::hint::black_box(Box::leak(kept.into_boxed_slice()));
    }

    /// Allocates 64 MiB, touches it, frees it: growth ≈ 0, peak ≥ 64 MiB.
    #[rh::test]
    fn churns_64mib() {
        let v = vec![1u8; 64 << 20];
        std::hint::black_box(&v);
        drop(v);
    }

    #[rh::test]
    fn busy_300ms() {
        busy(Duration::from_millis(300));
    }

    #[rh::test]
    fn sleeps_300ms() {
        std::thread::sleep(Duration::from_millis(300));
    }

    #[rh::test]
    fn two_threads_busy_300ms() {
        let threads: Vec<_> = (0..2).map(|_| std::thread::spawn(|| busy(Duration::from_millis(300)))).collect();
        for t in threads {
            t.join().expect("busy thread");
        }
    }

    #[rh::test]
    fn records_figures(metrics: &rh::Metrics) {
        for ms in 1..=100u64 {
            metrics.record_latency("export", Duration::from_millis(ms));
        }
        metrics.record_throughput("export", 1000, Duration::from_millis(250));
        metrics.set("spans_delivered", 100.0);
        metrics.add("spans_generated", 60.0);
        metrics.add("spans_generated", 40.0);
    }

    /// Runs 1.5 s, growing its RSS: long enough for a resource series.
    #[rh::test]
    fn runs_1500ms() {
        let mut blocks = Vec::new();
        for _ in 0..6 {
            blocks.push(vec![3u8; 8 << 20]);
            busy(Duration::from_millis(250));
        }
        std::hint::black_box(&blocks);
    }
}

fn main() -> std::process::ExitCode {
    rh::main()
}
