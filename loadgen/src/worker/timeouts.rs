//! Requests without an answer after `--timeout`: the periodic scan that counts them (and, in
//! the closed loop, replaces them), and the drain after the end that waits for the last ones.

use std::rc::Rc;
use std::time::Duration;

use super::{Phases, Worker};
use crate::clock::now_ns;

/// Fastest and slowest scan for overdue requests (a tenth of --timeout in between).
const MIN_SCAN_TICK: Duration = Duration::from_millis(1);
const MAX_SCAN_TICK: Duration = Duration::from_millis(100);
/// Draining waits this long past --timeout, so the last scan has surely come round.
const DRAIN_GRACE_NS: u64 = 20_000_000;
/// How often draining looks whether answers are still due.
const DRAIN_TICK: Duration = Duration::from_millis(2);

impl Worker {
    /// Count requests that got no answer within --timeout (closed loop: replace them).
    pub(super) async fn expire_loop(self: Rc<Self>) {
        let timeout = self.config.timeout.as_nanos() as u64;
        let tick = (self.config.timeout / 10).clamp(MIN_SCAN_TICK, MAX_SCAN_TICK);
        while !self.closing.get() {
            tokio::time::sleep(tick).await;
            let now = now_ns();
            let cutoff = now.saturating_sub(timeout);
            let conns = self.established();
            let mut expired = 0;
            for conn in &conns {
                let n = conn.track.borrow_mut().expire(cutoff);
                if n == 0 {
                    continue;
                }
                expired += n;
                if self.closed_loop && now < self.phase_end() && !conn.closed.get() {
                    for _ in 0..n {
                        self.send_request(conn, now);
                    }
                    self.touch(conn);
                }
            }
            self.stats.borrow_mut().timeouts += expired;
            self.flush_touched();
        }
    }

    /// After the end: wait for the answers still due, up to --timeout past the end.
    /// When [`Worker::drain`] gives up on the answers still open.
    pub(super) fn drain_deadline(&self, phases: Phases) -> u64 {
        phases.end + self.config.timeout.as_nanos() as u64 + DRAIN_GRACE_NS
    }

    pub(super) async fn drain(&self, phases: Phases) {
        let deadline = self.drain_deadline(phases);
        loop {
            let open: u64 = self
                .conns
                .borrow()
                .iter()
                .flatten()
                .filter(|c| !c.closed.get())
                .map(|c| c.track.borrow().unanswered())
                .sum();
            if open == 0 {
                return;
            }
            let now = now_ns();
            if now >= deadline {
                // Whatever is still open is past its own deadline by now: count it as a
                // timeout (the periodic scan may not have come round to it yet).
                let cutoff = now.saturating_sub(self.config.timeout.as_nanos() as u64);
                let expired: u64 = self
                    .established()
                    .iter()
                    .map(|c| c.track.borrow_mut().expire(cutoff))
                    .sum();
                self.stats.borrow_mut().timeouts += expired;
                return;
            }
            tokio::time::sleep(DRAIN_TICK).await;
        }
    }
}
