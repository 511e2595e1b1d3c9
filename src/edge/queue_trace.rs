//! What the end-to-end suite sees of the queues (local Queues keep their messages in workerd's
//! memory, where no test can read them).
//!
//! Only in builds with the `e2e` cargo feature (the suite's own, never deployed:
//! `scripts/build-worker` enables no feature unless `ONECODE_FEATURES` names one), every message
//! body sent, every delivery retried and every delivery whose handling ended is written to the
//! worker's log, one line each: `e2e-queue <sent|retried|ended> <queue> <body>` (one console
//! call per send, batch or retry, so a burst of messages is not a burst of log requests). The suite
//! then scans those bodies for credentials along with the rest of the log, and waits for the
//! work a step started to settle (every body sent as often as it was delivered and not retried)
//! instead of sleeping. In every other build these functions do nothing.

#[cfg(feature = "e2e")]
fn trace<'a>(event: &str, queue: &str, bodies: impl IntoIterator<Item = &'a str>) {
    // One console call for all of them: locally every console call is one HTTP request from
    // workerd to wrangler's Node process, and a burst of one per message (a 10,000-repository
    // sync queues 10,000 jobs) opened a connection each while Node caught up, until workerd ran
    // out of file descriptors. The log still has one line per message.
    let lines: Vec<String> = bodies
        .into_iter()
        .map(|body| format!("e2e-queue {event} {queue} {body}"))
        .collect();
    if !lines.is_empty() {
        worker::console_log!("{}", lines.join("\n"));
    }
}

#[cfg(not(feature = "e2e"))]
fn trace<'a>(_event: &str, _queue: &str, _bodies: impl IntoIterator<Item = &'a str>) {}

/// Message bodies the queue accepted (one send).
pub fn sent<'a>(queue: &str, bodies: impl IntoIterator<Item = &'a str>) {
    trace("sent", queue, bodies);
}

/// Deliveries that will be delivered again (or, after the queue's last retry, to the
/// dead-letter queue).
pub fn retried<'a>(queue: &str, bodies: impl IntoIterator<Item = &'a str>) {
    trace("retried", queue, bodies);
}

/// Deliveries whose handling is over (acknowledged, explicitly or by returning, or retried).
pub fn ended<'a>(queue: &str, bodies: impl IntoIterator<Item = &'a str>) {
    trace("ended", queue, bodies);
}
