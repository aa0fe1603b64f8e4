//! The ramp: connection attempts started at `--connect-rate`, a bounded number in progress at
//! once, each becoming a connection task once it is registered.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Worker;
use super::conn::Conn;
use super::connect::OpenError;
use super::ramp::Limit;

/// Connection attempts in progress at once per thread, whatever --connect-rate says.
const MAX_PENDING_CONNECTS: usize = 2048;
/// How often the ramp looks at whether more attempts are due (tokio's timer resolution).
const RAMP_TICK: Duration = Duration::from_millis(1);

impl Worker {
    /// Start every connection of this thread at its share of --connect-rate, and return when
    /// every attempt has finished (or a limit stopped the ramp).
    pub(super) async fn ramp_up(self: &Rc<Self>) {
        let n = self.hi - self.lo;
        let rate = self.config.connect_rate as f64 / self.config.threads as f64;
        let started = Instant::now();
        let mut issued = 0usize;
        while issued < n && !self.ramp.stop.load(Ordering::Relaxed) {
            let due = ((started.elapsed().as_secs_f64() * rate) as usize + 1).min(n);
            while issued < due
                && self.pending_connects.get() < MAX_PENDING_CONNECTS
                && !self.ramp.stop.load(Ordering::Relaxed)
            {
                self.pending_connects.set(self.pending_connects.get() + 1);
                tokio::task::spawn_local(self.clone().connect(self.lo + issued));
                issued += 1;
            }
            tokio::time::sleep(RAMP_TICK).await;
        }
        while self.pending_connects.get() > 0 {
            tokio::time::sleep(RAMP_TICK).await;
        }
    }

    /// One attempt: open connection `index`, then run its task until it is closed.
    async fn connect(self: Rc<Self>, index: usize) {
        // open() bounds itself by --connect-timeout (and says which step ran out of time).
        let attempt = self.open(index).await;
        self.pending_connects.set(self.pending_connects.get() - 1);
        let (stream, leftover) = match attempt {
            Ok(opened) => opened,
            Err(e) => {
                self.refused(e);
                return;
            }
        };
        let conn = Rc::new(Conn::new(index, stream, leftover));
        self.conns.borrow_mut()[index - self.lo] = Some(conn.clone());
        self.ramp.established.fetch_add(1, Ordering::Relaxed);
        self.live_tasks.set(self.live_tasks.get() + 1);
        self.drive(&conn).await;
        self.live_tasks.set(self.live_tasks.get() - 1);
    }

    /// Count a failed attempt; a socket error that is a resource limit stops the ramp.
    fn refused(&self, e: OpenError) {
        match e {
            OpenError::Io(io) => match Limit::of(&io) {
                Some(limit) => self.ramp.hit_limit(limit, &io),
                None => self.ramp.fail(io.to_string()),
            },
            other => self.ramp.fail(other.to_string()),
        }
    }
}
