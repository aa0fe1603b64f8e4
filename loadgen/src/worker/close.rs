//! The end of a run: a close frame on every connection, a moment for the server's answers,
//! then every connection task is told to stop.

use std::time::{Duration, Instant};

use httpws::proto::frame::{self, OpCode};

use super::Worker;
use crate::wire;

/// How long closing waits for the server to answer our close frames.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// How often closing looks whether every connection task has ended.
const CLOSE_TICK: Duration = Duration::from_millis(2);
/// The reason of loadgen's own close frames.
const CLOSE_REASON: &str = "loadgen done";

impl Worker {
    /// Send a close frame on every connection and give the server a moment to answer.
    pub(super) async fn close_all(&self) {
        self.closing.set(true);
        for conn in self.established() {
            if conn.closed.get() {
                continue;
            }
            let mask = self.mask();
            let payload = frame::close_payload(wire::CLOSE_NORMAL, CLOSE_REASON);
            wire::put_control(&mut conn.out.borrow_mut(), OpCode::Close, &payload, mask);
            conn.flush_now();
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.live_tasks.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(CLOSE_TICK).await;
        }
        for conn in self.established() {
            conn.closed.set(true);
            conn.wake();
        }
    }
}
