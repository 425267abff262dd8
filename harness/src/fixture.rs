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
//! is instead set up once by the parent, and each child *adopts* it from the string its
//! [`Fixture::share`] returns (see the README's "Sharing session fixtures"). The parent tears
//! it down at the end of the run.
//!
//! Async setup and teardown run on one multi-threaded tokio runtime owned by the harness, so
//! tasks a fixture spawns (a server, say) live until the process ends.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

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
        let mut errors = Vec::new();
        self.index.clear();
        while let Some(entry) = self.entries.pop() {
            let Some(teardown) = entry.teardown else { continue };
            let value = &*entry.value;
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| runtime().block_on(teardown(value))));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(err)) => errors.push(format!("teardown of fixture {} failed: {err}", entry.name)),
                Err(panic) => errors.push(format!(
                    "teardown of fixture {} panicked: {}",
                    entry.name,
                    crate::execute::panic_message(&*panic)
                )),
            }
        }
        errors
    }
}

/// Session and suite stores of this process. Internal; public only for the macro's hooks.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Shared {
    pub(crate) session: Mutex<Store>,
    pub(crate) suites: Mutex<HashMap<String, Store>>,
    /// Handed over by the parent (`RELIABILITY_SHARED`): fixture name → shared string.
    pub(crate) adopted: HashMap<String, String>,
}

impl Shared {
    pub(crate) fn lock_session(&self) -> MutexGuard<'_, Store> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_suites(&self) -> MutexGuard<'_, HashMap<String, Store>> {
        self.suites.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Resolves fixtures for one test (or, in the parent, for shared session fixtures).
///
/// Holds the session and suite stores locked while it is in use, so that two tests of a
/// thread-mode run never set up the same session fixture twice.
pub struct Setup<'a> {
    shared: &'a Shared,
    suite: String,
    session: Option<MutexGuard<'a, Store>>,
    suites: Option<MutexGuard<'a, HashMap<String, Store>>>,
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
    pub(crate) fn new(shared: &'a Shared, suite: &str) -> Setup<'a> {
        Setup {
            shared,
            suite: suite.to_string(),
            session: None,
            suites: None,
            test: Store::default(),
            stack: Vec::new(),
            failure: None,
        }
    }

    fn store(&mut self, scope: Scope) -> &mut Store {
        match scope {
            Scope::Test => &mut self.test,
            Scope::Session => self.session.get_or_insert_with(|| self.shared.lock_session()),
            Scope::Suite => {
                // Lock order is always session, then suites: two threads can never wait on
                // each other's store.
                if self.session.is_none() {
                    self.session = Some(self.shared.lock_session());
                }
                let suites = self.suites.get_or_insert_with(|| self.shared.lock_suites());
                suites.entry(self.suite.clone()).or_default()
            }
        }
    }

    /// The fixture `T`, set up now if this scope does not have it yet.
    pub async fn get<T: Fixture>(&mut self) -> Result<Arc<T>, BoxError> {
        let name = short_name::<T>();
        if let Some(value) = self.store(T::SCOPE).get::<T>() {
            return Ok(value);
        }
        if let Some(pos) = self.stack.iter().position(|(id, ..)| *id == TypeId::of::<T>()) {
            let cycle: Vec<&str> = self.stack[pos..].iter().map(|(_, n, _)| *n).chain([name]).collect();
            return Err(self.fail(format!("fixture cycle: {}", cycle.join(" -> "))));
        }
        if let Some((_, requester, scope)) = self.stack.last() {
            if T::SCOPE < *scope {
                return Err(self.fail(format!(
                    "{scope:?}-scoped fixture {requester} requested {:?}-scoped fixture {name}; \
                     a fixture may only use fixtures of the same or a wider scope",
                    T::SCOPE
                )));
            }
        }
        if T::SHARED && T::SCOPE == Scope::Session {
            if let Some(shared) = self.shared.adopted.get(name).cloned() {
                let value = Arc::new(T::adopt(&shared).map_err(|e| self.fail(format!("fixture {name} adopt: {e}")))?);
                self.store(Scope::Session).insert(value.clone(), false);
                return Ok(value);
            }
        }
        self.stack.push((TypeId::of::<T>(), name, T::SCOPE));
        let result = Box::pin(T::setup(self)).await;
        self.stack.pop();
        match result {
            Ok(value) => {
                let value = Arc::new(value);
                self.store(T::SCOPE).insert(value.clone(), true);
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

    /// Releases the locks on the session and suite stores.
    pub(crate) fn release(&mut self) {
        self.session = None;
        self.suites = None;
    }
}

/// Sets up a shared session fixture in the parent and returns `(name, shared string)`.
pub(crate) fn share_from_parent<T: Fixture>(shared: &Shared) -> Result<Option<(&'static str, String)>, String> {
    if !(T::SHARED && T::SCOPE == Scope::Session) {
        return Ok(None);
    }
    let mut setup = Setup::new(shared, "");
    let value = std::panic::catch_unwind(AssertUnwindSafe(|| runtime().block_on(setup.get::<T>())))
        .map_err(|panic| {
            format!("fixture {} panicked in setup: {}", short_name::<T>(), crate::execute::panic_message(&*panic))
        })?
        .map_err(|err| setup.failure.clone().unwrap_or_else(|| err.to_string()))?;
    let text = value.share().map_err(|e| format!("fixture {} share: {e}", short_name::<T>()))?;
    Ok(Some((short_name::<T>(), text)))
}

/// A per-test temporary directory, removed at teardown.
#[derive(Debug)]
pub struct TempDir {
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
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let test = crate::current_test().unwrap_or_default();
        let slug: String = test.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).take(60).collect();
        let path = std::env::temp_dir().join(format!(
            "reliability-{}-{}-{slug}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).map_err(|e| format!("failed to create {}: {e}", path.display()))?;
        Ok(TempDir { path })
    }

    async fn teardown(&self) -> Result<(), BoxError> {
        std::fs::remove_dir_all(&self.path).map_err(|e| format!("failed to remove {}: {e}", self.path.display()).into())
    }
}

/// The run's configuration (`reliability.toml` after defaults), as a session fixture.
#[derive(Debug)]
pub struct RunConfig(pub crate::config::Config);

impl Fixture for RunConfig {
    const SCOPE: Scope = Scope::Session;

    async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        Ok(RunConfig(crate::run::loaded_config().cloned().unwrap_or_default()))
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
