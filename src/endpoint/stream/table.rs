//! A tunnel link's open stream exchanges, by CSeq: where the reader finds the exchange a
//! stream message belongs to. Calls (our own requests, `>` on the wire) and served requests
//! (`<`, the CSeq the proxy gave them) are numbered apart, so they are kept apart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::exchange::Exchange;
use crate::proto::stream::Direction;

/// The open exchanges of one link.
#[derive(Default)]
pub(crate) struct StreamTable {
    maps: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    /// Our requests, by our CSeq.
    calls: HashMap<u64, Arc<Exchange>>,
    /// Requests we serve, by the proxy's CSeq.
    served: HashMap<u64, Arc<Exchange>>,
    /// Set once the link is gone: nothing may be added any more.
    closed: bool,
}

impl Maps {
    fn side(&mut self, dir: Direction) -> &mut HashMap<u64, Arc<Exchange>> {
        match dir {
            Direction::Outgoing => &mut self.calls,
            Direction::Incoming => &mut self.served,
        }
    }
}

impl StreamTable {
    fn lock(&self) -> MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add `exchange` under its CSeq; false (and nothing added) once the link is gone. An
    /// open exchange it displaces (its CSeq given again while open, which only a proxy that
    /// breaks the protocol does) is failed: out of the table, it would never hear of its data,
    /// its reset or the tunnel's end, and whoever waits on it would wait for ever.
    pub(crate) fn insert(&self, exchange: &Arc<Exchange>) -> bool {
        let displaced = {
            let mut maps = self.lock();
            if maps.closed {
                return false;
            }
            maps.side(exchange.dir())
                .insert(exchange.cseq(), Arc::clone(exchange))
        };
        if let Some(old) = displaced.filter(|old| !Arc::ptr_eq(old, exchange)) {
            old.displaced();
        }
        true
    }

    /// The exchange `cseq` names in `dir`'s numbering, if it is open.
    pub(crate) fn get(&self, dir: Direction, cseq: u64) -> Option<Arc<Exchange>> {
        self.lock().side(dir).get(&cseq).cloned()
    }

    /// Take `exchange` out (it ended), unless another has its CSeq by now.
    pub(crate) fn remove(&self, exchange: &Exchange) {
        let mut maps = self.lock();
        let side = maps.side(exchange.dir());
        if side
            .get(&exchange.cseq())
            .is_some_and(|e| std::ptr::eq(Arc::as_ptr(e), exchange))
        {
            side.remove(&exchange.cseq());
        }
    }

    /// The link is gone: every open exchange, to be failed, and no more may be added.
    pub(crate) fn close(&self) -> Vec<Arc<Exchange>> {
        let mut maps = self.lock();
        maps.closed = true;
        let calls = std::mem::take(&mut maps.calls);
        let served = std::mem::take(&mut maps.served);
        calls.into_values().chain(served.into_values()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::endpoint::stream::BodyError;
    use crate::endpoint::stream::Start;
    use crate::endpoint::stream::test_support::{exchange, same_cseq};
    use crate::proto::stream::ResetReason;

    #[test]
    fn an_exchange_whose_cseq_is_given_again_is_failed_not_orphaned() {
        let (first, link) = exchange(Start::Done, Start::Streaming(None));
        let second = same_cseq(&first, Start::Done, Start::Streaming(None));
        assert!(link.table.insert(&second));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            matches!(
                first.poll_chunk(&mut cx),
                Poll::Ready(Some(Err(BodyError::Violation(ResetReason::Protocol))))
            ),
            "the displaced exchange still waits for data that can never reach it"
        );
        // The newcomer has the CSeq, open, and is what the tunnel's end fails.
        let found = link.table.get(Direction::Outgoing, 1);
        assert!(found.is_some_and(|e| Arc::ptr_eq(&e, &second)));
        assert!(second.poll_chunk(&mut cx).is_pending());
        let open = link.table.close();
        assert_eq!(open.len(), 1);
        assert!(Arc::ptr_eq(&open[0], &second));
        assert!(link.ends.out_is_empty());
    }
}
