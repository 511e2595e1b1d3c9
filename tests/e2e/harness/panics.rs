//! Panic reporting for parallel tests: the hook records where a thread panicked instead of
//! printing it at once, and the runner reports the message with that location.

use std::any::Any;
use std::cell::RefCell;

thread_local! {
    /// Where the current thread last panicked (set by the hook of [`quiet_panics`]).
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Where this thread last panicked, if it did.
pub fn panic_location() -> Option<String> {
    PANICKED_AT.with(|p| p.borrow_mut().take())
}

/// Panics are reported once, in the failure summary, with their location (tests run in
/// parallel, so the default hook's immediate output would interleave).
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string());
        PANICKED_AT.with(|p| *p.borrow_mut() = location);
    }));
}
