//! What comes in on a connection: frames decoded from one read, control frames answered,
//! `:error` indications counted, requests for this endpoint served, and responses handed on
//! to be matched with their requests.

use bytes::BytesMut;
use httpws::proto::frame::{self, Event, OpCode};
use httpws::proto::head::{self, HeadKind};
use httpws::proto::indication::{self, Indication};

use super::Worker;
use super::conn::{Conn, ConnError};
use crate::clock::now_ns;
use crate::stats::bump;
use crate::wire;

impl Worker {
    /// Decode and handle every complete frame in `buf`. Err: the connection is finished.
    pub(super) fn process(&self, conn: &Conn, buf: &mut BytesMut) -> Result<(), ConnError> {
        let now = now_ns();
        loop {
            let event = conn.decoder.borrow_mut().decode(buf, &self.decoder_config);
            match event {
                Ok(Some(Event::Message { payload, .. })) => self.on_message(conn, &payload, now),
                Ok(Some(Event::Ping(payload))) => {
                    let mask = self.mask();
                    wire::put_control(&mut conn.out.borrow_mut(), OpCode::Pong, &payload, mask);
                }
                Ok(Some(Event::Pong(_))) => {}
                Ok(Some(Event::Close { .. })) if self.closing.get() => {
                    // The answer to our own close: done.
                    conn.closed.set(true);
                    return Ok(());
                }
                Ok(Some(Event::Close { code, .. })) => {
                    let mask = self.mask();
                    let payload = frame::close_payload(code.unwrap_or(wire::CLOSE_NORMAL), "");
                    wire::put_control(&mut conn.out.borrow_mut(), OpCode::Close, &payload, mask);
                    let _ = conn.flush_for_close();
                    if !self.closing.get() {
                        self.stats.borrow_mut().conns_dropped += 1;
                    }
                    conn.closed.set(true);
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.stats.borrow_mut().protocol_errors += 1;
                    return Err(ConnError::Protocol(e));
                }
            }
        }
    }

    /// One complete message, received at `now`.
    fn on_message(&self, conn: &Conn, msg: &[u8], now: u64) {
        if indication::is_indication(msg) {
            self.count_indication(msg);
            return;
        }
        let info = match head::inspect(msg, &self.head_limits) {
            Ok(info) => info,
            Err(_) => {
                self.stats.borrow_mut().bad_messages += 1;
                return;
            }
        };
        if !self.config.direct && info.kind == HeadKind::Request {
            // A request for this endpoint: answer with its CSeq and body.
            let mask = self.mask();
            wire::put_response(
                &mut conn.out.borrow_mut(),
                &mut self.scratch.borrow_mut(),
                info.cseq,
                &msg[info.head_len..],
                mask,
            );
            self.stats.borrow_mut().served += 1;
            return;
        }
        // A response (relay), or our own request echoed back (direct).
        self.on_answer(conn, msg, &info, now);
    }

    fn count_indication(&self, msg: &[u8]) {
        let mut stats = self.stats.borrow_mut();
        match indication::parse(msg) {
            Ok(Indication::Error { token, .. }) => bump(&mut stats.indications, &token),
            Ok(Indication::Host(_)) => {}
            Ok(Indication::Other(_)) | Err(_) => bump(&mut stats.indications, "other"),
        }
    }
}
