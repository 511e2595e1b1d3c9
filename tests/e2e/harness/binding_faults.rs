//! Faults of the worker's own platform bindings (D1, KV, R2, Queues), armed through the `e2e`
//! build's `/_e2e/faults` route (`src/edge/binding_faults.rs`): the next `times` calls of an
//! operation fail as if the platform had failed them.

use serde_json::Value;

use super::Stack;

/// Binding faults for the duration of a test (exclusive tests only: the table is global to the
/// worker's isolate), cleared when the guard drops, even when the test fails.
pub struct BindingFaults<'a>(&'a Stack);

impl<'a> BindingFaults<'a> {
    /// Arms `faults`, a JSON list of `{"binding": "d1"|"kv"|"r2"|"queue", "op", "times"}`.
    #[track_caller]
    pub fn arm(s: &'a Stack, faults: Value) -> BindingFaults<'a> {
        let resp = s.http.request(
            "POST",
            &format!("{}/_e2e/faults", s.worker),
            &[],
            Some(&faults.to_string()),
        );
        assert_eq!(resp.status, 200, "arming {faults}: {}", resp.body);
        BindingFaults(s)
    }

    /// How many armed faults the worker has not spent yet (0 once each failed its calls: the
    /// invocations that met them ran in the isolate that armed them).
    #[track_caller]
    pub fn armed(&self) -> u64 {
        let resp = self.0.http.get(&format!("{}/_e2e/faults", self.0.worker));
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.json()["armed"].as_u64().expect("armed")
    }
}

impl Drop for BindingFaults<'_> {
    fn drop(&mut self) {
        let cleared = self.0.http.request(
            "DELETE",
            &format!("{}/_e2e/faults", self.0.worker),
            &[],
            None,
        );
        if cleared.status != 200 && !std::thread::panicking() {
            panic!("binding faults not cleared: {}", cleared.body);
        }
    }
}
