//! Ctrl-C and SIGTERM: the first one stops scheduling and kills running children (they watch
//! the flag), so the summary and reports of what ran are still written; a second one ends the
//! process at once, for a thread-mode test that will not stop.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Sets `flag` on SIGINT or SIGTERM; exits with 130 if one arrives while it is already set.
pub(crate) fn stop_on_interrupt(flag: &Arc<AtomicBool>) {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for forbidden signals; these two are allowed.
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(flag));
        let _ = signal_hook::flag::register(signal, Arc::clone(flag));
    }
}
