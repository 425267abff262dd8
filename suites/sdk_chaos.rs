//! SDK reliability, suite 6 — chaos (`chaos`, opt-in; CI runs it): 20% of API calls time out
//! at random (seeded); a network partition and packet-loss-like stalls through the chaos
//! proxy; memory pressure (a memory-limited process generating high volume degrades by
//! dropping, not crashing); CPU throttling of the background work; shutdown while 32 threads
//! are still ending spans. Every span and item is accounted for, each count checked against
//! one taken where the thing happened (the backend's ledger and counters, the proxy's
//! ledger, the threads' own counts).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reliability_client::ExportGate;
use reliability_client::sdk::AttrValue;
use reliability_harness as rh;
use reliability_suites::sdk::{self, Sdk, check, live_heap};
use serde_json::json;
use testbed::Backend;
use testbed::proxy::{Kind, ProxyConfig, ProxyServer, ProxySpec, Stream, Toxic};

/// Ends `spans` spans in ticks of 100 spans every 100 ms (every 10th span with an evaluation
/// and a tag), timing each call as `caller_<call>_<condition>`; how many evaluations were
/// taken. Evaluation ids are `<condition>-<n>`, unique per condition.
fn traffic(client: Sdk<'_>, condition: &str, spans: u64, metrics: &rh::Metrics) -> u64 {
    let mut taken = 0;
    let started = Instant::now();
    for i in 0..spans {
        let begun = Instant::now();
        let mut span = client.span("llm.chat");
        span.set_attribute("chaos.condition", condition.into());
        let trace = span.trace_id();
        span.end();
        metrics.record_latency(&format!("caller_span_{condition}"), begun.elapsed());
        if i % 10 == 0 {
            let begun = Instant::now();
            taken +=
                u64::from(client.evaluate(json!({ "id": format!("{condition}-{i}"), "trace_id": trace, "score": 1 })));
            metrics.record_latency(&format!("caller_evaluate_{condition}"), begun.elapsed());
            let begun = Instant::now();
            client.tag(&trace, &["chaos", condition]);
            metrics.record_latency(&format!("caller_tag_{condition}"), begun.elapsed());
        }
        if i % 100 == 99 {
            let next = started + Duration::from_millis(100) * ((i + 1) / 100) as u32;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
    taken
}

/// Every span and evaluation the client was given is where the backend says it is.
fn all_accounted(backend: &Backend, h: &reliability_client::sdk::SdkHealth, ended: u64) -> Result<(), String> {
    let s = &h.spans;
    check(s.ended == ended && s.is_balanced(), || format!("{ended} ended: {s:#?}"))?;
    let stored = sdk::accepted_by_backend(backend)?;
    check(stored == s.exported, || format!("the backend accepted {stored}, the client exported {}", s.exported))?;
    let side = &h.side;
    let accepted = sdk::side_stats(backend, "evaluations")?["accepted"].as_u64().unwrap_or(0);
    check(side.evaluations_sent == accepted, || format!("the backend stored {accepted} evaluations: {side:#?}"))?;
    check(side.is_balanced() && side.shutdown_completed, || format!("{side:#?}"))
}

/// 20% of requests to every endpoint hang (seeded): trace exports are held 1 s then closed
/// by the server, side-channel requests are given up by the client after 500 ms. All is
/// retried and delivered; the client's count of timeouts equals the backend's count of hangs.
#[rh::test(chaos, timeout = 180)]
fn twenty_percent_of_api_calls_time_out_at_random(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let hang = |seed: u64, ms: u64| json!({ "seed": seed, "rules": [{ "when": { "probability": 0.2 }, "action": { "kind": "hang", "ms": ms } }] });
    sdk::set_plan(&backend, "traces", &hang(2, 1_000))?;
    sdk::set_plan(&backend, "evaluations", &hang(3, 60_000))?;
    sdk::set_plan(&backend, "tags", &hang(4, 60_000))?;
    let client = sdk::reference(&backend, |c, side| {
        c.max_export_batch_size = 100;
        c.export_max_attempts = 8;
        side.evaluation_batch = 10;
        side.tag_flush_interval = Duration::from_millis(100);
        side.request_timeout = Duration::from_millis(500);
        side.retry.max_attempts = 8;
    })?;
    // Over 3 s: some 30 export requests, 30 evaluation batches and 30 tag flushes.
    traffic(&*client, "random_timeouts", 3_000, metrics);
    let h = sdk::finish(&*client, metrics);
    all_accounted(&backend, &h, 3_000)?;
    let hangs = |endpoint: &str| -> Result<u64, String> {
        Ok(sdk::ledger(&backend, endpoint)?.iter().filter(|e| e["fault"] == "hang").count() as u64)
    };
    let (traces, evaluations, tags) = (hangs("traces")?, hangs("evaluations")?, hangs("tags")?);
    metrics.set("hangs_traces", traces as f64);
    metrics.set("hangs_evaluations", evaluations as f64);
    metrics.set("hangs_tags", tags as f64);
    let (s, side) = (&h.spans, &h.side);
    check(traces > 0 && evaluations > 0 && tags > 0, || format!("hangs: {traces} {evaluations} {tags}"))?;
    check(s.exported == 3_000 && s.export_retries == traces, || {
        format!("{traces} export requests hung; the client retried {}: {s:#?}", s.export_retries)
    })?;
    let timeouts = |endpoint: &str| side.api_errors.get(&format!("{endpoint} network")).copied().unwrap_or(0);
    check(timeouts("evaluations") == evaluations && timeouts("tags") == tags, || {
        format!("hangs: {evaluations} evaluations, {tags} tags; the client timed out {:?}", side.api_errors)
    })?;
    check(side.evaluations_sent == 300 && side.tags_failed == 0 && side.tags_flushed == side.tags_buffered, || {
        format!("{side:#?}")
    })
}

/// A chaos proxy in front of `backend` (traces and side channels both through it).
struct Proxied {
    server: ProxyServer,
    traces_url: String,
    api_url: String,
}

const PROXY: &str = "sdk";

fn api<T>(r: Result<T, testbed::proxy::ApiError>) -> Result<(), String> {
    r.map(drop).map_err(|e| e.to_string())
}

fn proxied(backend: &Backend) -> Result<Proxied, String> {
    let upstream = backend.base_url().trim_start_matches("http://").to_string();
    let server = ProxyServer::start(ProxyConfig { seed: 6, ..ProxyConfig::default() }).map_err(|e| e.to_string())?;
    let listen = server.create(ProxySpec::new(PROXY, &upstream)).map_err(|e| e.to_string())?.listen;
    Ok(Proxied { server, traces_url: format!("http://{listen}/v1/traces"), api_url: format!("http://{listen}/api/v1") })
}

/// Through the proxy: normal traffic, then a partition (the proxy refusing and ending
/// connections) with traffic going on, then three stalls (data swallowed, as when packets
/// are lost, until the client gives up on the try and retries), then normal again. The
/// caller's calls are timed in each phase; every span and item ends up delivered or counted
/// failed, and the backend holds exactly what was delivered.
#[rh::test(chaos, timeout = 180)]
fn a_partition_and_stalls_through_the_chaos_proxy(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let proxy = proxied(&backend)?;
    let client = sdk::reference(&backend, |c, side| {
        c.endpoint = proxy.traces_url.clone();
        c.export_timeout_ms = 20_000;
        c.export_attempt_timeout_ms = 1_000;
        c.export_max_attempts = 10;
        side.base_url = proxy.api_url.clone();
        side.request_timeout = Duration::from_secs(1);
        side.retry.max_attempts = 10;
        side.retry.total = Duration::from_secs(20);
    })?;
    let mut ended = 0;
    traffic(&*client, "normal", 500, metrics);
    ended += 500;
    check(sdk::drained(&*client, Duration::from_secs(60)), || format!("{:#?}", client.health()))?;
    let before = client.health();

    api(proxy.server.set_enabled(PROXY, false))?;
    traffic(&*client, "partition", 500, metrics);
    ended += 500;
    // Long enough for the exports of the partition's spans to be tried and refused.
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.health().spans.export_retries == before.spans.export_retries && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    api(proxy.server.set_enabled(PROXY, true))?;
    let after_partition = client.health();

    // Three stalls: every connection swallows what is sent (as when packets are lost) until
    // the client has given up on a try and retried; then the link is clean again.
    let stall = Toxic::new(Kind::Timeout { timeout: 0 }, Stream::Upstream).named("stall");
    for round in 0..3 {
        let retries = client.health().spans.export_retries;
        api(proxy.server.add_toxic(PROXY, stall.clone()))?;
        traffic(&*client, &format!("stall_{round}"), 300, metrics);
        ended += 300;
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.health().spans.export_retries == retries && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        api(proxy.server.remove_toxic(PROXY, "stall"))?;
        check(sdk::drained(&*client, Duration::from_secs(120)), || format!("stall {round}: {:#?}", client.health()))?;
    }

    traffic(&*client, "healed", 500, metrics);
    ended += 500;
    let h = sdk::finish(&*client, metrics);
    all_accounted(&backend, &h, ended)?;
    let (records, _) = proxy.server.connections(PROXY).map_err(|e| e.to_string())?;
    let stalled = records.iter().filter(|c| c.upstream.discarded > 0).count();
    metrics.set("proxy_connections", records.len() as f64);
    metrics.set("proxy_connections_stalled", stalled as f64);
    metrics
        .set("export_retries_partition", (after_partition.spans.export_retries - before.spans.export_retries) as f64);
    metrics.set("spans_failed", h.spans.failed as f64);
    check(after_partition.spans.export_retries > before.spans.export_retries, || {
        "no export was retried during the partition".into()
    })?;
    check(stalled >= 3 && h.spans.export_retries >= after_partition.spans.export_retries + 3, || {
        format!("{stalled} stalled connections, {} retries in all", h.spans.export_retries)
    })?;
    check(h.spans.dropped == 0, || format!("{} spans dropped", h.spans.dropped))?;
    proxy.server.shutdown();
    Ok(())
}

/// `VmData` of this process, bytes (what `RLIMIT_DATA` limits).
fn vm_data() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmData:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "no VmData in /proc/self/status".into())
}

/// The process limited to 384 MiB of data beyond what it uses (`RLIMIT_DATA`, soft), the
/// exporter stalled, and 50,000 spans of 16 KB generated (800 MB unbounded): the client holds
/// its queue's 8,192 and drops the rest, counted, and the process lives. Then the limit is
/// lifted, the export released, and what was held arrives.
#[rh::test(chaos, isolation = "process", timeout = 180)]
fn memory_pressure_degrades_by_dropping_not_crashing(metrics: &rh::Metrics) -> Result<(), String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let backend = sdk::backend()?;
    let gate = ExportGate::closed();
    let client = sdk::reference(&backend, |c, side| {
        c.hooks.export_gate = Some(gate.clone());
        side.hooks.worker_gate = Some(gate.clone());
    })?;
    let (soft, hard) = getrlimit(Resource::RLIMIT_DATA).map_err(|e| format!("getrlimit: {e}"))?;
    let limit = vm_data()? + (384 << 20);
    setrlimit(Resource::RLIMIT_DATA, limit, hard).map_err(|e| format!("setrlimit: {e}"))?;
    // The limit holds: a 1 GiB allocation is refused (and the refusal is an error, not an abort).
    let refused = Vec::<u8>::new().try_reserve_exact(1 << 30).is_err();
    let heap_before = live_heap()?;
    let payload = "x".repeat(16 << 10);
    let mut evaluations = 0;
    for i in 0..50_000u64 {
        let mut span = client.span("llm.chat");
        span.set_attribute("llm.completion", AttrValue::Str(payload.clone()));
        span.end();
        if i % 10 == 0 {
            evaluations +=
                u64::from(client.evaluate(json!({ "id": format!("e{i}"), "trace_id": "t", "output": payload })));
        }
    }
    let held = live_heap()?.saturating_sub(heap_before);
    let live = client.health();
    setrlimit(Resource::RLIMIT_DATA, soft, hard).map_err(|e| format!("setrlimit: {e}"))?;
    gate.open();
    metrics.set("rlimit_data_bytes", limit as f64);
    metrics.set("heap_held_under_pressure_bytes", held as f64);
    let h = sdk::finish_overloaded(&*client, metrics);
    check(refused, || "a 1 GiB allocation succeeded under the data limit: the limit is not in force".into())?;
    check(live.spans.dropped > 40_000 && live.side.evaluations_dropped > 3_000, || format!("{live:#?}"))?;
    all_accounted(&backend, &h, 50_000)?;
    check(h.spans.dropped == 50_000 - sdk::accepted_by_backend(&backend)?, || format!("{:#?}", h.spans))?;
    check(evaluations == h.side.evaluations_sent, || format!("{evaluations} taken: {:#?}", h.side))?;
    // 8,192 queued spans of 16 KB, the 1,000 evaluations: well under the limit.
    check(held < 256 << 20, || format!("{held} heap bytes held under the data limit"))
}

/// Tries cgroup v2's `cpu.max` (5% of a CPU) for the threads: a threaded child of this
/// process's cgroup. Where that is not writable (cgroup v1, or a read-only hierarchy, as in
/// most containers) it fails and the caller falls back.
fn throttle_with_cgroup_v2(tids: &[i32]) -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).map_err(|e| e.to_string())?;
    check(controllers.split_whitespace().any(|c| c == "cpu"), || "no cpu controller".into())?;
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::")).ok_or("not on the unified hierarchy")?;
    let ours = root.join(own.trim_start_matches('/'));
    let child = ours.join(format!("reliability-throttle-{}", std::process::id()));
    let write = |file: &std::path::Path, value: &str| std::fs::write(file, value).map_err(|e| format!("{file:?}: {e}"));
    std::fs::create_dir(&child).map_err(|e| format!("{child:?}: {e}"))?;
    let moved = (|| {
        write(&child.join("cgroup.type"), "threaded")?;
        write(&ours.join("cgroup.subtree_control"), "+cpu")?;
        write(&child.join("cpu.max"), "5000 100000")?;
        tids.iter().try_for_each(|tid| write(&child.join("cgroup.threads"), &tid.to_string()))
    })();
    match moved {
        Ok(()) => Ok(child),
        Err(e) => {
            let _ = std::fs::remove_dir(&child);
            Err(e)
        }
    }
}

/// Threads of this process whose name starts with one of `prefixes`.
fn threads_named(prefixes: &[&str]) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            prefixes.iter().any(|p| comm.starts_with(p)).then(|| t.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

/// The scheduling policy of one of this process's threads (field 41 of its `stat`).
fn policy_of(tid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the command's closing parenthesis start at field 3.
    stat.rsplit_once(')')?.1.split_whitespace().nth(41 - 3)?.parse().ok()
}

/// Linux's `SCHED_IDLE`.
const SCHED_IDLE: i64 = 5;

/// The documented fallback: the threads to `SCHED_IDLE` (they run only when nothing else
/// wants the CPU), through util-linux's `chrt` (the workspace forbids `unsafe`, and so a
/// direct `sched_setscheduler`); how many now have that policy, read back from `/proc`.
fn throttle_with_sched_idle(tids: &[i32]) -> usize {
    tids.iter()
        .filter(|tid| {
            let set = std::process::Command::new("chrt")
                .args(["--idle", "--pid", "0", &tid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            set && policy_of(**tid) == Some(SCHED_IDLE)
        })
        .count()
}

/// Burns the CPU of the calling thread until `stop` or `budget` of its own CPU time.
fn hog(stop: &AtomicBool, budget: Duration) {
    use nix::time::{ClockId, clock_gettime};
    let cpu = || clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map(Duration::from).unwrap_or(Duration::MAX);
    let mut x = 0u64;
    while !stop.load(Ordering::Relaxed) && cpu() < budget {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
}

/// The export thread and the side-channel workers throttled — by cgroup v2 `cpu.max` where
/// writable, else `SCHED_IDLE` with two threads hogging both cores — while the caller ends
/// 2,000 spans: its calls are timed (`caller_*_cpu_throttled`), and once the hogs stop the
/// export catches up: nothing dropped, everything delivered.
#[rh::test(chaos, isolation = "process", timeout = 180)]
fn cpu_throttling_of_the_background_work(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |_, _| {})?;
    // Start the export thread and the workers (they exist from start-up; one export to see).
    traffic(&*client, "warm_up", 100, metrics);
    check(sdk::drained(&*client, Duration::from_secs(60)), || format!("{:#?}", client.health()))?;
    let tids = threads_named(&["OpenTelemetry", "side-"]);
    check(tids.len() >= 3, || format!("found {} background threads to throttle: {tids:?}", tids.len()))?;
    let cgroup = throttle_with_cgroup_v2(&tids);
    let throttled = match &cgroup {
        Ok(_) => tids.len(),
        Err(_) => throttle_with_sched_idle(&tids),
    };
    metrics.set("cpu_throttle_cgroup_v2", f64::from(u8::from(cgroup.is_ok())));
    metrics.set("cpu_throttled_threads", throttled as f64);
    check(throttled == tids.len(), || format!("{throttled} of {} background threads throttled", tids.len()))?;
    let stop = AtomicBool::new(false);
    let exported_before = client.health().spans.exported;
    let taken = std::thread::scope(|s| {
        if cgroup.is_err() {
            for _ in 0..2 {
                s.spawn(|| hog(&stop, Duration::from_secs(10)));
            }
        }
        let taken = traffic(&*client, "cpu_throttled", 2_000, metrics);
        stop.store(true, Ordering::Relaxed);
        taken
    });
    metrics.set("spans_exported_while_throttled", (client.health().spans.exported - exported_before) as f64);
    check(sdk::drained(&*client, Duration::from_secs(120)), || format!("never caught up: {:#?}", client.health()))?;
    let h = sdk::finish(&*client, metrics);
    if let Ok(dir) = cgroup {
        let _ = std::fs::remove_dir(dir);
    }
    all_accounted(&backend, &h, 2_100)?;
    check(h.spans.exported == 2_100 && h.spans.dropped == 0, || format!("{:#?}", h.spans))?;
    check(h.side.evaluations_sent == taken + 10, || format!("{taken} + 10 taken: {:#?}", h.side))
}

/// 32 threads end spans as fast as they can (bounded: 1,000,000 each, 120 s) while the
/// client shuts down under them; they stop only once shutdown has returned. No deadlock,
/// shutdown within its bound, and every span a thread ended is counted: before shutdown
/// (exported, failed or dropped) or after it.
#[rh::test(chaos, timeout = 180)]
fn shutdown_while_many_threads_are_ending_spans(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |c, _| c.shutdown_timeout_ms = 30_000)?;
    let stop = AtomicBool::new(false);
    let counts: Vec<AtomicU64> = (0..32).map(|_| AtomicU64::new(0)).collect();
    let (shutdown_took, during) = std::thread::scope(|s| {
        for count in &counts {
            let (client, stop) = (&client, &stop);
            s.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                for _ in 0..1_000_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    client.span("worker").end();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Every thread is ending spans before shutdown starts (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(60);
        while counts.iter().any(|c| c.load(Ordering::Relaxed) < 100) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let during = client.shutdown();
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        (took, during)
    });
    let ended: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let h = client.health();
    sdk::record_overloaded(metrics, &h);
    metrics.set("shutdown_seconds_under_32_threads", shutdown_took.as_secs_f64());
    metrics.set("spans_after_shutdown", h.spans.after_shutdown as f64);
    let s = &h.spans;
    check(counts.iter().all(|c| c.load(Ordering::Relaxed) >= 100), || "a thread never got going".into())?;
    check(during.spans.shutdown_completed, || format!("shutdown did not complete: {:#?}", during.spans))?;
    check(shutdown_took < Duration::from_secs(90), || format!("shutdown took {shutdown_took:?} with a 30 s bound"))?;
    check(s.ended + s.after_shutdown == ended && s.is_balanced(), || format!("{ended} ended by the threads: {s:#?}"))?;
    check(s.ended == during.spans.ended, || format!("spans counted ended after shutdown returned: {s:#?}"))?;
    let stored = sdk::accepted_by_backend(&backend)?;
    check(stored == s.exported, || format!("the backend accepted {stored}: {s:#?}"))
}
