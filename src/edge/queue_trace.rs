//! What the end-to-end suite sees of the queues (local Queues keep their messages in workerd's
//! memory, where no test can read them).
//!
//! Only in builds with the `e2e` cargo feature (the suite's own, never deployed:
//! `scripts/build-worker` enables no feature unless `ONECODE_FEATURES` names one), every message
//! body sent, every delivery retried and every delivery whose handling ended is written to the
//! worker's log, one line each: `e2e-queue <sent|retried|ended> <queue> <body>`. The suite
//! then scans those bodies for credentials along with the rest of the log, and waits for the
//! work a step started to settle (every body sent as often as it was delivered and not retried)
//! instead of sleeping. In every other build these functions do nothing.

#[cfg(feature = "e2e")]
fn trace(event: &str, queue: &str, body: &str) {
    worker::console_log!("e2e-queue {event} {queue} {body}");
}

#[cfg(not(feature = "e2e"))]
fn trace(_event: &str, _queue: &str, _body: &str) {}

/// A message body the queue accepted.
pub fn sent(queue: &str, body: &str) {
    trace("sent", queue, body);
}

/// A delivery that will be delivered again (or, after the queue's last retry, to the
/// dead-letter queue).
pub fn retried(queue: &str, body: &str) {
    trace("retried", queue, body);
}

/// A delivery whose handling is over (acknowledged, explicitly or by returning, or retried).
pub fn ended(queue: &str, body: &str) {
    trace("ended", queue, body);
}

/// Whether the send of the work this delivery committed is to be lost: in `e2e` builds, the
/// deliveries the suite names `e2e-lost-send-…`, to show that the dispatcher sends the
/// committed job anyway (tests/e2e/webhooks.rs, `lost_send`).
#[cfg(feature = "e2e")]
pub fn lose_send(delivery: &str) -> bool {
    delivery.starts_with("e2e-lost-send-")
}

#[cfg(not(feature = "e2e"))]
pub fn lose_send(_delivery: &str) -> bool {
    false
}
