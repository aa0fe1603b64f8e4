//! A streamed response from the tunnel, written to the local client as it arrives: with
//! `Content-Length` when the sender declared one, chunked when not (close-delimited for an
//! HTTP/1.0 client), each piece's credit granted back only once the client has taken it, so
//! a client that reads slowly slows the sender rather than growing the agent.
//!
//! A stream that breaks (a reset, the tunnel gone) ends the client's connection without the
//! body's end: no last chunk, fewer bytes than declared, or a reset connection where the
//! body was close-delimited. The client sees a broken body, never a short one that looks
//! complete.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::local_error::{LocalError, write_local_error};
use super::response::{Reply, put_client_head};
use crate::endpoint::http1::{self, CHUNK_END, LAST_CHUNK, MAX_HEADERS};
use crate::endpoint::stream::InboundBody;
use crate::endpoint::timed_write::{within, write_three, write_two};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::{framing, parse, write};

/// Room for the head written to the client.
const HEAD_CAPACITY_BYTES: usize = 1024;
/// Bytes read from a client while its response streams (to notice that it went away).
const WATCH_READ_BYTES: usize = 4096;

/// How a streamed response ended on the client's connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Streamed {
    /// Written whole; `close`: the connection ends after it.
    Complete { close: bool },
    /// The stream broke, or the client went away: the connection must end now. `reset`:
    /// end it with a TCP reset, because the body was close-delimited and a plain close
    /// would look like its end.
    Broken { reset: bool },
}

/// How the body is framed towards the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length,
    Chunked,
    UntilClose,
}

/// Write the response whose head is `message` and whose body streams in `body`. When
/// `watch` is given (the request is complete), the client's connection is read meanwhile:
/// a client that closes it resets the stream at once; bytes it pipelines stay in `buf`.
pub(super) async fn write_streamed<R, W>(
    wr: &mut W,
    watch: Option<(&mut R, &mut BytesMut)>,
    message: &Bytes,
    mut body: InboundBody,
    reply: &Reply,
) -> std::io::Result<Streamed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut resp = httparse::Response::new(&mut []);
    let status = match parse::response(&mut resp, message, &mut headers) {
        Ok(httparse::Status::Complete(_)) => resp.code.unwrap_or(0),
        _ => 0,
    };
    if !(200..=999).contains(&status) {
        // An interim or unreadable head is no answer; the body goes with it (reset).
        drop(body);
        let why = "unusable streamed response from the target";
        let answer = LocalError::answer(AnswerError::BadResponse, why, reply.close);
        write_local_error(wr, &answer, reply.limit).await?;
        return Ok(Streamed::Complete { close: reply.close });
    }
    let mut head = BytesMut::with_capacity(HEAD_CAPACITY_BYTES);
    let declared = put_client_head(&mut head, &resp);
    if framing::response_is_bodiless(status, reply.is_head) {
        // No body may follow this head: the stream is not wanted (reset `cancel`).
        drop(body);
        http1::put_response_length(&mut head, status, reply.is_head, declared, 0);
        return finish_head_only(wr, head, reply).await;
    }
    let framing = match declared {
        Some(value) => {
            // The proxy holds the stream to exactly this length (docs/protocol.md §12).
            write::put_header(&mut head, b"Content-Length", value);
            Framing::Length
        }
        None if reply.http10 => Framing::UntilClose,
        None => {
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            Framing::Chunked
        }
    };
    let close = reply.close || framing == Framing::UntilClose;
    if close {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    within(reply.limit, write_two(wr, &head, b"")).await?;
    let broken = Streamed::Broken {
        reset: framing == Framing::UntilClose,
    };
    let mut watch = watch;
    loop {
        let next = match watch.as_mut() {
            Some((rd, buf)) => {
                tokio::select! {
                    next = body.chunk() => next,
                    gone = client_gone(rd, buf) => match gone {
                        true => return Ok(broken),
                        // Bytes of a next request: kept, and the watch ends.
                        false => {
                            watch = None;
                            continue;
                        }
                    },
                }
            }
            None => body.chunk().await,
        };
        match next {
            Some(Ok(piece)) => {
                let n = piece.len();
                let written = match framing {
                    Framing::Chunked => {
                        let mut size = BytesMut::with_capacity(20);
                        http1::put_chunk_size(&mut size, n);
                        within(reply.limit, write_three(wr, &size, &piece, CHUNK_END)).await
                    }
                    Framing::Length | Framing::UntilClose => {
                        within(reply.limit, write_two(wr, &piece, b"")).await
                    }
                };
                // A client that took nothing in time, or went away: the body is broken (a
                // plain close would end a close-delimited one as if it were complete).
                if let Err(e) = written {
                    tracing::debug!(error = %e, "listener: the client did not take the streamed response");
                    return Ok(broken);
                }
                // The client has it: the sender may send as much again.
                body.release(n);
            }
            None => {
                if framing == Framing::Chunked {
                    if let Err(e) = within(reply.limit, write_two(wr, LAST_CHUNK, b"")).await {
                        tracing::debug!(error = %e, "listener: the client did not take the last chunk");
                        return Ok(broken);
                    }
                }
                return Ok(Streamed::Complete { close });
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "listener: the streamed response broke");
                return Ok(broken);
            }
        }
    }
}

/// A head with no body after it.
async fn finish_head_only<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut head: BytesMut,
    reply: &Reply,
) -> std::io::Result<Streamed> {
    if reply.close {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    within(reply.limit, write_two(wr, &head, b"")).await?;
    Ok(Streamed::Complete { close: reply.close })
}

/// Read from the client while its answer streams: true when it closed its connection (or
/// the read failed), false when it sent bytes (a pipelined request, kept in `buf`).
pub(super) async fn client_gone<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) -> bool {
    buf.reserve(WATCH_READ_BYTES);
    !matches!(rd.read_buf(buf).await, Ok(n) if n > 0)
}
