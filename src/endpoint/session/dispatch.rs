//! A message from the proxy, where it belongs: a response to the request waiting for it
//! (matched by CSeq), a request to whoever serves them (or, when nobody does, straight back
//! as `501 no-service`), a stream message to its exchange. Nothing here waits: the reader
//! must keep reading, since every stream on the tunnel depends on it for its data, its
//! credit and its end.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc::error::TrySendError;

use super::TunnelResponse;
use super::incoming::{Incoming, Unanswered};
use super::shared::{Link, Shared, lock};
use super::writer::{Outgoing, finish_head};
use crate::endpoint::stream::{Exchange, InboundBody, Start};
use crate::proto::answer_error::AnswerError;
use crate::proto::head::{self, HeadInfo, HeadKind, HeadLimits};
use crate::proto::http1::framing::Framing;
use crate::proto::http1::write;
use crate::proto::stream::{self, Direction, Verb};

/// A data message (not an indication) from the proxy.
pub(super) fn on_message(shared: &Shared, link: &Link, payload: Bytes, limits: &HeadLimits) {
    if stream::is_stream(&payload) {
        return on_stream_message(shared, link, payload);
    }
    let info = match head::inspect(&payload, limits) {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "tunnel: unusable message from the proxy dropped");
            return;
        }
    };
    match info.kind {
        HeadKind::Response => on_response(shared, link, payload, &info),
        HeadKind::Request if shared.serving.load(Ordering::Acquire) => {
            on_request(shared, link, payload, &info)
        }
        HeadKind::Request => {
            const BODY: &str = "this endpoint does not serve requests\n";
            answer(link, info.cseq, AnswerError::NoService, BODY);
        }
    }
}

/// The declared length of a stream head, if it has one.
fn declared(info: &HeadInfo) -> Option<u64> {
    match info.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    }
}

/// A response: to the request waiting for it, with its body streaming when it has a
/// stream head. A whole answer to a request whose body still streams ends that exchange.
fn on_response(shared: &Shared, link: &Link, payload: Bytes, info: &HeadInfo) {
    let waiter = lock(&shared.state).waiters.take(info.cseq);
    let exchange = link.streams.get(Direction::Outgoing, info.cseq);
    let body = if info.stream {
        let exchange = exchange.unwrap_or_else(|| {
            let exchange = Exchange::new(
                (Direction::Outgoing, info.cseq),
                link.queues.clone(),
                Arc::clone(&link.streams),
                shared.config.credit_timeout,
                Start::Done,
                Start::Waiting,
            );
            link.streams.insert(&exchange);
            exchange
        });
        exchange.response_arrived(Some(declared(info)));
        Some(InboundBody::new(exchange))
    } else {
        if let Some(exchange) = exchange {
            exchange.response_arrived(None);
        }
        None
    };
    let response = TunnelResponse {
        message: payload,
        head_len: info.head_len,
        body,
    };
    match waiter {
        // A streamed body nobody takes is dropped with the response: reset `cancel`.
        Some(waiter) => {
            let _ = waiter.send(Ok(response));
        }
        None => tracing::debug!(cseq = info.cseq, "tunnel: response nobody waits for"),
    }
}

/// A request to serve, its body streaming when it has a stream head. When the server
/// already has as many requests as it may queue, the request is answered
/// `503 target-busy` at once rather than waited for.
fn on_request(shared: &Shared, link: &Link, payload: Bytes, info: &HeadInfo) {
    let exchange = info.stream.then(|| {
        let exchange = Exchange::new(
            (Direction::Incoming, info.cseq),
            link.queues.clone(),
            Arc::clone(&link.streams),
            shared.config.credit_timeout,
            Start::Waiting,
            Start::Streaming(declared(info)),
        );
        link.streams.insert(&exchange);
        exchange
    });
    let incoming = Incoming {
        generation: link.generation,
        cseq: info.cseq,
        message: payload,
        head_len: info.head_len,
        body: exchange.clone().map(InboundBody::new),
        _unanswered: exchange.clone().map(Unanswered),
    };
    let refused = match shared.incoming_tx.try_send(incoming) {
        Ok(()) => return,
        Err(TrySendError::Full(refused)) => {
            let body = "this endpoint is handling as many requests as it may; try again\n";
            answer(link, refused.cseq, AnswerError::TargetBusy, body);
            refused
        }
        Err(TrySendError::Closed(refused)) => {
            let body = "this endpoint no longer serves requests\n";
            answer(link, refused.cseq, AnswerError::NoService, body);
            refused
        }
    };
    // Answered whole: the exchange is over, and its body goes without a reset.
    if let Some(exchange) = exchange {
        exchange.responded(false);
    }
    drop(refused);
}

/// An answer the endpoint makes itself, queued where it cannot wait.
fn answer(link: &Link, cseq: u64, error: AnswerError, reason: &'static str) {
    let mut head = BytesMut::new();
    write::put_answer_head(&mut head, error, None, reason.len());
    finish_head(&mut head, cseq);
    link.queues.control(Outgoing::Message {
        head: head.freeze(),
        body: Bytes::from_static(reason.as_bytes()),
    });
}

/// A stream message: to the exchange it names (`>`: our call, `<`: a request we serve).
/// One for an exchange that is over is late, and dropped.
fn on_stream_message(shared: &Shared, link: &Link, payload: Bytes) {
    let tag = match stream::parse(&payload) {
        Ok(tag) => tag,
        Err(e) => {
            tracing::warn!(error = %e, "tunnel: malformed stream message from the proxy dropped");
            return;
        }
    };
    let Some(exchange) = link.streams.get(tag.dir, tag.cseq) else {
        tracing::debug!(cseq = tag.cseq, dir = ?tag.dir, "tunnel: stream message for an exchange that is over");
        return;
    };
    match tag.verb {
        Verb::Data => exchange.on_data(payload.slice(tag.payload_at..)),
        Verb::End => exchange.on_end(),
        Verb::Credit(n) => exchange.on_credit(n),
        Verb::Reset(reason) => {
            exchange.on_reset(reason);
            // A call reset before its answer came has no answer coming.
            if tag.dir == Direction::Outgoing {
                if let Some(waiter) = lock(&shared.state).waiters.take(tag.cseq) {
                    let _ = waiter.send(Err(super::Failure::TargetGone));
                }
            }
        }
    }
}
