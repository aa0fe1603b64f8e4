//! Open loop (`--rate`): requests at fixed intended times, paced by the precise timer, never
//! early; when behind, sent late but timed from the intended time (no coordinated omission).

use std::io;

use super::{Phases, Worker};
use crate::clock::{PreciseTimer, now_ns};

/// Requests the pacer issues in one go before yielding (when far behind schedule).
const PACER_BATCH: usize = 4096;
/// Nanoseconds in a second, for the interval between intended times.
const NS_PER_S: f64 = 1e9;

impl Worker {
    /// Open loop: requests at fixed intended times, `rate` per second from this thread
    /// (`burst` at a time), round-robin over its connections. Never early; when behind, late
    /// but timed from the intended time.
    pub(super) async fn pace(&self, rate: f64, burst: u64, phases: Phases) -> io::Result<()> {
        let conns = self.established();
        if conns.is_empty() || rate <= 0.0 {
            return Ok(());
        }
        let timer = PreciseTimer::new()?;
        let interval = NS_PER_S / rate;
        // Threads interleave their schedules instead of all firing at the same instants.
        let offset = interval * burst as f64 * self.id as f64 / self.config.threads as f64;
        let at = |k: u64| phases.t0 + (offset + (k / burst * burst) as f64 * interval) as u64;
        let mut k = 0u64;
        let mut rr = 0usize;
        loop {
            let next = at(k);
            if next >= phases.end {
                return Ok(());
            }
            if now_ns() < next {
                timer.sleep_until(next).await?;
            } else {
                // Behind schedule: still let the connections run between batches.
                tokio::task::yield_now().await;
            }
            let now = now_ns();
            let mut batch = 0;
            loop {
                let intended = at(k);
                if intended > now || intended >= phases.end || batch == PACER_BATCH {
                    break;
                }
                // Round-robin over the connections still open.
                let mut conn = None;
                for _ in 0..conns.len() {
                    let c = &conns[rr];
                    rr = (rr + 1) % conns.len();
                    if !c.closed.get() {
                        conn = Some(c);
                        break;
                    }
                }
                let Some(conn) = conn else {
                    return Ok(());
                };
                self.send_request(conn, intended);
                self.touch(conn);
                k += 1;
                batch += 1;
            }
            self.flush_touched();
        }
    }
}
