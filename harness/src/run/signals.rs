//! Ctrl-C and SIGTERM: the first one stops scheduling and kills running children (they watch
//! the flag), so the summary and reports of what ran are still written; a second one kills
//! every child's process group and ends the process at once, for a thread-mode test that will
//! not stop. Children also die with this process however it ends (even SIGKILL): each asks the
//! kernel for SIGKILL when its parent dies (see [`crate::run::isolate`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Process groups of the children alive now.
static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Records a child's process group while it runs.
pub(crate) fn child_started(group: i32) {
    LIVE_GROUPS.lock().unwrap_or_else(PoisonError::into_inner).push(group);
}

/// Forgets a child's group once it is reaped.
pub(crate) fn child_ended(group: i32) {
    LIVE_GROUPS.lock().unwrap_or_else(PoisonError::into_inner).retain(|g| *g != group);
}

/// SIGKILLs every live child's process group.
pub(crate) fn kill_children() {
    for group in LIVE_GROUPS.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        // The group may already be gone; nothing to do then.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*group), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Sets `flag` on SIGINT or SIGTERM; on a second one, kills the children and exits with 130.
///
/// The signals are read on a thread of their own (signal-hook's iterator), so killing the
/// children may take locks; the handler itself only records the signal.
pub(crate) fn stop_on_interrupt(flag: &Arc<AtomicBool>) {
    let signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]);
    let Ok(mut signals) = signals else {
        eprintln!("warning: failed to watch for Ctrl-C and SIGTERM: an interrupt will not stop the run cleanly");
        return;
    };
    let flag = Arc::clone(flag);
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
        for _ in signals.forever() {
            if flag.swap(true, Ordering::SeqCst) {
                kill_children();
                std::process::exit(i32::from(crate::error::EXIT_INTERRUPTED));
            }
        }
    });
    if spawned.is_err() {
        eprintln!("warning: failed to start the signal thread: an interrupt will not stop the run cleanly");
    }
}
