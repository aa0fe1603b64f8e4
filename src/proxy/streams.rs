//! Streams in flight (protocol 2): for each exchange whose request or response body streams,
//! where its two bodies stand — the credit each sender has left, whether each side has ended,
//! what a protocol-1 peer's whole message is being assembled from, and when it last moved.
//!
//! The state of a stream lives on the shard that owns its target (next to the target's
//! connection), so both directions are checked in one place: data from the caller and credit
//! from the target pass through it on their way to the target, data from the target and
//! credit from the caller on their way back.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::proto::address::VirtualAddress;
use crate::proto::frame::OpCode;
use crate::proto::head::HeadInfo;
use crate::proto::stream::STREAM_WINDOW;
use crate::proxy::ids::ConnRef;
use crate::proxy::messages::ReplyAs;

/// One direction of an exchange (the request body, or the response body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Not a stream: a whole message, or a response whose head has not come yet.
    Whole,
    /// Streaming.
    Open {
        /// Bytes the sender may still send before the receiver grants more.
        credit: u64,
        /// Bytes the head's `Content-Length` still allows, when it declared one.
        left: Option<u64>,
    },
    /// The sender said `end` (or its whole message arrived).
    Ended,
}

impl Flow {
    /// A direction that starts streaming, with the initial window and the declared length.
    pub fn open(declared: Option<u64>) -> Flow {
        Flow::Open {
            credit: STREAM_WINDOW,
            left: declared,
        }
    }

    /// Whether nothing more will come this way.
    pub fn is_done(self) -> bool {
        !matches!(self, Flow::Open { .. })
    }
}

/// Why a direction refused data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowFault {
    /// The direction is not open (a whole body, or data after `end`).
    NotOpen,
    /// More than the credit the receiver granted.
    OverCredit,
    /// More than the head's `Content-Length`.
    OverLength,
}

impl Flow {
    /// Take `n` bytes of data through this direction.
    pub fn send(&mut self, n: u64) -> Result<(), FlowFault> {
        let Flow::Open { credit, left } = self else {
            return Err(FlowFault::NotOpen);
        };
        if n > *credit {
            return Err(FlowFault::OverCredit);
        }
        if let Some(left) = left {
            if n > *left {
                return Err(FlowFault::OverLength);
            }
            *left -= n;
        }
        *credit -= n;
        Ok(())
    }

    /// The receiver grants `n` more bytes; what the sender may have outstanding is capped at
    /// `max`. Returns the credit actually granted (to relay to the sender); 0 once the
    /// direction is done.
    pub fn grant(&mut self, n: u64, max: u64) -> u64 {
        let Flow::Open { credit, .. } = self else {
            return 0;
        };
        let granted = n.min(max.saturating_sub(*credit));
        *credit += granted;
        granted
    }

    /// The sender ended this direction: `Err` if a declared length was not reached.
    pub fn end(&mut self) -> Result<(), FlowFault> {
        let short = matches!(self, Flow::Open { left: Some(l), .. } if *l > 0);
        let open = matches!(self, Flow::Open { .. });
        *self = Flow::Ended;
        match (open, short) {
            (false, _) => Err(FlowFault::NotOpen),
            (true, true) => Err(FlowFault::OverLength),
            (true, false) => Ok(()),
        }
    }
}

/// Which peer a whole message is being assembled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toward {
    /// The target speaks protocol 1: the caller's streamed request becomes one message.
    Target,
    /// The caller takes whole answers only (protocol 1, or an internet caller): the target's
    /// streamed response becomes one message.
    Caller,
}

/// A streamed body being put together into one whole message, for a peer that takes only
/// those. Bounded by `--max-message-bytes`.
#[derive(Debug)]
pub struct Assembly {
    /// For whom.
    pub toward: Toward,
    /// The stream head (its `info` describes it); rewritten without `Httpws-Stream` at the end.
    pub head: Bytes,
    /// Where things are in `head`.
    pub info: HeadInfo,
    /// The frame opcode the whole message goes with.
    pub opcode: OpCode,
    /// The body so far.
    pub body: BytesMut,
}

/// One exchange with a streamed request or response, on the target's shard.
#[derive(Debug)]
pub struct StreamEntry {
    /// The caller.
    pub origin: ConnRef,
    /// The caller's CSeq for it.
    pub origin_cseq: u64,
    /// How the caller takes answers the proxy makes, and whether it takes streams.
    pub reply: ReplyAs,
    /// The caller speaks protocol 2 (it may receive stream heads and stream messages).
    pub caller_streams: bool,
    /// The request body.
    pub request: Flow,
    /// The response body.
    pub response: Flow,
    /// A response head has reached the caller (after that, the proxy ends the exchange with
    /// a reset, never with an error answer).
    pub answered: bool,
    /// When data, credit or an end last went through.
    pub last_activity: Instant,
    /// When the caller gets `timeout` if no response head has come: set when the request
    /// body ends (until then the stream's idle timeout applies).
    pub deadline: Option<Instant>,
    /// A whole message being assembled for a protocol-1 peer.
    pub assembly: Option<Box<Assembly>>,
    /// The target answered `101`: the exchange is now two byte streams, each ending on its
    /// own (a plain HTTP caller's connection is half-closed, not closed, when the target's
    /// side ends first).
    pub switched: bool,
    /// The caller's address, stamped as `Httpws-From` (None: an internet caller).
    pub from: Option<VirtualAddress>,
}

impl StreamEntry {
    /// Whether both directions are finished and a response has gone to the caller.
    pub fn is_finished(&self) -> bool {
        self.answered && self.request.is_done() && self.response.is_done()
    }
}

/// A target connection's stream exchanges, by the CSeq the proxy gave them. A B-tree: no
/// allocation and no hasher state while the connection streams nothing (most never do).
pub type StreamTable = BTreeMap<u64, StreamEntry>;

/// A caller connection's streaming exchanges: its CSeq → the shard that owns the stream's
/// state (where its stream messages go).
pub type OutgoingStreams = BTreeMap<u64, u16>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_and_length_bound_a_direction() {
        let mut flow = Flow::open(Some(10));
        assert_eq!(flow.send(4), Ok(()));
        assert_eq!(flow.send(7), Err(FlowFault::OverLength));
        assert_eq!(flow.end(), Err(FlowFault::OverLength), "6 bytes short");
        assert_eq!(flow.send(1), Err(FlowFault::NotOpen));
        let mut flow = Flow::open(None);
        assert_eq!(flow.send(STREAM_WINDOW), Ok(()));
        assert_eq!(flow.send(1), Err(FlowFault::OverCredit));
        assert_eq!(flow.grant(100, 1024 * 1024), 100);
        assert_eq!(flow.send(100), Ok(()));
        // Outstanding credit is capped: a receiver cannot make the proxy hold more.
        assert_eq!(flow.grant(u64::MAX, 1000), 1000);
        assert_eq!(flow.grant(5, 1000), 0);
        assert_eq!(flow.end(), Ok(()));
        assert_eq!(flow.grant(5, 1000), 0);
        assert!(flow.is_done());
    }
}
