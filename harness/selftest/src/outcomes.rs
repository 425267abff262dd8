//! A fixture suite where every test has a known, mostly bad, outcome: panics, aborts,
//! segfaults, stack overflows, hangs, memory-limit breaches, flaky and xfail tests, runtime
//! skips, fixtures failing in setup and in teardown. `tests/outcomes.rs` runs it and asserts
//! the outcome reported for each, that the run goes on past every one, and (through files in
//! `$OUTCOME_STATE_DIR`) that teardown ran where it must.
//!
//! Never run by `cargo test` itself: it is a binary, not a test target.

use std::path::PathBuf;

use reliability_harness as rh;
use rh::{BoxError, Fixture, Scope, Setup};

/// `$OUTCOME_STATE_DIR`, where tests and fixtures leave evidence.
fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("OUTCOME_STATE_DIR").expect("OUTCOME_STATE_DIR is set by the test"))
}

fn append(file: &str, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(state_dir().join(file)).expect("open state");
    f.write_all(format!("{line}\n").as_bytes()).expect("write state");
}

/// Sets up fine; its teardown leaves `teardown-Recorded` behind, naming the test.
struct Recorded;

impl Fixture for Recorded {
    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        Ok(Recorded)
    }
    async fn teardown(&self) -> Result<(), BoxError> {
        append("teardown-Recorded", &rh::current_test().unwrap_or_default());
        Ok(())
    }
}

/// Needs `Recorded`, then fails in setup: `Recorded` must still be torn down.
struct Broken;

impl Fixture for Broken {
    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        cx.get::<Recorded>().await?;
        Err("the database is on fire".into())
    }
    async fn teardown(&self) -> Result<(), BoxError> {
        append("teardown-Broken", "must never happen");
        Ok(())
    }
}

/// Its teardown fails.
struct BadTeardown;

impl Fixture for BadTeardown {
    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        Ok(BadTeardown)
    }
    async fn teardown(&self) -> Result<(), BoxError> {
        Err("could not delete the project".into())
    }
}

/// An async fixture: sleeps on the fixture runtime, spawns a task that outlives setup.
struct Ticker {
    ticks: tokio::sync::watch::Receiver<u64>,
}

impl Fixture for Ticker {
    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (tx, ticks) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            for n in 1.. {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                if tx.send(n).is_err() {
                    break;
                }
            }
        });
        Ok(Ticker { ticks })
    }
}

/// A session fixture shared by the parent with its children: set up once per run.
struct Service {
    token: String,
}

impl Fixture for Service {
    const SCOPE: Scope = Scope::Session;
    const SHARED: bool = true;

    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        let token = format!("service-of-{}", std::process::id());
        append("service-setup", &token);
        Ok(Service { token })
    }
    async fn teardown(&self) -> Result<(), BoxError> {
        append("service-teardown", &self.token);
        Ok(())
    }
    fn share(&self) -> Result<String, BoxError> {
        Ok(self.token.clone())
    }
    fn adopt(shared: &str) -> Result<Self, BoxError> {
        Ok(Service { token: shared.to_string() })
    }
}

/// A shared session fixture that no test takes directly: tests reach it only through
/// `DepotClient` (one level) or `DepotUser` (two levels), as the suites' `Tracer` reaches
/// `Target` through `Project`. Registered so that the parent can set it up.
struct Depot {
    token: String,
}

rh::shared_fixture!(Depot);

impl Fixture for Depot {
    const SCOPE: Scope = Scope::Session;
    const SHARED: bool = true;

    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        let token = format!("depot-of-{}", std::process::id());
        append("depot-setup", &token);
        Ok(Depot { token })
    }
    async fn teardown(&self) -> Result<(), BoxError> {
        append("depot-teardown", &self.token);
        Ok(())
    }
    fn share(&self) -> Result<String, BoxError> {
        Ok(self.token.clone())
    }
    fn adopt(shared: &str) -> Result<Self, BoxError> {
        Ok(Depot { token: shared.to_string() })
    }
}

struct DepotClient {
    depot: std::sync::Arc<Depot>,
}

impl Fixture for DepotClient {
    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        Ok(DepotClient { depot: cx.get::<Depot>().await? })
    }
}

struct DepotUser {
    client: std::sync::Arc<DepotClient>,
}

impl Fixture for DepotUser {
    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        Ok(DepotUser { client: cx.get::<DepotClient>().await? })
    }
}

/// A shared session fixture that is *not* registered and reached only through `StrayClient`:
/// in a child, the parent cannot set it up, and the test must error rather than quietly set
/// up a private copy. (Thread isolation needs no parent: it passes there.)
struct Stray;

impl Fixture for Stray {
    const SCOPE: Scope = Scope::Session;
    const SHARED: bool = true;

    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        append("stray-setup", &std::process::id().to_string());
        Ok(Stray)
    }
    fn share(&self) -> Result<String, BoxError> {
        Ok(String::new())
    }
    fn adopt(_shared: &str) -> Result<Self, BoxError> {
        Ok(Stray)
    }
}

struct StrayClient;

impl Fixture for StrayClient {
    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        cx.get::<Stray>().await?;
        Ok(StrayClient)
    }
}

fn stall(name: &str) {
    if std::env::var_os("OUTCOME_STALL").is_some() {
        append(&format!("{name}-pid"), &std::process::id().to_string());
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

/// With `OUTCOME_STUCK_SETUP=1`, a session fixture whose setup never returns.
struct StuckSession;

impl Fixture for StuckSession {
    const SCOPE: Scope = Scope::Session;
    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        if std::env::var_os("OUTCOME_STUCK_SETUP").is_some() {
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
        Ok(StuckSession)
    }
}

/// The same for a fixture the parent shares with its children.
struct StuckShared;

impl Fixture for StuckShared {
    const SCOPE: Scope = Scope::Session;
    const SHARED: bool = true;
    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        if std::env::var_os("OUTCOME_STUCK_SETUP").is_some() {
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
        Ok(StuckShared)
    }
    fn share(&self) -> Result<String, BoxError> {
        Ok(String::new())
    }
    fn adopt(_shared: &str) -> Result<Self, BoxError> {
        Ok(StuckShared)
    }
}

/// A suite fixture: once per suite in a thread-mode run.
struct PerSuite;

impl Fixture for PerSuite {
    const SCOPE: Scope = Scope::Suite;
    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        append("suite-setup", "x");
        Ok(PerSuite)
    }
    async fn teardown(&self) -> Result<(), BoxError> {
        append("suite-teardown", "x");
        Ok(())
    }
}

mod outcomes {
    use super::*;

    #[rh::test]
    fn passes() {
        println!("output of a passing test is not shown");
        // A traced run hands each attempt's process its span (tests/tracing.rs checks it).
        if let Ok(traceparent) = std::env::var("TRACEPARENT") {
            append("traceparent", &traceparent);
        }
    }

    #[rh::test]
    fn fails_assert() {
        println!("printed before the failure");
        assert_eq!(1 + 1, 3, "arithmetic is broken");
    }

    #[rh::test]
    fn returns_err() -> Result<(), String> {
        Err("the backend said 503".into())
    }

    #[rh::test]
    fn aborts() {
        std::process::abort();
    }

    #[rh::test]
    fn segfaults() {
        #[expect(unsafe_code, reason = "the point of this fixture test is to dereference null")]
        unsafe {
            std::ptr::null_mut::<u64>().write_volatile(42);
        }
    }

    #[rh::test]
    fn overflows_stack() {
        #[expect(unconditional_recursion, reason = "overflowing the stack is the point")]
        fn recurse(depth: u64) -> u64 {
            let pad = std::hint::black_box([depth; 64]);
            recurse(depth + 1) + pad[0]
        }
        std::hint::black_box(recurse(0));
    }

    #[rh::test(timeout = 1)]
    fn hangs() {
        append("hangs-pid", &std::process::id().to_string());
        println!("about to hang");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }

    /// With `OUTCOME_GIGABYTE=1`, prints 1 GiB and fails (failing tests show their output).
    /// Otherwise it passes at once.
    #[rh::test]
    fn prints_a_gigabyte() {
        if std::env::var_os("OUTCOME_GIGABYTE").is_some() {
            use std::io::Write;
            let line = [b'x'; 1023];
            let mut out = std::io::stdout().lock();
            let mut printed = 0u64;
            let mut print = |bytes: &[u8]| {
                out.write_all(bytes).expect("stdout");
                printed += bytes.len() as u64;
            };
            print(b"first line\n");
            for _ in 0..(1 << 20) {
                print(&line);
                print(b"\n");
            }
            print(b"last line\n");
            drop(out);
            // Counted where it was printed, so the parent's count can be checked against it.
            append("gigabyte-printed", &printed.to_string());
            panic!("printed a gigabyte");
        }
    }

    /// Hangs on its first attempt and passes its retry: in thread isolation the watchdog gives
    /// the first attempt up at its deadline and another worker runs the retry (the hung thread
    /// sleeps on, abandoned); in process isolation the child is killed. Each attempt that
    /// started leaves a line, so the two are counted where they happen.
    #[rh::test(timeout = 1, retries = 1)]
    fn hangs_once() {
        let file = state_dir().join("hangs-once");
        let earlier = std::fs::read_to_string(&file).map(|s| s.lines().count()).unwrap_or(0);
        append("hangs-once", &format!("{:?}", std::thread::current().id()));
        if earlier == 0 {
            std::thread::sleep(std::time::Duration::from_secs(120));
        }
    }

    #[rh::test(timeout = 1)]
    fn stuck_setup_first(_s: &StuckSession) {}

    #[rh::test(timeout = 1)]
    fn stuck_setup_second(_s: &StuckSession) {}

    #[rh::test]
    fn stuck_shared_setup(_s: &StuckShared) {}

    /// With `OUTCOME_STALL=1`, stalls for ten minutes (no timeout of its own): the interrupt
    /// and orphan tests stop it. Otherwise it passes at once.
    #[rh::test]
    fn stall_process() {
        stall("stall_process");
    }

    /// The same in a thread of the run's own process, which no interrupt can stop.
    #[rh::test(isolation = "thread")]
    fn stall_thread() {
        stall("stall_thread");
    }

    #[rh::test(memory_limit_mb = 64)]
    fn exceeds_memory() {
        let mut v: Vec<u8> = Vec::with_capacity(512 << 20);
        v.resize(512 << 20, 1);
        std::hint::black_box(&v);
    }

    /// Fails on its first attempt (no marker file yet), passes on the retry.
    #[rh::test(retries = 1)]
    fn flaky_once() {
        let marker = state_dir().join("flaky-once-attempted");
        if !marker.exists() {
            std::fs::write(&marker, "1").expect("write the marker");
            panic!("first attempt fails");
        }
    }

    #[rh::test(xfail = "known bug #12")]
    fn xfail_fails() {
        panic!("still broken");
    }

    #[rh::test(xfail = "known bug #13")]
    fn xfail_passes() {}

    #[rh::test(xfail_strict = "must fail until #14 lands")]
    fn xfail_strict_passes() {}

    #[rh::test]
    fn skips_at_runtime() {
        rh::skip("no staging credentials in this environment");
    }

    #[rh::test(skip_if(cfg!(unix), "not on unix"))]
    fn skip_if_unix() {
        panic!("must not run");
    }

    #[rh::test]
    fn fixture_setup_fails(_recorded: &Recorded, _broken: &Broken) {
        append("body-ran", "fixture_setup_fails");
    }

    #[rh::test]
    fn teardown_fails(_bad: &BadTeardown) {}

    #[rh::test]
    fn panics_with_fixture(_recorded: &Recorded) {
        panic!("boom after setup");
    }

    #[rh::test]
    async fn async_fixture_and_test(ticker: &Ticker) {
        let mut ticks = ticker.ticks.clone();
        // The fixture's task keeps running on the fixture runtime while the test awaits.
        ticks.changed().await.expect("the ticker task is alive");
        ticks.changed().await.expect("the ticker task is alive");
        assert!(*ticks.borrow() >= 2);
    }

    #[rh::test]
    fn uses_service_a(service: &Service) {
        append("service-used", &service.token);
    }

    #[rh::test]
    fn uses_service_b(service: &Service) {
        append("service-used", &service.token);
    }

    #[rh::test]
    fn depot_through_a_client(client: &DepotClient) {
        append("depot-used", &client.depot.token);
    }

    #[rh::test]
    fn depot_two_fixtures_deep(user: &DepotUser) {
        append("depot-used", &user.client.depot.token);
    }

    #[rh::test]
    fn stray_shared_fixture_unregistered(_client: &StrayClient) {}

    #[rh::test]
    fn suite_fixture_a(_s: &PerSuite) {}

    #[rh::test]
    fn suite_fixture_b(_s: &PerSuite) {}

    #[rh::test]
    fn tmp_dir_is_fresh(tmp: &rh::TempDir) {
        assert!(tmp.path().is_dir());
        assert_eq!(std::fs::read_dir(tmp.path()).expect("read the temp dir").count(), 0);
        append("tmp-dirs", &tmp.path().display().to_string());
    }
}

fn main() -> std::process::ExitCode {
    rh::main()
}
