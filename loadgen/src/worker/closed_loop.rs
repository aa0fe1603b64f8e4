//! Closed loop (`--in-flight`): the first requests, spread evenly over this thread's
//! connections; each answer (`answer.rs`) or timeout (`timeouts.rs`) sends the next one.

use super::Worker;
use crate::clock::now_ns;

impl Worker {
    /// Closed loop: `slots` requests outstanding, spread evenly over this thread's
    /// connections; each answer (or timeout) is followed by a new request on the same one.
    pub(super) fn start_closed_loop(&self, slots: usize, t0: u64) {
        let conns = self.established();
        if conns.is_empty() {
            return;
        }
        let n = conns.len();
        let now = now_ns().max(t0);
        for j in 0..slots {
            let conn = if slots <= n {
                &conns[j * n / slots]
            } else {
                &conns[j % n]
            };
            self.send_request(conn, now);
            self.touch(conn);
        }
        self.flush_touched();
    }
}
