//! One UDP worker's answering state, shared by the socket path (`udp`) and the AF_XDP
//! path (`xdp`): a datagram in, an answer (or nothing) out, with rate limiting,
//! counters, dnstap and IXFR over UDP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::answers::Snapshot;
use super::dnstap::{Dnstap, Protocol as DnstapProtocol};
use super::engine::servfail::guard;
use super::engine::{Answered, Outcome, Responder, Transport};
use super::rrl::{LARGE_RESPONSE, RateLimiter, ResponseClass, Verdict, truncate_to_question};
use super::transfer::TransferHandler;
use super::wire::HEADER_LEN;
use super::wire::rcode;
use crate::telemetry::metrics::DnsCounters;

/// One worker's answering state, the same whichever way datagrams move.
pub(super) struct Worker {
    pub(super) responder: Responder,
    pub(super) limiter: Option<RateLimiter>,
    pub(super) counters: Arc<DnsCounters>,
    pub(super) dnstap: Option<Dnstap>,
    pub(super) transfers: Option<Arc<dyn TransferHandler>>,
    pub(super) local: SocketAddr,
    pub(super) epoch: Instant,
}

impl Worker {
    /// Milliseconds for the rate limiter (read once per batch; 0 without one).
    pub(super) fn now_ms(&self) -> u64 {
        match self.limiter {
            Some(_) => self.epoch.elapsed().as_millis() as u64,
            None => 0,
        }
    }

    /// Answers one datagram from `src` into `out`; whether to send it.
    pub(super) fn answer(
        &mut self,
        snapshot: &Snapshot,
        query: &[u8],
        src: SocketAddr,
        now_ms: u64,
        out: &mut Vec<u8>,
    ) -> bool {
        let counters = &self.counters;
        if let Some(tap) = &self.dnstap {
            tap.query(DnstapProtocol::Udp, src, self.local, query);
        }
        let transfer = self
            .transfers
            .as_ref()
            .filter(|_| super::wire::question_type(query) == Some(crate::zone::rtype::IXFR));
        let (outcome, panicked) = match transfer {
            // IXFR over UDP (rare: secondaries and tools, never resolvers).
            Some(handler) => guard(query, out, |out| {
                match handler.answer_udp(snapshot, query, src) {
                    Some(reply) => {
                        out.clear();
                        out.extend_from_slice(&reply);
                        Outcome::Answered(transfer_answered(&reply))
                    }
                    None => self
                        .responder
                        .respond(snapshot, query, src.ip(), Transport::Udp, out),
                }
            }),
            None => {
                self.responder
                    .respond_or_servfail(snapshot, query, src.ip(), Transport::Udp, out)
            }
        };
        if panicked {
            counters.internal_error();
            tracing::error!(%src, "internal error while answering; SERVFAIL sent");
        }
        match outcome {
            Outcome::Answered(answered) => {
                let truncated = out.get(2).is_some_and(|flags| flags & 0x02 != 0);
                if let Some(limiter) = self.limiter.as_mut() {
                    let name = answered
                        .name_offset
                        .and_then(|offset| query.get(HEADER_LEN + usize::from(offset)..));
                    match limiter.check(now_ms, src.ip(), answered.class, name) {
                        Verdict::Send => {}
                        Verdict::Slip if truncate_to_question(out) => counters.rrl_slipped(),
                        Verdict::Slip | Verdict::Drop => {
                            counters.rrl_dropped();
                            return false;
                        }
                    }
                }
                counters.response_in(answered.rcode, answered.zone);
                if let Some(slot) = answered.trickle {
                    counters.trickle(slot);
                }
                if truncated {
                    counters.truncated();
                }
                if let Some(tap) = &self.dnstap {
                    tap.response(DnstapProtocol::Udp, src, self.local, out);
                }
                true
            }
            Outcome::Dropped => {
                counters.dropped();
                false
            }
        }
    }
}

/// How a transfer handler's UDP answer is counted and rate limited: by its rcode,
/// bucketed by the query name (a large answer as such).
fn transfer_answered(reply: &[u8]) -> Answered {
    let code = reply.get(3).map_or(rcode::SERVFAIL, |b| u16::from(b & 0xF));
    if code != rcode::NOERROR {
        return Answered::error(code);
    }
    let class = if reply.len() > LARGE_RESPONSE {
        ResponseClass::Large
    } else {
        ResponseClass::Answer
    };
    Answered {
        rcode: code,
        class,
        name_offset: Some(0),
        // Transfers are counted per zone by the transfer handler itself.
        zone: None,
        trickle: None,
    }
}
