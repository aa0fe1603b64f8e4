//! A caller's request to switch protocols (a stream request that keeps `Connection: upgrade`
//! and `Upgrade`), sent to the service on a connection of its own. A `101` from the service
//! turns that connection and the exchange into two byte streams, data messages both ways,
//! until each side ends its own or either breaks; the connection never returns to the pool.
//! Any other answer is an ordinary response, and the caller's (empty) request stream ends.

use super::answer::answer;
use super::config::ServiceConfig;
use super::pool::{HeadError, ServicePool, read_response_head};
use super::request::ServiceHead;
use super::response::tunnel_stream_head;
use super::{fresh_connection, service_failed, timed_out};
use crate::endpoint::http1;
use crate::endpoint::pump::splice;
use crate::endpoint::session::{Incoming, Session};
use crate::endpoint::stream::InboundBody;
use crate::proto::http1::write;

/// Send the upgrade request to the service and serve its answer.
pub(super) async fn forward(
    session: &Session,
    request: &Incoming,
    head: ServiceHead,
    protocol: &[u8],
    mut body: InboundBody,
    pool: &ServicePool,
    config: &ServiceConfig,
) {
    let ServiceHead {
        lines: mut wire,
        is_head,
        ..
    } = head;
    write::put_header(&mut wire, b"Connection", b"Upgrade");
    write::put_header(&mut wire, b"Upgrade", protocol);
    wire.extend_from_slice(b"\r\n");
    let Some(mut lease) = fresh_connection(session, request, pool, &wire, config).await else {
        return;
    };
    let mut buf = http1::head_buffer();
    let read = read_response_head(
        &mut lease.stream,
        &mut buf,
        is_head,
        true,
        pool.max_head_bytes,
    );
    let mut response = match tokio::time::timeout(config.service_timeout, read).await {
        Ok(Ok(response)) => response,
        Ok(Err(HeadError::NothingBack(e) | HeadError::Failed(e))) => {
            return service_failed(session, request, pool.addr(), e.into()).await;
        }
        Err(_) => return timed_out(session, request, config).await,
    };
    if response.status == 101 {
        let head = tunnel_stream_head(&mut response);
        let Some(writer) = session.respond_streaming(request, head, None).await else {
            return;
        };
        splice(
            &mut lease.stream,
            &mut buf,
            body,
            writer,
            config.service_timeout,
        )
        .await;
        return;
    }
    // Not switched. The caller ends its empty request stream when it sees the answer (or a
    // whole answer ends the exchange): until then it is taken and dropped.
    let drain = async {
        while let Some(Ok(piece)) = body.chunk().await {
            body.release(piece.len());
        }
    };
    let max_body_bytes = config.max_body_bytes.min(session.max_body_bytes());
    let limits = (config.service_timeout, max_body_bytes);
    let io = (&mut lease.stream, &mut buf);
    let answered = answer(
        session,
        (request, pool.addr()),
        &mut response,
        io,
        is_head,
        limits,
    );
    tokio::join!(answered, drain);
}
