//! A message from the proxy, where it belongs: a response to the request waiting for it
//! (matched by CSeq), a request to whoever serves them, or, when nobody does, straight back
//! as `501 no-service`.

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::incoming::Incoming;
use super::shared::{Shared, lock};
use super::writer::{Outgoing, finish_head};
use crate::proto::answer_error::AnswerError;
use crate::proto::head::{self, HeadKind, HeadLimits};
use crate::proto::http1::write;

/// An HTTP message from the proxy: a response to match, or a request to serve.
pub(super) async fn on_message(
    shared: &Shared,
    generation: u64,
    payload: Bytes,
    limits: &HeadLimits,
    out: &mpsc::Sender<Outgoing>,
) {
    let info = match head::inspect(&payload, limits) {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "tunnel: unusable message from the proxy dropped");
            return;
        }
    };
    match info.kind {
        HeadKind::Response => {
            let waiter = lock(&shared.state).waiters.take(info.cseq);
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(Ok(payload));
                }
                // Its caller gave up already.
                None => tracing::debug!(cseq = info.cseq, "tunnel: response nobody waits for"),
            }
        }
        HeadKind::Request if shared.serving.load(Ordering::Acquire) => {
            let incoming = Incoming {
                generation,
                cseq: info.cseq,
                message: payload,
                head_len: info.head_len,
            };
            // Waits when the server is at its limit: reading stops, and the proxy answers
            // further callers `target-busy` rather than anything piling up here.
            let _ = shared.incoming_tx.send(incoming).await;
        }
        HeadKind::Request => {
            const BODY: &[u8] = b"this endpoint does not serve requests\n";
            let mut head = BytesMut::new();
            write::put_answer_head(&mut head, AnswerError::NoService, None, BODY.len());
            finish_head(&mut head, info.cseq);
            let body = Bytes::from_static(BODY);
            let _ = out
                .send(Outgoing::Message {
                    head: head.freeze(),
                    body,
                })
                .await;
        }
    }
}
