//! The CSeq remapping state: what each target connection owes (proxy CSeq → caller) and
//! which CSeqs each caller is waiting on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::proxy::ids::ConnRef;
use crate::proxy::messages::ReplyAs;

/// One relayed request waiting for its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The caller's connection.
    pub origin: ConnRef,
    /// The CSeq the caller chose, put back into the response.
    pub origin_cseq: u64,
    /// How the caller takes its answer (and the opcode of one the proxy makes).
    pub reply: ReplyAs,
    /// When the caller gets `timeout` instead (`--request-timeout` after it was relayed).
    pub deadline: Instant,
    /// The caller speaks protocol 2 (a streamed answer may go to it as a stream).
    pub caller_streams: bool,
}

/// Why a response's CSeq matched nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// The proxy did issue this CSeq, but its request was already answered or timed out: a
    /// late or repeated answer, dropped quietly.
    Late,
    /// The proxy never issued this CSeq on this connection: `unknown-cseq`.
    Unissued,
}

/// Requests a target connection has been sent and not yet answered, keyed by the CSeq the
/// proxy gave them. Proxy CSeqs grow by one per request and the timeout is the same for all,
/// so key order is deadline order: expiry only ever looks at the front.
#[derive(Debug)]
pub struct PendingTable {
    next_cseq: u64,
    entries: BTreeMap<u64, Pending>,
}

impl Default for PendingTable {
    fn default() -> Self {
        // An empty BTreeMap does not allocate, so an idle connection pays only this struct.
        Self {
            next_cseq: 1,
            entries: BTreeMap::new(),
        }
    }
}

impl PendingTable {
    /// Remember `pending` and return the CSeq to send to the target.
    pub fn insert(&mut self, pending: Pending) -> u64 {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        self.entries.insert(cseq, pending);
        cseq
    }

    /// Issue a CSeq for an exchange kept elsewhere (a stream), so that late messages for it
    /// are told apart from messages for CSeqs never issued.
    pub fn issue(&mut self) -> u64 {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        cseq
    }

    /// The CSeq the next request will get (every smaller one, but 0, was issued).
    pub fn next_cseq(&self) -> u64 {
        self.next_cseq
    }

    /// Match a response's CSeq.
    pub fn take(&mut self, cseq: u64) -> Result<Pending, Unmatched> {
        match self.entries.remove(&cseq) {
            Some(p) => Ok(p),
            None if cseq != 0 && cseq < self.next_cseq => Err(Unmatched::Late),
            None => Err(Unmatched::Unissued),
        }
    }

    /// How many requests wait for their response.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request waits (the connection leaves the shard's timed set).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remove every entry whose deadline is at or before `now`, oldest first.
    pub fn expire(&mut self, now: Instant, mut expired: impl FnMut(Pending)) {
        while let Some(entry) = self.entries.first_entry() {
            if entry.get().deadline > now {
                break;
            }
            expired(entry.remove());
        }
    }

    /// Remove everything (the target is gone).
    pub fn drain(&mut self) -> impl Iterator<Item = Pending> + use<> {
        std::mem::take(&mut self.entries).into_values()
    }
}

/// The CSeqs a caller has in flight, for `duplicate-cseq` and the per-caller in-flight limit.
/// A B-tree rather than a hash set: half the inline size on every idle connection, and no
/// per-set hasher state.
pub type InflightSet = BTreeSet<u64>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::OpCode;
    use crate::proxy::ids::{CallerKind, ConnKey};
    use std::time::Duration;

    fn pending(origin_cseq: u64, deadline: Instant) -> Pending {
        Pending {
            origin: ConnRef {
                shard: 0,
                kind: CallerKind::WebSocket,
                key: ConnKey {
                    index: 1,
                    generation: 1,
                },
            },
            origin_cseq,
            reply: ReplyAs::Frame(OpCode::Text),
            deadline,
            caller_streams: false,
        }
    }

    #[test]
    fn two_callers_with_the_same_cseq_get_distinct_proxy_cseqs() {
        let now = Instant::now();
        let mut table = PendingTable::default();
        let a = table.insert(pending(7, now));
        let b = table.insert(pending(7, now));
        assert_ne!(a, b);
        assert_eq!(table.take(b).map(|p| p.origin_cseq), Ok(7));
        assert_eq!(table.take(a).map(|p| p.origin_cseq), Ok(7));
        assert_eq!(table.take(a), Err(Unmatched::Late));
        assert_eq!(table.take(b + 1), Err(Unmatched::Unissued));
        assert_eq!(table.take(0), Err(Unmatched::Unissued));
    }

    #[test]
    fn expires_in_deadline_order_and_stops_at_the_first_live_one() {
        let now = Instant::now();
        let mut table = PendingTable::default();
        for i in 0..5 {
            table.insert(pending(i, now + Duration::from_millis(i * 10)));
        }
        let mut gone = Vec::new();
        table.expire(now + Duration::from_millis(25), |p| {
            gone.push(p.origin_cseq)
        });
        assert_eq!(gone, vec![0, 1, 2]);
        assert_eq!(table.len(), 2);
        assert_eq!(
            table.drain().map(|p| p.origin_cseq).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(table.is_empty());
    }
}
