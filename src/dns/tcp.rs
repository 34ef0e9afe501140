//! DNS over TCP through hickory-server's listener (framing, idle timeouts,
//! connection handling), answered by the same [`Responder`] as UDP.
//!
//! The responder produces wire bytes; they are decoded into hickory records and
//! handed to hickory's response path, so TCP answers carry exactly the records,
//! flags and EDNS options the UDP path would (without the size limit).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::{Header, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::engine::{Outcome, Responder, Transport, fresh_seed};
use super::snapshot::SharedSnapshot;
use super::xfr::{self, TransferState};
use crate::metrics::DnsCounters;

/// hickory-server request handler backed by the shared snapshot.
pub struct TcpHandler {
    shared: SharedSnapshot,
    counters: Arc<DnsCounters>,
    seed: AtomicU64,
    /// Zone transfers (None: AXFR/IXFR go to the responder, which refuses them).
    transfer: Option<Arc<TransferState>>,
}

impl TcpHandler {
    /// A handler answering from `shared`, and serving transfers from `transfer`.
    pub fn new(
        shared: SharedSnapshot,
        counters: Arc<DnsCounters>,
        transfer: Option<Arc<TransferState>>,
    ) -> Self {
        Self {
            shared,
            counters,
            seed: AtomicU64::new(fresh_seed()),
            transfer,
        }
    }
}

fn failure(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: Default::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // ---- zone transfers (issue 12): AXFR/IXFR (and TSIG-signed queries) go to
        // dns::xfr instead of the responder. A TCP loop of its own moves this block
        // as is, writing `xfr::transfer(bytes, source, state)`'s messages in order.
        if let Some(transfer) = &self.transfer {
            if xfr::wants(request.as_slice()) {
                return xfr::hickory::serve(transfer, request, response_handle)
                    .await
                    .unwrap_or_else(|| failure(request));
            }
        }
        // ---- end of zone transfers
        let snapshot = self.shared.load_full();
        let seed = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let mut responder = Responder::new(seed);
        let mut out = Vec::with_capacity(1024);
        let outcome = responder.respond(
            &snapshot,
            request.as_slice(),
            request.src().ip(),
            Transport::Tcp,
            &mut out,
        );
        let rcode = match outcome {
            Outcome::Answered(rcode) => rcode,
            Outcome::Dropped => {
                self.counters.dropped();
                return failure(request);
            }
        };
        let message = match Message::from_vec(&out) {
            Ok(message) => message,
            Err(error) => {
                self.counters.internal_error();
                tracing::error!(%error, "cannot decode our own TCP response");
                return failure(request);
            }
        };
        self.counters.response(rcode);
        let edns = message.edns.clone();
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let response = builder.build(
            message.metadata,
            message.answers.iter(),
            message.authorities.iter(),
            std::iter::empty(),
            message.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "TCP response not sent");
                failure(request)
            }
        }
    }
}
