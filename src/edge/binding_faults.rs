//! Platform bindings that fail on demand, for the end-to-end suite's fault matrix
//! (tests/e2e/faults.rs): D1, KV, R2 and Queues have no fault switch of their own under
//! `wrangler dev`, so the gateway's binding wrappers ask [`check`] before each call.
//!
//! Only in builds with the `e2e` cargo feature (the suite's own, never deployed:
//! `scripts/build-worker` enables no feature unless `ONECODE_FEATURES` names one) can faults be
//! armed, through `POST /_e2e/faults` with a JSON list of `{"binding", "op", "times"}` (`times`
//! calls of that operation fail, one after the other, then it works again) and cleared with
//! `DELETE /_e2e/faults`; `GET /_e2e/faults` tells how many are still armed. The table lives in
//! the isolate's memory: locally, `wrangler dev` runs the fetch, queue and scheduled handlers
//! in one isolate, so a fault armed by one request is seen by the next invocation of any
//! handler (each test checks that its faults were spent). In every other build [`check`]
//! always succeeds and nothing else is compiled.

/// A binding operation that can be made to fail.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "e2e", derive(serde::Deserialize))]
#[cfg_attr(feature = "e2e", serde(rename_all = "snake_case"))]
pub enum Op {
    /// `DB.batch` (one transaction).
    D1Batch,
    /// One D1 statement (`run`, `all`).
    D1Query,
    KvGet,
    KvPut,
    KvDelete,
    /// An R2 write: `put`, or a multipart upload's creation or part.
    R2Put,
    R2Get,
    /// `sendBatch` on any queue.
    QueueSend,
}

#[cfg(feature = "e2e")]
mod armed {
    use super::Op;
    use serde::Deserialize;
    use std::cell::RefCell;

    /// One armed fault, as `POST /_e2e/faults` takes it: `{"binding": "d1", "op": "batch",
    /// "times": 1}`.
    #[derive(Deserialize)]
    pub struct Fault {
        binding: String,
        op: String,
        times: u32,
    }

    impl Fault {
        fn op(&self) -> Result<Op, String> {
            let name = format!("\"{}_{}\"", self.binding, self.op);
            serde_json::from_str(&name)
                .map_err(|_| format!("unknown binding operation {}.{}", self.binding, self.op))
        }
    }

    thread_local! {
        static ARMED: RefCell<Vec<(Op, u32)>> = const { RefCell::new(Vec::new()) };
    }

    /// Arms `faults` (added to those armed) → how many are armed now.
    pub fn arm(body: &[u8]) -> Result<usize, String> {
        let faults: Vec<Fault> =
            serde_json::from_slice(body).map_err(|e| format!("invalid faults: {e}"))?;
        let parsed = faults
            .iter()
            .map(|f| Ok((f.op()?, f.times)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ARMED.with(|armed| {
            let mut armed = armed.borrow_mut();
            armed.extend(parsed.into_iter().filter(|(_, times)| *times > 0));
            armed.len()
        }))
    }

    /// How many faults are armed and not yet spent.
    pub fn armed() -> usize {
        ARMED.with(|armed| armed.borrow().len())
    }

    pub fn clear() {
        ARMED.with(|armed| armed.borrow_mut().clear());
    }

    /// Spends one failure armed for `op`, if any.
    pub fn take(op: Op) -> bool {
        ARMED.with(|armed| {
            let mut armed = armed.borrow_mut();
            let Some(i) = armed.iter().position(|(o, _)| *o == op) else {
                return false;
            };
            armed[i].1 -= 1;
            if armed[i].1 == 0 {
                armed.remove(i);
            }
            true
        })
    }
}

#[cfg(feature = "e2e")]
pub use armed::{arm, armed, clear};

/// Whether `op` may go ahead: an armed fault fails it (e2e builds only), like the platform
/// failing the call.
#[cfg(feature = "e2e")]
pub fn check(op: Op) -> Result<(), String> {
    if armed::take(op) {
        worker::console_warn!("e2e fault: {op:?} failed on purpose");
        return Err(format!("{op:?} failed (injected fault)"));
    }
    Ok(())
}

#[cfg(not(feature = "e2e"))]
#[inline(always)]
pub fn check(_op: Op) -> Result<(), String> {
    Ok(())
}
