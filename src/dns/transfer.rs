//! The hook for zone transfers: AXFR and IXFR over TCP, IXFR over UDP.
//!
//! The TCP path checks each query's QTYPE (cheaply, before answering) and, when it
//! is AXFR (252) or IXFR (251) and a [`TransferHandler`] is installed, lets the
//! handler answer. The UDP path does the same for IXFR alone (RFC 1995 §2: the
//! difference if it fits in one datagram, else the current SOA, which sends the
//! client to TCP). Without a handler, or when the handler declines, the
//! [`Responder`](super::engine::Responder) answers as for any query (REFUSED:
//! transfers not offered). A handler is installed with the `transfers` argument of [`super::DnsServer::start`].

use std::net::SocketAddr;

use super::answers::Snapshot;
use crate::zone::rtype;

/// Answers zone-transfer queries over TCP.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) trait TransferHandler: Send + Sync {
    /// Whether the handler answers `query` (default: QTYPE AXFR or IXFR; a handler
    /// may claim more, e.g. TSIG-signed SOA queries whose answers it must sign).
    fn wants(&self, query: &[u8]) -> bool {
        super::wire::question_type(query).is_some_and(is_transfer)
    }

    /// Answers the transfer query `query` (a whole DNS message, as received) from
    /// `client`, reading zones from `snapshot`: the messages to write, in order
    /// (each at most 65535 bytes; the TCP path adds the length prefixes), or `None`
    /// to let the responder answer it instead.
    fn answer_transfer(
        &self,
        snapshot: &Snapshot,
        query: &[u8],
        client: SocketAddr,
    ) -> Option<Vec<Vec<u8>>>;

    /// Answers an IXFR query received over UDP (a whole DNS message) from `client`
    /// with one message that fits the datagram size the query allows (RFC 1995 §2):
    /// the transfer if it fits, else the current SOA alone. Runs on a UDP worker
    /// thread, so it must not wait on a lock held for long. `None` (the default):
    /// the responder answers it (NOTAUTH).
    fn answer_udp(
        &self,
        _snapshot: &Snapshot,
        _query: &[u8],
        _client: SocketAddr,
    ) -> Option<Vec<u8>> {
        None
    }
}

/// Whether `qtype` asks for a zone transfer.
pub(crate) fn is_transfer(qtype: u16) -> bool {
    matches!(qtype, rtype::AXFR | rtype::IXFR)
}
