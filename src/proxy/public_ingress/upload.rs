//! A request body that streams from an internet caller to its target (protocol 2): read
//! from the caller's connection only as far as the target's credit goes, decoded from its
//! chunks or held to its `Content-Length` — or, on a switched connection, the caller's bytes
//! as they are — and sent on as stream data split off the read buffer without copying.

use std::io;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{IngressConn, IngressEnd, Next};
use crate::proto::answer_error::AnswerError;
use crate::proto::head::HttpBodyFraming;
use crate::proto::http1::chunked::{ChunkedError, ChunkedPiece, ChunkedScanner};
use crate::proto::http1::framing::Framing;
use crate::proto::stream::{STREAM_WINDOW, Verb};
use crate::proxy::ids::ConnRef;
use crate::proxy::transport::poll_read_buf;

/// Room added for each read of a streamed request body; also what is read ahead of the
/// target's credit (so that a chunked body's last chunk is seen without any).
pub(super) const UPLOAD_READ_BYTES: usize = 64 * 1024;

/// How a streamed request body is framed by the caller, and how much is left of it.
pub(super) enum UploadBody {
    /// Bytes still to come under its `Content-Length`.
    Length(u64),
    /// Chunked: decoded as it arrives.
    Chunked(ChunkedScanner),
    /// An upgrade request: nothing until the target switches (`101`, `switched`), then the
    /// caller's bytes as they are, until it closes its side.
    Upgrade {
        /// The target answered `101`.
        switched: bool,
    },
}

/// A request body on its way to the target (protocol 2 stream data).
pub(super) struct Upload {
    pub(super) body: UploadBody,
    /// Bytes the target lets the caller send before it grants more.
    pub(super) credit: u64,
    /// The body has all gone (or it was whole, with the head).
    pub(super) done: bool,
    /// The caller closed its side of a switched connection (its end went to the target):
    /// its connection is not watched any more.
    pub(super) eof: bool,
}

impl Upload {
    /// A request that went whole: nothing left to send.
    pub(super) fn whole() -> Upload {
        Upload {
            body: UploadBody::Length(0),
            credit: 0,
            done: true,
            eof: false,
        }
    }

    /// A body that streams (an upgrade's, if `upgrade`), with the initial window of credit.
    pub(super) fn streamed(framing: Framing, upgrade: bool) -> Upload {
        let body = match framing {
            _ if upgrade => UploadBody::Upgrade { switched: false },
            Framing::Chunked => UploadBody::Chunked(ChunkedScanner::new()),
            Framing::Length(n) => UploadBody::Length(n),
            Framing::None => UploadBody::Length(0),
        };
        Upload {
            body,
            credit: STREAM_WINDOW,
            done: false,
            eof: false,
        }
    }

    /// The request of an upgrade the target did not switch: it ends here, bodiless.
    pub(super) fn is_unswitched_upgrade(&self) -> bool {
        matches!(self.body, UploadBody::Upgrade { switched: false }) && !self.done
    }
}

impl IngressConn {
    /// Send what has arrived of a streamed request body, as far as the credit goes: data
    /// split off the read buffer without copying, then the end once the body is complete.
    pub(super) fn send_upload(
        &mut self,
        upload: &mut Upload,
        owner: u16,
        origin: ConnRef,
        cseq: u64,
    ) -> Result<(), ChunkedError> {
        while !upload.done {
            let max = usize::try_from(upload.credit).unwrap_or(usize::MAX);
            let piece = match &mut upload.body {
                UploadBody::Length(0) => ChunkedPiece::End,
                UploadBody::Length(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(max)
                        .min(self.buf.len());
                    *left -= n as u64;
                    if n == 0 {
                        ChunkedPiece::More
                    } else {
                        ChunkedPiece::Data(self.buf.split_to(n).freeze())
                    }
                }
                UploadBody::Chunked(scanner) => scanner.take_data(&mut self.buf, max)?,
                UploadBody::Upgrade { switched: false } => ChunkedPiece::More,
                UploadBody::Upgrade { switched: true } => {
                    let n = max.min(self.buf.len());
                    if n == 0 {
                        ChunkedPiece::More
                    } else {
                        ChunkedPiece::Data(self.buf.split_to(n).freeze())
                    }
                }
            };
            let shard = &self.shard;
            match piece {
                ChunkedPiece::Data(data) => {
                    upload.credit -= data.len() as u64;
                    shard.stream_from_http_caller(owner, origin, cseq, Verb::Data, data);
                }
                ChunkedPiece::End => {
                    upload.done = true;
                    shard.stream_from_http_caller(owner, origin, cseq, Verb::End, Bytes::new());
                    self.release_buffer();
                }
                ChunkedPiece::More => break,
            }
        }
        Ok(())
    }

    /// The caller's chunked body broke its grammar midway: the target's stream is reset, and
    /// the caller gets `400` if no answer has started (else the connection just closes).
    pub(super) async fn broken_upload(
        &mut self,
        error: ChunkedError,
        owner: u16,
        origin: ConnRef,
        cseq: u64,
        answer: Option<HttpBodyFraming>,
    ) -> Result<Next, IngressEnd> {
        self.shard.caller_gone_from(owner, origin, cseq);
        // No answer for this CSeq may be written after the error.
        self.caller.expect(0);
        if answer.is_none() {
            let reason = format!("chunked body: {error}");
            self.write_error(AnswerError::BadRequest, &reason, Next::Close)
                .await?;
        }
        Ok(Next::Close)
    }

    /// Read more of a streamed request body into the buffer (at most a read's worth of room is
    /// added, so what is held stays within the credit plus one read).
    pub(super) fn poll_read_upload(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() == self.buf.len() {
            self.buf.reserve(UPLOAD_READ_BYTES);
        }
        poll_read_buf(&mut self.io, cx, &mut self.buf)
    }
}
