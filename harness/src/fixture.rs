//! Fixtures: typed values a test asks for by taking `&T`, set up before it and torn down after.
//!
//! ```ignore
//! struct Backend { url: String }
//!
//! impl rh::Fixture for Backend {
//!     const SCOPE: rh::Scope = rh::Scope::Session;
//!     async fn setup(cx: &mut rh::Setup) -> Result<Self, rh::BoxError> {
//!         let dir = cx.get::<rh::TempDir>().await?;   // fixtures may request fixtures
//!         Ok(Backend { url: start(dir.path()).await? })
//!     }
//!     async fn teardown(&self) -> Result<(), rh::BoxError> { stop(&self.url).await }
//! }
//!
//! #[rh::test(e2e)]
//! fn delivers(backend: &Backend) { /* ... */ }
//! ```
//!
//! Rules (pytest's): setup in dependency order; teardown in reverse order, also after a failing
//! or panicking test; a fixture whose setup failed gets no teardown, but those already set up
//! still tear down; a fixture may not request one of a narrower scope; cycles are errors.
//!
//! Scopes: `Test` (fresh per test), `Suite` (per top-level module of the test name), `Session`
//! (once per process). In process isolation every test has its own process, so suite and
//! session fixtures would be set up once per test; a session fixture that sets `SHARED = true`
//! is instead set up once by the parent, on the first request from any child, and each child
//! *adopts* it from the string its [`Fixture::share`] returns. A child asks when it first
//! needs the fixture, however deep in the fixture graph that is (a test's `Tracer` needing a
//! `Project` needing the `Target`); see `Shared::provider`. The parent must know the type to
//! set it up: fixtures a test takes directly are known from the attribute, others are
//! registered with [`shared_fixture!`](crate::shared_fixture). The parent tears shared
//! fixtures down at the end of the run.
//!
//! Async setup and teardown run on one multi-threaded tokio runtime owned by the harness, so
//! tasks a fixture spawns (a server, say) live until the process ends.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::panic::panic_message;

/// The error type of fixture setup and teardown.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How long a fixture value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Set up for one test, torn down after it.
    Test,
    /// Shared by the tests of one suite (top-level module), torn down after its last test.
    Suite,
    /// Shared by the whole run, torn down before the process exits.
    Session,
}

/// A value that tests (and other fixtures) can request by type.
pub trait Fixture: Sized + Send + Sync + 'static {
    /// How long one value lives.
    const SCOPE: Scope = Scope::Test;
    /// Process isolation: set up once by the parent and handed to children (session scope only).
    const SHARED: bool = false;

    /// Creates the value. Request dependencies with [`Setup::get`].
    fn setup(cx: &mut Setup) -> impl Future<Output = Result<Self, BoxError>>;

    /// Cleans up. Runs in reverse setup order, also after a failed test.
    fn teardown(&self) -> impl Future<Output = Result<(), BoxError>> {
        async { Ok(()) }
    }

    /// `SHARED` fixtures: what a child needs to adopt this value (e.g. a URL).
    fn share(&self) -> Result<String, BoxError> {
        Err(format!("fixture {} sets SHARED but does not implement share()", short_name::<Self>()).into())
    }

    /// `SHARED` fixtures: the child's value, made from [`Fixture::share`]'s string. It is not
    /// torn down by the child; the parent tears down the original.
    fn adopt(shared: &str) -> Result<Self, BoxError> {
        let _ = shared;
        Err(format!("fixture {} sets SHARED but does not implement adopt()", short_name::<Self>()).into())
    }
}

/// The type's name without its module path, for messages.
pub fn short_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    let start = base.rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}

/// The runtime that fixture setup and teardown run on.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fixture-runtime")
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("failed to start the fixture runtime: {err}"))
    })
}

type TeardownFn = for<'a> fn(&'a (dyn Any + Send + Sync)) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + 'a>>;

fn teardown_erased<T: Fixture>(
    value: &(dyn Any + Send + Sync),
) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + '_>> {
    match value.downcast_ref::<T>() {
        Some(value) => Box::pin(value.teardown()),
        None => Box::pin(async { Err(format!("fixture store holds the wrong type for {}", short_name::<T>()).into()) }),
    }
}

struct Entry {
    name: &'static str,
    value: Arc<dyn Any + Send + Sync>,
    /// `None` for adopted values: their owner tears them down.
    teardown: Option<TeardownFn>,
}

/// The fixture values of one scope instance, in setup order.
#[derive(Default)]
pub(crate) struct Store {
    entries: Vec<Entry>,
    index: HashMap<TypeId, usize>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|e| e.name)).finish()
    }
}

impl Store {
    pub(crate) fn get<T: Fixture>(&self) -> Option<Arc<T>> {
        let entry = &self.entries[*self.index.get(&TypeId::of::<T>())?];
        entry.value.clone().downcast::<T>().ok()
    }

    fn insert<T: Fixture>(&mut self, value: Arc<T>, owned: bool) {
        self.index.insert(TypeId::of::<T>(), self.entries.len());
        let teardown = owned.then_some(teardown_erased::<T> as TeardownFn);
        self.entries.push(Entry { name: short_name::<T>(), value, teardown });
    }

    /// Tears everything down in reverse order; returns one message per failed teardown.
    pub(crate) fn teardown_all(&mut self) -> Vec<String> {
        self.teardown_within(None)
    }

    /// [`Store::teardown_all`], giving each teardown at most `bound` (on a helper thread that
    /// is abandoned past it, reported as an error): the end of a run must not wait forever
    /// on a fixture that will not stop.
    pub(crate) fn teardown_within(&mut self, bound: Option<std::time::Duration>) -> Vec<String> {
        let mut errors = Vec::new();
        self.index.clear();
        while let Some(entry) = self.entries.pop() {
            let Some(teardown) = entry.teardown else { continue };
            let (name, value) = (entry.name, entry.value);
            let run = move || {
                std::panic::catch_unwind(AssertUnwindSafe(|| runtime().block_on(teardown(&*value))))
                    .map_err(|panic| format!("teardown of fixture {name} panicked: {}", panic_message(&*panic)))?
                    .map_err(|err| format!("teardown of fixture {name} failed: {err}"))
            };
            let result = match bound {
                None => run(),
                Some(bound) => {
                    let (tx, rx) = std::sync::mpsc::channel();
                    let spawned = std::thread::Builder::new().name(format!("teardown {name}")).spawn(move || {
                        let _ = tx.send(run());
                    });
                    match spawned {
                        Ok(_) => rx.recv_timeout(bound).unwrap_or_else(|_| {
                            Err(format!("teardown of fixture {name} did not finish within {bound:?}"))
                        }),
                        Err(err) => Err(format!("teardown of fixture {name}: failed to start a thread: {err}")),
                    }
                }
            };
            errors.extend(result.err());
        }
        errors
    }
}

/// Gets the shared string of a `SHARED` session fixture (by its full type name) from the
/// process that owns it: in a child, a request to the parent.
pub(crate) type Provider = Box<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Session and suite stores of this process. Internal; public only for the macro's hooks.
#[doc(hidden)]
#[derive(Default)]
pub struct Shared {
    pub(crate) session: Mutex<Store>,
    pub(crate) suites: Mutex<HashMap<String, Store>>,
    /// Session and suite fixtures being set up now, by (type, suite), with the test setting
    /// them up; and those whose test was abandoned at its timeout mid-setup. No store lock is
    /// held during a setup, so a setup that never returns blocks nothing but its waiters, and
    /// they learn of the abandonment at once.
    setting_up: Mutex<InProgress>,
    set_up: Condvar,
    /// The run's configuration, for the [`RunConfig`] fixture.
    pub(crate) config: crate::config::Config,
    /// In a child of a process-isolated run: where `SHARED` session fixtures come from.
    /// `None` where this process owns them (the parent, thread isolation, `--exact` runs).
    pub(crate) provider: Option<Provider>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("session", &self.session)
            .field("suites", &self.suites)
            .field("provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

/// A test's claim to set up one session or suite fixture; dropping it wakes the waiters.
struct Claim<'a> {
    shared: &'a Shared,
    key: (TypeId, String),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.shared.setting_up.lock().unwrap_or_else(PoisonError::into_inner).by.remove(&self.key);
        self.shared.set_up.notify_all();
    }
}

/// See [`Shared::setting_up`].
#[derive(Debug, Default)]
struct InProgress {
    by: HashMap<(TypeId, String), String>,
    abandoned: HashMap<(TypeId, String), String>,
}

impl Shared {
    /// The test `test` was abandoned at its timeout (thread isolation): setups it had begun
    /// will never be waited for.
    pub(crate) fn abandon(&self, test: &str) {
        let mut table = self.setting_up.lock().unwrap_or_else(PoisonError::into_inner);
        let keys: Vec<_> = table.by.iter().filter(|(_, owner)| *owner == test).map(|(k, _)| k.clone()).collect();
        for key in keys {
            table.by.remove(&key);
            table.abandoned.insert(key, test.to_string());
        }
        self.set_up.notify_all();
    }

    /// The stores of a process that owns its fixtures.
    pub(crate) fn new(config: crate::config::Config) -> Shared {
        Shared { config, ..Shared::default() }
    }

    /// The stores of a child, whose `SHARED` session fixtures come from `provider`.
    pub(crate) fn with_provider(config: crate::config::Config, provider: Option<Provider>) -> Shared {
        Shared { config, provider, ..Shared::default() }
    }

    pub(crate) fn lock_session(&self) -> MutexGuard<'_, Store> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_suites(&self) -> MutexGuard<'_, HashMap<String, Store>> {
        self.suites.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fixture type as the registry knows it: enough to share it without naming the type.
#[derive(Clone, Copy, Debug)]
pub struct FixtureRef {
    /// `std::any::type_name` of the fixture: the key a child asks the parent by.
    pub type_name: fn() -> &'static str,
    /// Whether it is a `SHARED` session fixture.
    pub shared: fn() -> bool,
    /// Sets it up in this process (once) and returns its shared string.
    pub share: fn(&Shared) -> Result<String, String>,
}

impl FixtureRef {
    /// The entry for `T`.
    pub const fn of<T: Fixture>() -> FixtureRef {
        FixtureRef { type_name: std::any::type_name::<T>, shared: is_shared::<T>, share: share_from_parent::<T> }
    }
}

fn is_shared<T: Fixture>() -> bool {
    T::SHARED && T::SCOPE == Scope::Session
}

/// A `SHARED` session fixture registered with [`shared_fixture!`](crate::shared_fixture), so
/// that the parent can set it up when a child reaches it only through other fixtures.
#[derive(Debug)]
pub struct SharedFixture(pub FixtureRef);

/// Every [`shared_fixture!`](crate::shared_fixture) of the binary, gathered by the linker.
#[linkme::distributed_slice]
pub static SHARED_FIXTURES: [SharedFixture];

/// Registers a `SHARED` session fixture with the parent process, so that children can adopt
/// it even when no test takes it directly (a test takes `&Tracer`, whose setup asks for the
/// shared `&Target`). Write it once, beside the fixture's `impl`:
///
/// ```ignore
/// reliability_harness::shared_fixture!(Target);
/// ```
///
/// A child that reaches an unregistered shared fixture fails that test's setup with an error
/// naming this macro, rather than quietly setting up a private copy.
#[macro_export]
macro_rules! shared_fixture {
    ($fixture:ty) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::SHARED_FIXTURES)]
            #[linkme(crate = $crate::__private::linkme)]
            static SHARED_FIXTURE: $crate::__private::SharedFixture =
                $crate::__private::SharedFixture($crate::__private::FixtureRef::of::<$fixture>());
        };
    };
}

/// Resolves fixtures for one test (or, in the parent, for shared session fixtures).
///
/// Holds the session and suite stores locked while it is in use, so that two tests of a
/// thread-mode run never set up the same session fixture twice.
pub struct Setup<'a> {
    shared: &'a Shared,
    suite: &'a str,
    pub(crate) test: Store,
    /// Fixtures being set up, outermost first, for cycle and scope checks.
    stack: Vec<(TypeId, &'static str, Scope)>,
    /// The first fixture whose setup failed, and why.
    pub(crate) failure: Option<String>,
}

impl std::fmt::Debug for Setup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup").field("suite", &self.suite).field("test", &self.test).finish_non_exhaustive()
    }
}

impl<'a> Setup<'a> {
    pub(crate) fn new(shared: &'a Shared, suite: &'a str) -> Setup<'a> {
        Setup { shared, suite, test: Store::default(), stack: Vec::new(), failure: None }
    }

    /// `T` if its scope has it already. Locks a store only for the lookup.
    fn lookup<T: Fixture>(&self) -> Option<Arc<T>> {
        match T::SCOPE {
            Scope::Test => self.test.get::<T>(),
            Scope::Session => self.shared.lock_session().get::<T>(),
            Scope::Suite => self.shared.lock_suites().get(self.suite).and_then(Store::get::<T>),
        }
    }

    fn insert<T: Fixture>(&mut self, scope: Scope, value: Arc<T>, owned: bool) {
        match scope {
            Scope::Test => self.test.insert(value, owned),
            Scope::Session => self.shared.lock_session().insert(value, owned),
            Scope::Suite => self.shared.lock_suites().entry(self.suite.to_string()).or_default().insert(value, owned),
        }
    }

    /// The key of `T` in the in-progress table.
    fn key<T: Fixture>(&self) -> (TypeId, String) {
        let suite = if T::SCOPE == Scope::Suite { self.suite.to_string() } else { String::new() };
        (TypeId::of::<T>(), suite)
    }

    /// For a session or suite fixture: `Ok(Some(value))` when another test set it up while
    /// this one waited; `Ok(None)` when this test is now the one to set it up.
    fn claim<T: Fixture>(&mut self) -> Result<Option<Arc<T>>, BoxError> {
        let key = self.key::<T>();
        let mut table = self.shared.setting_up.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(value) = self.lookup::<T>() {
                return Ok(Some(value));
            }
            if let Some(test) = table.abandoned.get(&key) {
                let message = format!(
                    "fixture {} is not available: its setup did not finish before test {test} timed out",
                    short_name::<T>()
                );
                drop(table);
                return Err(self.fail(message));
            }
            if let std::collections::hash_map::Entry::Vacant(free) = table.by.entry(key.clone()) {
                free.insert(current_test().unwrap_or_default());
                return Ok(None);
            }
            table = self.shared.set_up.wait(table).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The fixture `T`, set up now if this scope does not have it yet.
    pub async fn get<T: Fixture>(&mut self) -> Result<Arc<T>, BoxError> {
        let name = short_name::<T>();
        if let Some(value) = self.lookup::<T>() {
            return Ok(value);
        }
        if let Some(pos) = self.stack.iter().position(|(id, ..)| *id == TypeId::of::<T>()) {
            let cycle: Vec<&str> = self.stack[pos..].iter().map(|(_, n, _)| *n).chain([name]).collect();
            return Err(self.fail(format!("fixture cycle: {}", cycle.join(" -> "))));
        }
        if let Some((_, requester, scope)) = self.stack.last()
            && T::SCOPE < *scope
        {
            return Err(self.fail(format!(
                "{scope:?}-scoped fixture {requester} requested {:?}-scoped fixture {name}; \
                     a fixture may only use fixtures of the same or a wider scope",
                T::SCOPE
            )));
        }
        if let (true, Some(provider)) = (is_shared::<T>(), &self.shared.provider) {
            let adopted = provider(std::any::type_name::<T>())
                .and_then(|text| T::adopt(&text).map_err(|e| format!("adopt: {e}")))
                .map_err(|e| self.fail(format!("fixture {name} (shared by the parent process): {e}")))?;
            let value = Arc::new(adopted);
            self.insert(Scope::Session, value.clone(), false);
            return Ok(value);
        }
        // A session or suite fixture is set up by one test at a time; the claim is given up
        // when this scope ends, whether the setup succeeded, failed or panicked.
        let _claim = match T::SCOPE {
            Scope::Test => None,
            _ => match self.claim::<T>()? {
                Some(value) => return Ok(value),
                None => Some(Claim { shared: self.shared, key: self.key::<T>() }),
            },
        };
        self.stack.push((TypeId::of::<T>(), name, T::SCOPE));
        let result = Box::pin(T::setup(self)).await;
        self.stack.pop();
        match result {
            Ok(value) => {
                let value = Arc::new(value);
                self.insert(T::SCOPE, value.clone(), true);
                Ok(value)
            }
            Err(err) => Err(self.fail(format!("fixture {name} failed in setup: {err}"))),
        }
    }

    /// Records the first failure (the innermost fixture that failed) and returns an error.
    fn fail(&mut self, message: String) -> BoxError {
        if self.failure.is_none() {
            self.failure = Some(message.clone());
        }
        message.into()
    }
}

/// Sets up (once) a shared session fixture in this process and returns its shared string.
pub(crate) fn share_from_parent<T: Fixture>(shared: &Shared) -> Result<String, String> {
    if !is_shared::<T>() {
        return Err(format!("fixture {} is not a SHARED session fixture", short_name::<T>()));
    }
    let mut setup = Setup::new(shared, "");
    let value = std::panic::catch_unwind(AssertUnwindSafe(|| runtime().block_on(setup.get::<T>())))
        .map_err(|panic| format!("fixture {} panicked in setup: {}", short_name::<T>(), panic_message(&*panic)))?
        .map_err(|err| setup.failure.clone().unwrap_or_else(|| err.to_string()))?;
    value.share().map_err(|e| format!("fixture {} share: {e}", short_name::<T>()))
}

thread_local! {
    /// Whether a test runs on this thread, and its name (the buffer is kept from test to test).
    static CURRENT_TEST: std::cell::RefCell<(bool, String)> = const { std::cell::RefCell::new((false, String::new())) };
}

/// The name of the test running on this thread (`module::function[case]`), as in `--list`.
///
/// `None` outside a test. `async` tests run on a current-thread runtime on the test's thread,
/// so this works there too; threads the test spawns itself do not inherit it.
pub fn current_test() -> Option<String> {
    CURRENT_TEST.with(|c| {
        let current = c.borrow();
        current.0.then(|| current.1.clone())
    })
}

/// Sets the current test for the life of the guard (also when the test panics).
pub(crate) struct CurrentTest;

impl CurrentTest {
    pub(crate) fn enter(name: &str) -> CurrentTest {
        CURRENT_TEST.with(|c| {
            let mut current = c.borrow_mut();
            current.1.clear();
            current.1.push_str(name);
            current.0 = true;
        });
        CurrentTest
    }
}

impl Drop for CurrentTest {
    fn drop(&mut self) {
        CURRENT_TEST.with(|c| c.borrow_mut().0 = false);
    }
}

/// A per-test temporary directory, removed at teardown. Made by the `tempfile` crate: a
/// fresh, unpredictable name, created with mode 0700, never an existing directory.
#[derive(Debug)]
pub struct TempDir {
    dir: Mutex<Option<tempfile::TempDir>>,
    path: std::path::PathBuf,
}

impl TempDir {
    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Fixture for TempDir {
    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        let test = current_test().unwrap_or_default();
        let slug: String = test.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).take(60).collect();
        let dir = tempfile::Builder::new()
            .prefix(&format!("reliability-{slug}-"))
            .tempdir()
            .map_err(|e| format!("failed to create a temporary directory: {e}"))?;
        Ok(TempDir { path: dir.path().to_path_buf(), dir: Mutex::new(Some(dir)) })
    }

    async fn teardown(&self) -> Result<(), BoxError> {
        match self.dir.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(dir) => dir.close().map_err(|e| format!("failed to remove {}: {e}", self.path.display()).into()),
            None => Ok(()),
        }
    }
}

/// The run's configuration (`reliability.toml` after defaults), as a session fixture.
#[derive(Debug)]
pub struct RunConfig(pub crate::config::Config);

impl Fixture for RunConfig {
    const SCOPE: Scope = Scope::Session;

    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        Ok(RunConfig(cx.shared.config.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static FAIL_B: AtomicUsize = AtomicUsize::new(0);

    fn log(s: String) {
        LOG.lock().unwrap().push(s);
    }

    struct A;
    struct B(#[expect(dead_code, reason = "holds A alive like a real dependent")] Arc<A>);
    struct C(Arc<B>);
    struct Sess;
    struct BadScope;
    struct Cyc1;
    struct Cyc2;

    impl Fixture for A {
        async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
            log("setup A".into());
            Ok(A)
        }
        async fn teardown(&self) -> Result<(), BoxError> {
            log("teardown A".into());
            Ok(())
        }
    }
    impl Fixture for B {
        async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
            let a = cx.get::<A>().await?;
            if FAIL_B.load(Ordering::SeqCst) == 1 {
                return Err("no B today".into());
            }
            log("setup B".into());
            Ok(B(a))
        }
        async fn teardown(&self) -> Result<(), BoxError> {
            log("teardown B".into());
            Err("B teardown broke".into())
        }
    }
    impl Fixture for C {
        async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
            let b = cx.get::<B>().await?;
            log("setup C".into());
            Ok(C(b))
        }
        async fn teardown(&self) -> Result<(), BoxError> {
            log("teardown C".into());
            Ok(())
        }
    }
    impl Fixture for Sess {
        const SCOPE: Scope = Scope::Session;
        async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
            log("setup Sess".into());
            Ok(Sess)
        }
    }
    impl Fixture for BadScope {
        const SCOPE: Scope = Scope::Session;
        async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
            cx.get::<A>().await?;
            Ok(BadScope)
        }
    }
    impl Fixture for Cyc1 {
        async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
            cx.get::<Cyc2>().await?;
            Ok(Cyc1)
        }
    }
    impl Fixture for Cyc2 {
        async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
            cx.get::<Cyc1>().await?;
            Ok(Cyc2)
        }
    }

    /// One test, as the fixture tests in this module share LOG and FAIL_B.
    #[test]
    fn dependency_order_reverse_teardown_failures_scope_and_cycles() {
        let shared = Shared::default();

        // Dependency order, reverse teardown, a failing teardown reported and not swallowed.
        let mut setup = Setup::new(&shared, "suite");
        let c = runtime().block_on(setup.get::<C>()).unwrap();
        assert!(Arc::ptr_eq(&c.0, &runtime().block_on(setup.get::<B>()).unwrap()), "one B per test");
        drop(c);
        let errors = setup.test.teardown_all();
        assert_eq!(errors, ["teardown of fixture B failed: B teardown broke"]);
        assert_eq!(
            std::mem::take(&mut *LOG.lock().unwrap()),
            ["setup A", "setup B", "setup C", "teardown C", "teardown B", "teardown A"]
        );

        // A failed setup: no teardown for it, but what was set up still tears down.
        FAIL_B.store(1, Ordering::SeqCst);
        let mut setup = Setup::new(&shared, "suite");
        let err = runtime().block_on(setup.get::<C>()).err().unwrap().to_string();
        assert_eq!(err, "fixture C failed in setup: fixture B failed in setup: no B today");
        assert_eq!(setup.failure.as_deref(), Some("fixture B failed in setup: no B today"));
        assert!(setup.test.teardown_all().is_empty());
        assert_eq!(std::mem::take(&mut *LOG.lock().unwrap()), ["setup A", "teardown A"]);
        FAIL_B.store(0, Ordering::SeqCst);

        // Session fixtures are set up once across tests.
        for _ in 0..2 {
            let mut setup = Setup::new(&shared, "other");
            runtime().block_on(setup.get::<Sess>()).unwrap();
        }
        assert_eq!(std::mem::take(&mut *LOG.lock().unwrap()), ["setup Sess"]);

        let mut setup = Setup::new(&shared, "suite");
        let err = runtime().block_on(setup.get::<BadScope>()).err().unwrap().to_string();
        assert!(err.contains("Session-scoped fixture BadScope requested Test-scoped fixture A"), "{err}");
        let err = runtime().block_on(setup.get::<Cyc1>()).err().unwrap().to_string();
        assert!(err.contains("fixture cycle: Cyc1 -> Cyc2 -> Cyc1"), "{err}");
    }

    #[test]
    fn short_names_drop_the_module_path() {
        assert_eq!(short_name::<TempDir>(), "TempDir");
        assert_eq!(short_name::<Vec<u8>>(), "Vec<u8>");
    }
}
