//! The outstanding requests of one connection, by CSeq: the check that every request gets
//! exactly one response.
//!
//! CSeqs are issued 1, 2, 3, … on each connection, so the requests still waiting form a
//! window starting at the oldest unanswered one. Each slot holds the request's intended send
//! time (ns), flagged when it timed out, or [`ANSWERED`]. Responses may come in any order;
//! the window shrinks from the front as its oldest requests are answered. No hashing, and
//! no allocation once the window has grown to the connection's usual number in flight.

use std::collections::VecDeque;

const ANSWERED: u64 = u64::MAX;
const TIMED_OUT: u64 = 1 << 63;

/// What a response's CSeq turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The first answer to a request sent at `intended` (ns); `timed_out` if it came after
    /// the request had already been counted as a timeout.
    First { intended: u64, timed_out: bool },
    /// A second answer to a request that was already answered.
    Duplicate,
    /// A CSeq this connection never sent.
    Unknown,
}

#[derive(Debug)]
pub struct Tracker {
    /// The next CSeq to issue.
    next: u64,
    /// The CSeq of `slots[0]`.
    base: u64,
    slots: VecDeque<u64>,
    /// CSeqs below this have been looked at by [`Tracker::expire`].
    scan: u64,
    /// Requests issued and not answered yet (timed out ones included).
    open: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            next: 1,
            base: 1,
            slots: VecDeque::new(),
            scan: 1,
            open: 0,
        }
    }
}

impl Tracker {
    /// Register a request meant to be sent at `intended` (ns, < 2^63); returns its CSeq.
    #[inline]
    pub fn issue(&mut self, intended: u64) -> u64 {
        debug_assert!(intended < TIMED_OUT);
        let cseq = self.next;
        self.next += 1;
        self.slots.push_back(intended);
        self.open += 1;
        cseq
    }

    /// Match a response's CSeq.
    #[inline]
    pub fn settle(&mut self, cseq: u64) -> Settle {
        if cseq == 0 || cseq >= self.next {
            return Settle::Unknown;
        }
        if cseq < self.base {
            return Settle::Duplicate;
        }
        let i = (cseq - self.base) as usize;
        let slot = self.slots[i];
        if slot == ANSWERED {
            return Settle::Duplicate;
        }
        self.slots[i] = ANSWERED;
        self.open -= 1;
        while self.slots.front() == Some(&ANSWERED) {
            self.slots.pop_front();
            self.base += 1;
        }
        Settle::First {
            intended: slot & !TIMED_OUT,
            timed_out: slot & TIMED_OUT != 0,
        }
    }

    /// Flag every request intended at or before `cutoff` (ns) and still unanswered as timed
    /// out (once); returns how many were flagged now. Intended times rise with the CSeq on
    /// a connection, so this stops at the first request that is still in time.
    pub fn expire(&mut self, cutoff: u64) -> u64 {
        let mut flagged = 0;
        self.scan = self.scan.max(self.base);
        while self.scan < self.next {
            let i = (self.scan - self.base) as usize;
            let slot = self.slots[i];
            if slot != ANSWERED && slot & TIMED_OUT == 0 {
                if slot > cutoff {
                    break;
                }
                self.slots[i] = slot | TIMED_OUT;
                flagged += 1;
            }
            self.scan += 1;
        }
        flagged
    }

    /// Requests not answered (yet).
    pub fn unanswered(&self) -> u64 {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_out_of_order() {
        let mut t = Tracker::default();
        assert_eq!(t.issue(100), 1);
        assert_eq!(t.issue(200), 2);
        assert_eq!(t.issue(300), 3);
        assert_eq!(
            t.settle(2),
            Settle::First {
                intended: 200,
                timed_out: false
            }
        );
        assert_eq!(t.settle(2), Settle::Duplicate);
        assert_eq!(t.unanswered(), 2);
        assert!(matches!(t.settle(1), Settle::First { intended: 100, .. }));
        assert_eq!(t.settle(1), Settle::Duplicate);
        assert_eq!(t.slots.len(), 1, "the window shrank past 1 and 2");
        assert_eq!(t.settle(4), Settle::Unknown);
        assert_eq!(t.settle(0), Settle::Unknown);
        assert!(matches!(t.settle(3), Settle::First { .. }));
        assert_eq!(t.unanswered(), 0);
        assert!(t.slots.is_empty());
        assert_eq!(t.next, 4);
    }

    #[test]
    fn timeouts_then_late_answers() {
        let mut t = Tracker::default();
        for i in 1..=5 {
            t.issue(i * 10);
        }
        assert!(matches!(t.settle(2), Settle::First { .. }));
        // Requests intended at 10..=30 are overdue; 2 was answered.
        assert_eq!(t.expire(30), 2);
        assert_eq!(t.expire(30), 0, "flagged once");
        assert_eq!(
            t.settle(3),
            Settle::First {
                intended: 30,
                timed_out: true
            }
        );
        assert_eq!(t.expire(100), 2);
        assert_eq!(t.unanswered(), 3);
        assert_eq!(t.settle(3), Settle::Duplicate);
    }
}
