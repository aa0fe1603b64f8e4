//! Liveness: pinging connections that went quiet, dropping those that do not answer, ending
//! closing connections that could not flush, and giving idle connections' buffers back.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::proto::frame::OpCode;
use crate::proxy::config::CLOSE_FLUSH_TIMEOUT;
use crate::proxy::conn::{Conn, Phase};
use crate::proxy::messages::OutFrame;
use crate::proxy::shard::Shard;

impl Shard {
    /// Ping connections that went quiet, drop those that did not answer, end closing
    /// connections that could not flush, and give idle connections' buffers back.
    pub fn check_liveness(&self, now: Instant, idle_for: Duration) {
        let conns: Vec<Rc<Conn>> = self.conns.borrow().iter().cloned().collect();
        for conn in conns {
            let (phase, last_seen, ping_sent) = {
                let st = conn.state.borrow();
                (st.phase, st.last_seen, st.ping_sent)
            };
            match phase {
                Phase::Kill => continue,
                Phase::Closing { since } => {
                    if now.duration_since(since) > CLOSE_FLUSH_TIMEOUT {
                        conn.kill();
                    }
                    continue;
                }
                Phase::Open => {}
            }
            if let Some(sent) = ping_sent {
                if now.duration_since(sent) > self.config.pong_timeout {
                    tracing::debug!(address = %conn.address, "no answer to ping; dropping");
                    self.drop_connection(&conn);
                }
                continue;
            }
            let quiet = now.duration_since(last_seen);
            if quiet >= self.config.idle_timeout {
                let ping = self.control_frame(OpCode::Ping, b"");
                self.queue(
                    &conn,
                    OutFrame {
                        head: ping,
                        body: Bytes::new(),
                    },
                );
                conn.state.borrow_mut().ping_sent = Some(now);
            }
            if quiet >= idle_for {
                conn.compact();
            }
        }
    }
}
