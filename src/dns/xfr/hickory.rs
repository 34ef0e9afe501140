//! The adapter from [`super::TransferState::respond`] to hickory-server's TCP
//! response handle (the current TCP path, `dns::tcp`).
//!
//! hickory-server re-encodes every message it sends, so a signed transfer cannot be
//! handed over as bytes: each message is decoded, encoded the way hickory will send
//! it, signed over those exact bytes, and sent with the TSIG record attached.
//! A TCP loop of our own would call [`super::transfer`] and write its messages.

use std::sync::Arc;

use hickory_proto::op::Message;
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, TsigError, make_tsig_record};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::TransferState;
use super::tsig::{TsigRecord, unix_now};
use crate::zone::name;

/// Answers a transfer request on `handle`. `None`: nothing was sent (the request is
/// dropped, or the connection failed).
pub async fn serve<R: ResponseHandler>(
    state: &Arc<TransferState>,
    request: &Request,
    mut handle: R,
) -> Option<ResponseInfo> {
    let bytes = request.as_slice().to_vec();
    let source = request.src().ip();
    let worker = state.clone();
    let reply = tokio::task::spawn_blocking(move || worker.respond(&bytes, source))
        .await
        .ok()??;
    let mut signing = reply.signing;
    let mut last = None;
    for wire in reply.messages {
        let message = Message::from_vec(&wire).ok()?;
        let build = || {
            MessageResponseBuilder::new(&request.queries, None).build(
                message.metadata,
                message.answers.iter(),
                std::iter::empty::<&Record>(),
                std::iter::empty::<&Record>(),
                std::iter::empty::<&Record>(),
            )
        };
        let mut unsigned = Vec::with_capacity(wire.len() + 64);
        build()
            .destructive_emit(&mut BinEncoder::new(&mut unsigned))
            .ok()?;
        let mut response = build();
        if let Some(tsig) = signing.next(&unsigned, unix_now()) {
            response.set_signature(Box::new(hickory_record(&tsig)));
        }
        match handle.send_response(response).await {
            Ok(info) => last = Some(info),
            Err(error) => {
                tracing::debug!(%error, "transfer message not sent");
                return None;
            }
        }
    }
    last
}

/// Our TSIG record as hickory's.
fn hickory_record(tsig: &TsigRecord) -> Record<TSIG> {
    let rdata = TSIG::new(
        TsigAlgorithm::from_name(name::name_from_wire(&tsig.algorithm)),
        tsig.time,
        tsig.fudge,
        tsig.mac.clone(),
        tsig.original_id,
        (tsig.error != 0).then(|| TsigError::from(tsig.error)),
        tsig.other.clone(),
    );
    make_tsig_record(name::name_from_wire(&tsig.key_name), rdata)
}
