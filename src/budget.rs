//! Subrequests per invocation. Cloudflare's free plan allows 50 per invocation (fetches, and calls
//! to KV, D1 and Queues); `wrangler dev` does not enforce it, so the gateway counts its own and
//! plans work to fit: a large installation is enumerated a few pages per invocation and continued
//! through the sync queue.

use std::cell::Cell;

/// Our ceiling, below the platform's 50 to leave room for logging and the unexpected.
pub const INVOCATION_LIMIT: u32 = 45;

#[derive(Debug)]
pub struct Budget {
    limit: u32,
    used: Cell<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

impl Budget {
    pub fn new(limit: u32) -> Self {
        Budget {
            limit,
            used: Cell::new(0),
        }
    }

    /// Records one subrequest, or refuses it when the budget is spent.
    pub fn spend(&self) -> Result<(), Exhausted> {
        let used = self.used.get();
        if used >= self.limit {
            return Err(Exhausted);
        }
        self.used.set(used + 1);
        Ok(())
    }

    pub fn remaining(&self) -> u32 {
        self.limit - self.used.get()
    }

    pub fn used(&self) -> u32 {
        self.used.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_down_to_the_limit_and_no_further() {
        let b = Budget::new(2);
        assert_eq!(b.spend(), Ok(()));
        assert_eq!(b.remaining(), 1);
        assert_eq!(b.spend(), Ok(()));
        assert_eq!(b.spend(), Err(Exhausted));
        assert_eq!(b.used(), 2);
    }
}
