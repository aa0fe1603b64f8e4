//! Matching an answer with its request by CSeq, and what it counts: the exactly-once check,
//! errors by token, throughput and latency inside the measured window, and (closed loop) the
//! request that replaces it.

use httpws::proto::head::{HeadInfo, HeadKind};

use super::Worker;
use super::conn::Conn;
use crate::stats::{ThreadStats, bump};
use crate::track::Settle;
use crate::wire;

/// Bytes of an error response's body kept as the example reason for its token.
const REASON_BYTES: usize = 120;

impl Worker {
    /// A response (relay) or our own request echoed back (direct), received at `now`.
    pub(super) fn on_answer(&self, conn: &Conn, msg: &[u8], info: &HeadInfo, now: u64) {
        let settled = conn.track.borrow_mut().settle(info.cseq);
        let mut stats = self.stats.borrow_mut();
        match settled {
            Settle::First {
                intended,
                timed_out,
            } => {
                stats.answered += 1;
                if info.kind == HeadKind::Response && info.status != 200 {
                    record_error(&mut stats, msg, info);
                } else {
                    self.record_ok(&mut stats, intended, now);
                }
                if timed_out {
                    stats.late += 1;
                } else if self.closed_loop && now < self.phase_end() {
                    drop(stats);
                    self.send_request(conn, now);
                }
            }
            Settle::Duplicate => stats.duplicates += 1,
            Settle::Unknown => stats.unknown += 1,
        }
    }

    /// A successful first answer to a request meant for `intended`, received at `now`.
    fn record_ok(&self, stats: &mut ThreadStats, intended: u64, now: u64) {
        stats.ok += 1;
        if let Some(p) = self.phases.get() {
            if now >= p.measure && now < p.end {
                stats.ok_in_window += 1;
            }
            if intended >= p.measure && intended < p.end {
                stats
                    .hist
                    .saturating_record(now.saturating_sub(intended).max(1));
            }
        }
    }
}

/// An error answer: counted by its `Httpws-Error` token (`status-NNN` without one), with the
/// first reason seen for each token.
fn record_error(stats: &mut ThreadStats, msg: &[u8], info: &HeadInfo) {
    let token = wire::error_token(msg).unwrap_or_else(|| format!("status-{}", info.status));
    bump(&mut stats.errors, &token);
    stats.error_reasons.entry(token).or_insert_with(|| {
        let body = &msg[info.head_len..];
        let reason = String::from_utf8_lossy(&body[..body.len().min(REASON_BYTES)]);
        reason.trim().to_string()
    });
}
