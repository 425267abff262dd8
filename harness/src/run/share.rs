//! Shared session fixtures across processes: the parent's side ([`ShareServer`]) and the
//! child's ([`provider`]).
//!
//! A process-isolated child that first needs a `SHARED` session fixture — directly or through
//! any chain of other fixtures — connects to the parent's Unix socket
//! (`RELIABILITY_SHARE_SOCKET`) and sends the fixture's type name on one line. The parent sets
//! the fixture up in its own session store on the first request, caches the answer (the shared
//! string, or the setup error: like pytest, a failed session fixture is not set up again for
//! every test) and replies with one JSON line. The child adopts the value and never tears it
//! down; the parent tears it down at the end of the run.
//!
//! The parent knows a fixture type from the tests that take it directly and from
//! [`shared_fixture!`](crate::shared_fixture) registrations. The socket lives in a private
//! temporary directory (mode 0700) that is removed with the server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::fixture::{FixtureRef, Provider, Shared};
use crate::registry::TestCase;

/// Set in a child: the parent's socket for shared session fixtures.
pub(crate) const SHARE_SOCKET_ENV: &str = "RELIABILITY_SHARE_SOCKET";

/// The longest request line the parent reads: a type name.
const MAX_REQUEST: u64 = 4096;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Shared(String),
    Error(String),
}

/// What the parent can share, and what it has shared.
struct Catalogue {
    shared: Arc<Shared>,
    known: HashMap<&'static str, FixtureRef>,
    /// Answers by type name; `None` while the setup runs (on a thread of its own).
    answers: Mutex<HashMap<String, Option<Result<String, String>>>>,
    answered: Condvar,
    /// How long a request waits for a setup.
    bound: Duration,
}

impl Catalogue {
    /// The answer for `type_name`: set up on the first request; every request waits at most
    /// the bound, so a setup that never returns costs each waiting child an error, not a hang.
    fn answer(self: &Arc<Self>, type_name: &str) -> Result<String, String> {
        let deadline = Instant::now() + self.bound;
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if !answers.contains_key(type_name) {
            answers.insert(type_name.to_string(), None);
            let (catalogue, name) = (Arc::clone(self), type_name.to_string());
            let spawned = std::thread::Builder::new().name(format!("share {name}")).spawn(move || {
                let answer = catalogue.set_up(&name);
                catalogue.answers.lock().unwrap_or_else(PoisonError::into_inner).insert(name, Some(answer));
                catalogue.answered.notify_all();
            });
            if let Err(err) = spawned {
                let answer = Err(format!("failed to start a thread to set up {type_name}: {err}"));
                answers.insert(type_name.to_string(), Some(answer.clone()));
                return answer;
            }
        }
        loop {
            if let Some(Some(answer)) = answers.get(type_name) {
                return answer.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("the parent's setup of {type_name} did not finish within {:?}", self.bound));
            }
            answers = self.answered.wait_timeout(answers, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn set_up(&self, type_name: &str) -> Result<String, String> {
        match self.known.get(type_name) {
            Some(fixture) => (fixture.share)(&self.shared),
            None => Err(format!(
                "the parent process does not know the shared fixture {type_name}: no test takes it directly, \
                 so register it with `reliability_harness::shared_fixture!(...)` beside its impl"
            )),
        }
    }

    fn serve(self: &Arc<Self>, stream: UnixStream) {
        // A child writes its request as soon as it connects; the bound only guards the parent
        // against a stray client that never does.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let mut line = String::new();
        let Ok(reader) = stream.try_clone() else { return };
        if BufReader::new(reader.take(MAX_REQUEST)).read_line(&mut line).is_err() {
            return;
        }
        let reply = match self.answer(line.trim_end()) {
            Ok(text) => Reply::Shared(text),
            Err(message) => Reply::Error(message),
        };
        if let Ok(mut json) = serde_json::to_vec(&reply) {
            json.push(b'\n');
            let mut stream = stream;
            let _ = stream.write_all(&json);
        }
    }
}

/// The parent's socket, served by a thread until the server is dropped.
pub(crate) struct ShareServer {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ShareServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareServer").field("socket", &self.socket()).finish_non_exhaustive()
    }
}

impl ShareServer {
    /// Serves the shared fixtures that `tests` take directly or that are registered; a setup
    /// may take at most `bound`.
    pub(crate) fn start(shared: Arc<Shared>, tests: &[TestCase], bound: Duration) -> std::io::Result<ShareServer> {
        let registered = crate::fixture::SHARED_FIXTURES.iter().map(|r| r.0);
        let direct = tests.iter().flat_map(|t| t.def.fixtures.iter().copied());
        let known = registered.chain(direct).filter(|f| (f.shared)()).map(|f| ((f.type_name)(), f)).collect();
        let catalogue =
            Arc::new(Catalogue { shared, known, answers: Mutex::new(HashMap::new()), answered: Condvar::new(), bound });
        let dir = tempfile::Builder::new().prefix("reliability-share-").tempdir()?;
        let listener = UnixListener::bind(dir.path().join("socket"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("share-server".into()).spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let catalogue = Arc::clone(&catalogue);
                // One thread per request: a slow setup of one fixture does not hold up the
                // answers for fixtures that are already set up.
                let _ = std::thread::Builder::new().name("share".into()).spawn(move || catalogue.serve(stream));
            }
        })?;
        Ok(ShareServer { dir, stop, thread: Some(thread) })
    }

    /// The socket children connect to.
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }
}

impl Drop for ShareServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(self.socket());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The child's side: asks the parent listening on `socket`.
pub(crate) fn provider(socket: PathBuf) -> Provider {
    Box::new(move |type_name: &str| request(&socket, type_name))
}

fn request(socket: &Path, type_name: &str) -> Result<String, String> {
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("failed to reach the parent process at {}: {e}", socket.display()))?;
    stream
        .write_all(format!("{type_name}\n").as_bytes())
        .map_err(|e| format!("failed to ask the parent process: {e}"))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(|e| format!("failed to read the parent's answer: {e}"))?;
    match serde_json::from_str::<Reply>(&line) {
        Ok(Reply::Shared(text)) => Ok(text),
        Ok(Reply::Error(message)) => Err(message),
        Err(e) => Err(format!("the parent's answer is not valid ({e}): {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{BoxError, Fixture, Scope, Setup};
    use std::sync::atomic::AtomicUsize;

    static SETUPS: AtomicUsize = AtomicUsize::new(0);

    struct Served(String);

    impl Fixture for Served {
        const SCOPE: Scope = Scope::Session;
        const SHARED: bool = true;
        async fn setup(_cx: &mut Setup<'_>) -> Result<Self, BoxError> {
            let n = SETUPS.fetch_add(1, Ordering::SeqCst);
            Ok(Served(format!("served-{n}")))
        }
        fn share(&self) -> Result<String, BoxError> {
            Ok(self.0.clone())
        }
    }

    fn def(fixtures: &'static [FixtureRef]) -> TestCase {
        fn ok(_: &mut crate::call::TestCall<'_>) -> Result<(), crate::call::Interrupted> {
            Ok(())
        }
        // A definition for the test's lifetime: cases read theirs from a static.
        TestCase::from_def(Box::leak(Box::new(crate::registry::TestDef {
            path: "x::t",
            markers: &[],
            file: "f.rs",
            package_dir: "",
            line: 1,
            settings: None,
            fixtures,
            run: ok,
        })))
    }

    #[test]
    fn the_parent_sets_up_once_and_answers_every_child_the_same() {
        static FIXTURES: [FixtureRef; 1] = [FixtureRef::of::<Served>()];
        let server =
            ShareServer::start(Arc::new(Shared::default()), &[def(&FIXTURES)], Duration::from_secs(600)).unwrap();
        let ask = provider(server.socket());
        let name = std::any::type_name::<Served>();
        let answers: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| ask(name))).collect();
            handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
        });
        assert_eq!(SETUPS.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|a| a == "served-0"), "{answers:?}");
        // A type the parent was never told about is an error, not a silent private copy.
        assert!(ask("some::Unregistered").is_err());
        let socket = server.socket();
        drop(server);
        assert!(!socket.exists(), "the socket's directory is removed with the server");
    }
}
