//! Keeps wrangler's inspector proxy from growing without bound.
//!
//! `wrangler dev` (4.86) runs an inspector proxy (`templates/startDevWorker/InspectorProxyWorker.ts`)
//! in the workerd that also serves the public port. It keeps every message the runtime sends it
//! (each console line, and each subrequest with its whole body, base64-encoded, since it enables
//! the `Network` domain) in `runtimeMessageBuffer` until a DevTools client attaches. Under
//! sustained traffic that workerd reaches V8's heap limit: the soak saw it spend its time in
//! last-resort garbage collections, then abort ("JavaScript heap out of memory") after about nine
//! minutes, and the full suite took it past 1 GB. Each message also goes to wrangler's node
//! process as a debug-log request, whatever the log level.
//!
//! This is a DevTools client, attached once the stack answers: attached, it empties the buffer
//! as it fills (it reads and discards), and it turns the runtime's `Network` and `Runtime`
//! domains off, so neither subrequests (with their bodies) nor console calls (with their stack
//! traces) are copied into the inspector and wrangler's debug log any more. Console output still
//! reaches wrangler's log, where the suite reads it: for a module worker wrangler takes it from
//! workerd's structured logs, not from the inspector (`proxyLogsToController` is only set for
//! service-worker scripts).

use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

/// Attaches to the inspector on `127.0.0.1:port` and reads every message until the connection
/// ends (when wrangler stops). Retries the attach for a minute (wrangler answers the handshake
/// once its own connection to the runtime is up).
pub fn drain(port: u16) {
    std::thread::spawn(move || {
        let url = format!("ws://127.0.0.1:{port}/ws");
        // Bodies of several MiB arrive as one message: no size limit.
        let config = WebSocketConfig {
            max_message_size: None,
            max_frame_size: None,
            ..WebSocketConfig::default()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut socket = loop {
            match tungstenite::client::connect_with_config(url.as_str(), Some(config), 3) {
                Ok((socket, _)) => break socket,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("e2e: could not attach to wrangler's inspector at {url}: {e}");
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        };
        // Forwarded to the runtime by wrangler's inspector proxy.
        for (id, domain) in [(1, "Network"), (2, "Runtime")] {
            let disable = format!(r#"{{"id":{id},"method":"{domain}.disable"}}"#);
            if let Err(e) = socket.send(Message::text(disable)) {
                eprintln!("e2e: could not turn the inspector's {domain} domain off: {e}");
            }
        }
        while socket.read().is_ok() {}
    });
}
