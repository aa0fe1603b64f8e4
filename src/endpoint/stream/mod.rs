//! Streams on the endpoint side (protocol 2, docs/protocol.md §12): a request or response
//! body that follows its head as data messages, for as long and as much as it takes, with
//! flow control both ways.
//!
//! - [`BodyWriter`] (`outbound`): our body, sent only within the credit the far side grants.
//! - [`InboundBody`] (`inbound`): theirs, granted back as the consumer is done with it.
//! - [`BodyError`] (`error`): why a body stopped before its end.
//! - `exchange`: one exchange's state, shared by those halves and the tunnel's reader;
//!   `table`: a link's open exchanges by CSeq.
//!
//! Whether a body streams is decided where it is produced: one known to be at most
//! [`WHOLE_BODY_MAX_BYTES`] goes whole in the head's message, as in protocol 1; a larger or
//! open-ended one streams. A tunnel that speaks protocol 1 carries only whole messages.

mod error;
mod exchange;
mod inbound;
mod outbound;
mod table;

pub use error::BodyError;
pub use inbound::InboundBody;
pub use outbound::BodyWriter;

#[cfg(test)]
pub(crate) use exchange::tests as test_support;
pub(crate) use exchange::{Exchange, Start};
pub(crate) use table::StreamTable;

use crate::proto::stream::STREAM_WINDOW;

/// A body known to be at most this long goes whole, in one message with its head; a larger
/// or open-ended one streams (when the tunnel speaks protocol 2).
pub const WHOLE_BODY_MAX_BYTES: usize = 64 * 1024;
/// The largest payload of a data message we send: large enough that a fast stream costs
/// few messages, small enough that streams sharing the tunnel take turns.
pub const DATA_CHUNK_BYTES: usize = 64 * 1024;
/// Consumed bytes are granted back in batches of this much (a quarter of the window), so
/// a trickle of small events does not cost a credit message each; the sender still has
/// the rest of its window meanwhile.
pub const GRANT_BATCH_BYTES: u64 = STREAM_WINDOW / 4;
/// The most we let the far side have in flight of one body we receive, in bytes: the window
/// starts at 256 KiB and grows towards this while the consumer keeps up (a grant made when
/// nothing of the body waits to be taken is doubled), so a fast stream gets the window its
/// bandwidth-delay product needs; a consumer that falls behind keeps the window it had.
/// (The proxy holds every sender to its own `--max-stream-window`, 4 MiB by default.)
pub const MAX_RECEIVE_WINDOW_BYTES: u64 = 4 * 1024 * 1024;
