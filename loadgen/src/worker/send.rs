//! Sending requests: one request queued on a connection (to the target `--pattern` picks),
//! and the batch of connections touched since the last flush, written out together.

use std::rc::Rc;

use super::Worker;
use super::conn::Conn;
use crate::args::Pattern;
use crate::wire::{self, Host};

/// The `Host` of every request in direct mode (the echo server does not route).
const DIRECT_HOST: &[u8] = b"echo";

impl Worker {
    /// Queue one request from `conn` (to the target the pattern picks), meant for `intended`.
    pub(super) fn send_request(&self, conn: &Conn, intended: u64) {
        let config = &self.config;
        let cseq = conn.track.borrow_mut().issue(intended);
        let host = if config.direct {
            Host::Fixed(DIRECT_HOST)
        } else {
            Host::Endpoint {
                prefix: config.name_prefix.as_bytes(),
                index: self.target_of(conn.index),
            }
        };
        let mask = self.mask();
        wire::put_request(
            &mut conn.out.borrow_mut(),
            &mut self.scratch.borrow_mut(),
            host,
            cseq,
            &self.body,
            mask,
        );
        self.stats.borrow_mut().sent += 1;
    }

    /// The connection that connection `index` calls.
    fn target_of(&self, index: usize) -> usize {
        let n = self.config.conns;
        match self.config.pattern {
            Pattern::Pairs => {
                let partner = index ^ 1;
                if partner < n { partner } else { index }
            }
            Pattern::Random if n > 1 => {
                let t = self.rng.borrow_mut().usize(..n - 1);
                if t >= index { t + 1 } else { t }
            }
            Pattern::Random => index,
        }
    }

    /// List `conn` for the next [`Worker::flush_touched`] (once however often it is touched).
    pub(super) fn touch(&self, conn: &Rc<Conn>) {
        if !conn.touched.replace(true) {
            self.touched.borrow_mut().push(conn.clone());
        }
    }

    /// Write out every touched connection, one write each.
    pub(super) fn flush_touched(&self) {
        let touched = std::mem::take(&mut *self.touched.borrow_mut());
        for conn in &touched {
            conn.touched.set(false);
            conn.flush_now();
        }
        // Hand the list's allocation back for the next batch.
        let mut slot = self.touched.borrow_mut();
        if slot.is_empty() {
            let mut touched = touched;
            touched.clear();
            *slot = touched;
        }
    }
}
