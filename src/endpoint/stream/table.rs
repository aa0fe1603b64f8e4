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

    /// Add `exchange` under its CSeq; false (and nothing added) once the link is gone.
    pub(crate) fn insert(&self, exchange: &Arc<Exchange>) -> bool {
        let mut maps = self.lock();
        if maps.closed {
            return false;
        }
        maps.side(exchange.dir())
            .insert(exchange.cseq(), Arc::clone(exchange));
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
