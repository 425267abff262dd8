//! Panic payloads: [`skip`] (a panic the harness reads as "skipped"), the hook that keeps it
//! quiet, and the message of any payload.

use std::any::Any;
use std::sync::Once;

/// The panic payload of [`skip`].
#[derive(Debug)]
struct SkipSignal(String);

/// Skips the running test (or the fixture being set up) with a reason, like `pytest.skip()`.
pub fn skip(reason: impl Into<String>) -> ! {
    std::panic::panic_any(SkipSignal(reason.into()))
}

/// Installs (once) a panic hook that keeps [`skip`] quiet and leaves other panics to the
/// previous hook.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<SkipSignal>() {
                previous(info);
            }
        }));
    });
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(SkipSignal(reason)) = payload.downcast_ref::<SkipSignal>() {
        format!("skipped: {reason}")
    } else {
        "(a non-string panic payload)".to_string()
    }
}

pub(crate) fn skip_reason(payload: &(dyn Any + Send)) -> Option<String> {
    payload.downcast_ref::<SkipSignal>().map(|SkipSignal(reason)| reason.clone())
}
