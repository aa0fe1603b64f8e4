//! Registration, on the shard that owns the address: claim it (free, takeover with the same
//! token, or 409), check the tokens file, answer `101` and `:host`, and start the
//! connection's driver. Synchronous from the claim to the spawn, so two registrations for one
//! name can never interleave.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::proto::address::VirtualAddress;
use crate::proto::frame::{self, OpCode};
use crate::proto::handshake::{self, UpgradeRequest};
use crate::proto::indication::{self, IndicationError};
use crate::proxy::conn::Conn;
use crate::proxy::conn_driver;
use crate::proxy::messages::{Handoff, OutFrame};
use crate::proxy::shard::Shard;
use crate::proxy::table::{Claim, CredentialHash};
use crate::proxy::transport::{Transport, write_all};

/// How addresses the proxy assigns (for path `/`) begin; 64 random bits follow, so nobody
/// can guess and squat on the next one.
const ASSIGNED_ADDRESS_PREFIX: &str = "ep-";

/// A connection handed over by the shard that accepted it.
pub fn adopt(shard: &Rc<Shard>, handoff: Handoff) {
    let Handoff {
        transport,
        request,
        address,
        leftover,
    } = handoff;
    let io = match Transport::attach(transport) {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!(error = %e, "could not adopt a connection");
            return;
        }
    };
    register(shard, io, request, address, BytesMut::from(&leftover[..]));
}

/// Register on the owner shard: claim the address, answer 101 and `:host`, start the driver.
/// Synchronous up to the spawn, so two registrations for one name cannot interleave.
pub(crate) fn register(
    shard: &Rc<Shard>,
    io: Transport,
    request: UpgradeRequest,
    address: VirtualAddress,
    leftover: BytesMut,
) {
    if shard.is_draining() {
        monoio::spawn(refuse(
            io,
            handshake::refusal(503, "the proxy is shutting down"),
            shard.config.handshake_timeout,
        ));
        return;
    }
    let credential: Option<CredentialHash> = request
        .token
        .as_ref()
        .map(|t| Sha256::digest(t.as_str().as_bytes()).into());
    // The tokens file is checked here, on the owner shard, with the one hash of the token
    // that the takeover check below uses too.
    let assigned = request.address.is_none();
    if let Err(denied) =
        shard
            .policy()
            .authorize(credential.as_ref(), &address, assigned, request.public)
    {
        tracing::debug!(%address, status = denied.status(), "registration refused by the tokens file");
        monoio::spawn(refuse(
            io,
            handshake::refusal(denied.status(), &denied.to_string()),
            shard.config.handshake_timeout,
        ));
        return;
    }
    let claim = shard.claim(&address, credential.as_ref());
    match claim {
        Claim::Free => {}
        Claim::Conflict { credential } => {
            tracing::debug!(%address, "registration refused: address held");
            // Agents read "another credential" as "retrying cannot help" (docs/protocol.md §1).
            let reason = if credential {
                format!("address {address} is held by another credential")
            } else {
                format!(
                    "address {address} is held by another connection (registered without a \
                     token: it is free once that connection ends)"
                )
            };
            monoio::spawn(refuse(
                io,
                handshake::refusal(409, &reason),
                shard.config.handshake_timeout,
            ));
            return;
        }
        Claim::Takeover(old_key) => {
            if let Some(old) = shard.conn(old_key) {
                tracing::info!(%address, "address taken over by a new connection with the same token");
                let reason = "another connection with the same credential took over this address";
                shard.send_indication(&old, IndicationError::Replaced, reason);
                let close = shard.close_frame(1000, "replaced");
                shard.close_connection(&old, close);
            }
        }
    }
    let (public, protocol) = (request.public, request.protocol);
    let Some(conn) = shard.register(address.clone(), credential, |key| {
        Conn::new(key, address.clone(), public, protocol, leftover)
    }) else {
        return;
    };
    // The 101 and the `:host` indication go out first, ahead of anything relayed to it.
    let mut hello =
        BytesMut::from(&handshake::response_101(&request.accept_key, request.protocol)[..]);
    frame::encode_frame(
        &mut hello,
        OpCode::Text,
        None,
        indication::encode_host(address.as_str()).as_bytes(),
    );
    shard.queue(
        &conn,
        OutFrame {
            head: hello.freeze(),
            body: Bytes::new(),
        },
    );
    tracing::debug!(%address, shard = shard.id, "registered");
    monoio::spawn(conn_driver::drive(shard.clone(), conn, io));
}

pub(crate) async fn refuse(mut io: Transport, response: Vec<u8>, timeout: Duration) {
    let _ = monoio::time::timeout(timeout, write_all(&mut io, &[&response])).await;
}

/// A fresh random address for a client that registered with path `/`.
pub(crate) fn assign_address() -> Option<VirtualAddress> {
    let mut bits = [0u8; 8];
    getrandom::fill(&mut bits).ok()?;
    let name = format!("{ASSIGNED_ADDRESS_PREFIX}{:016x}", u64::from_le_bytes(bits));
    VirtualAddress::parse(name.as_bytes()).ok()
}
