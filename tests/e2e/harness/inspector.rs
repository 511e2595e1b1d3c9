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

//! The benchmark's CPU profile (`ONECODE_BENCH_PROFILE`, benches/support/profile.rs) goes through
//! this same client: wrangler's proxy admits one DevTools client at a time, and a second session
//! on the runtime's own inspector does not stay attached beside the proxy's.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

/// Where a command's result (or error) goes.
type ReplyTo = mpsc::Sender<Result<serde_json::Value, String>>;
/// A DevTools command (method, params) and where its reply goes.
type Command = (String, serde_json::Value, ReplyTo);

/// The attached client: DevTools commands are sent through it (see [`Inspector::call`]).
pub struct Inspector {
    commands: Mutex<mpsc::Sender<Command>>,
}

impl Inspector {
    /// Sends `method` with `params` to the runtime and waits (up to two minutes) for its result.
    #[allow(dead_code)] // Only the benchmark's profiler calls it; the suite just drains.
    pub fn call(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .lock()
            .map_err(|e| e.to_string())?
            .send((method.to_string(), params, reply))
            .map_err(|_| "the inspector client has stopped".to_string())?;
        answer
            .recv_timeout(Duration::from_secs(120))
            .map_err(|e| format!("{method}: no reply ({e})"))?
    }
}

/// Attaches to the inspector on `127.0.0.1:port` and reads every message until the connection
/// ends (when wrangler stops), sending the commands given to the returned [`Inspector`]. Retries
/// the attach for a minute (wrangler answers the handshake once its own connection to the
/// runtime is up).
pub fn drain(port: u16) -> Inspector {
    let (commands, queued) = mpsc::channel::<Command>();
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
        // Reads time out now and then so that queued commands go out.
        if let MaybeTlsStream::Plain(tcp) = socket.get_mut() {
            let _ = tcp.set_read_timeout(Some(Duration::from_millis(50)));
        }
        let mut waiting: std::collections::HashMap<u64, ReplyTo> = Default::default();
        let mut next_id = 1_000u64;
        loop {
            match socket.read() {
                Ok(Message::Text(text)) if !waiting.is_empty() => {
                    let Ok(reply) = serde_json::from_str::<serde_json::Value>(&text) else {
                        continue;
                    };
                    let sender = reply["id"].as_u64().and_then(|id| waiting.remove(&id));
                    if let Some(sender) = sender {
                        let _: Result<_, _> = sender.send(match reply.get("error") {
                            Some(e) => Err(e.to_string()),
                            None => Ok(reply["result"].clone()),
                        });
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
            while let Ok((method, params, reply)) = queued.try_recv() {
                next_id += 1;
                let command =
                    serde_json::json!({ "id": next_id, "method": method, "params": params });
                match socket.send(Message::text(command.to_string())) {
                    Ok(()) => {
                        waiting.insert(next_id, reply);
                    }
                    Err(e) => {
                        let _: Result<_, _> = reply.send(Err(format!("{method}: {e}")));
                    }
                }
            }
        }
    });
    Inspector {
        commands: Mutex::new(commands),
    }
}
