//! Packet in, packet out: parse, resolve, encode, truncate. Shared by UDP and TCP.
//!
//! The hot path allocates nothing: the query is parsed into stack buffers, the
//! resolution borrows from the snapshot, and a direct hit copies its pre-encoded
//! sections after the question.

use std::net::IpAddr;

use super::answers::Snapshot;
use super::resolve::{self, Client, Resolution};
use super::rrl::{LARGE_RESPONSE, ResponseClass};
pub(crate) mod servfail;

use self::servfail::guard;
use super::wire::{
    self, Edns, OPTION_CLIENT_SUBNET, OPTION_TCP_KEEPALIVE, Parsed, Query, Rejection, rcode,
};
use super::writer::{Header, Owner, Writer, response_flags};
use crate::model::SplitMix64;
use crate::zone::rtype;

/// Class IN.
use crate::proto::class::IN as CLASS_IN;

/// QCLASS ANY (`*`, RFC 1035 §3.2.5).
const CLASS_ANY: u16 = 255;

/// Transport a query arrived on (sets the response size limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Transport {
    /// UDP: 512 bytes, or the EDNS payload size capped by our limit.
    Udp,
    /// TCP: 65535 bytes.
    Tcp,
}

/// What [`Responder::respond`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Outcome {
    /// `out` holds a response.
    Answered(Answered),
    /// Nothing to send.
    Dropped,
}

/// A response written by [`Responder::respond`], described for counting and for
/// rate limiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Answered {
    /// Response code (may be extended).
    pub rcode: u16,
    /// The response's class (see [`super::rrl`]).
    pub class: ResponseClass,
    /// Offset in the question's name of the name the response is bucketed by (the
    /// query name, its zone's apex or its delegation point: always a suffix of the
    /// query name), or `None` for responses bucketed without a name.
    pub name_offset: Option<u8>,
    /// The per-zone counter slot of the zone the query fell in (None: no zone).
    pub zone: Option<u8>,
    /// The trickle counter slot, when a trickle answer was given.
    pub trickle: Option<u8>,
}

impl Answered {
    /// An error response, bucketed without a name.
    pub(crate) fn error(rcode: u16) -> Self {
        Self {
            rcode,
            class: ResponseClass::Error,
            name_offset: None,
            zone: None,
            trickle: None,
        }
    }
}

/// Per-thread answering state (the random source for picking answers).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Responder {
    rng: SplitMix64,
    /// Whether pre-encoded sections may be used (tests compare both ways).
    pub use_cache: bool,
    /// Responses built from pre-encoded sections.
    pub cache_hits: u64,
    /// The idle timeout (in units of 100 ms) announced with edns-tcp-keepalive
    /// (RFC 7828) to TCP queries that carry the option; `None`: never announced.
    pub tcp_keepalive: Option<u16>,
}

impl Responder {
    /// A responder seeded from `seed`.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            use_cache: true,
            cache_hits: 0,
            tcp_keepalive: None,
        }
    }

    /// Answers one message from `src`, writing the response into `out`.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn respond(
        &mut self,
        snapshot: &Snapshot,
        packet: &[u8],
        src: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Outcome {
        match wire::parse(packet) {
            Parsed::Drop => Outcome::Dropped,
            Parsed::Reject(rejection) => {
                write_rejection(&rejection, snapshot, out);
                Outcome::Answered(Answered::error(rejection.rcode))
            }
            Parsed::Query(query) => {
                Outcome::Answered(self.answer(snapshot, &query, src, transport, out))
            }
        }
    }

    /// As [`Responder::respond`], but a panic inside becomes a SERVFAIL for the
    /// query (never silence); `true` in the second place says it happened.
    pub(crate) fn respond_or_servfail(
        &mut self,
        snapshot: &Snapshot,
        packet: &[u8],
        src: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> (Outcome, bool) {
        guard(packet, out, |out| {
            self.respond(snapshot, packet, src, transport, out)
        })
    }

    fn answer(
        &mut self,
        snapshot: &Snapshot,
        query: &Query<'_>,
        src: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Answered {
        let limits = snapshot.limits;
        if let Some(edns) = &query.edns {
            if edns.version > 0 {
                let refusal = Resolution::empty(rcode::BADVERS, false);
                return Answered::error(self.write(snapshot, query, &refusal, transport, out));
            }
        }
        let mut zone_index = None;
        let refuse = |code| Resolution::empty(code, false);
        // QCLASS ANY (RFC 1035 §3.2.5) is answered from the IN data, as Knot does:
        // the question echoed with class ANY, the records of class IN, AA set (IN is
        // the only class served, so the answer covers every class there is here;
        // NSD answers the same records without AA, see RFC 1035 §6.2). Other classes
        // are refused. Zone transfers are served over TCP only (the TCP path hands
        // them to its transfer handler before the responder), and IXFR over UDP by
        // the UDP path's transfer handler when transfers are configured: here, AXFR
        // is not implemented (RFC 5936 §4.2) and IXFR not authorised, as Knot and
        // NSD answer both without transfers. Every other QTYPE (OPT, TKEY, TSIG,
        // MAILA, MAILB and unknown ones included) is looked up as data and gets
        // NODATA, as both peers answer.
        let resolution = if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
            refuse(rcode::REFUSED)
        } else if query.qtype == rtype::AXFR {
            refuse(rcode::NOTIMP)
        } else if query.qtype == rtype::IXFR {
            refuse(rcode::NOTAUTH)
        } else {
            match snapshot.zones.find_zone(query.qname.wire()) {
                None => refuse(rcode::REFUSED),
                Some(zone) => {
                    zone_index = Some(zone);
                    let client = Client {
                        addr: src,
                        subnet: query
                            .edns
                            .and_then(|e| e.client_subnet)
                            .filter(|_| limits.ecs),
                    };
                    // DNSSEC (issue 13): DO=1 gets the pre-made RRSIGs and denial.
                    resolve::resolve_dnssec(
                        snapshot,
                        zone,
                        query.qname.wire(),
                        query.qname.label_starts(),
                        query.qtype,
                        &client,
                        &mut self.rng,
                        query.edns.is_some_and(|e| e.dnssec_ok),
                    )
                }
            }
        };
        let code = resolution.rcode;
        self.write(snapshot, query, &resolution, transport, out);
        let qname_len = query.qname.wire().len();
        let suffix = |len: usize| Some(qname_len.saturating_sub(len) as u8);
        let (class, name_offset) = match code {
            rcode::NOERROR if query.qtype == rtype::ANY => (ResponseClass::Large, Some(0)),
            rcode::NOERROR if resolution.referral => {
                let cut = match resolution.authority.first().map(|rr| rr.owner) {
                    Some(Owner::Name(name)) => name.len(),
                    _ => qname_len,
                };
                (ResponseClass::Referral, suffix(cut))
            }
            rcode::NOERROR if out.len() > LARGE_RESPONSE => (ResponseClass::Large, Some(0)),
            rcode::NOERROR if out.get(6..8) == Some(&[0, 0]) => (ResponseClass::NoData, Some(0)),
            rcode::NOERROR => (ResponseClass::Answer, Some(0)),
            rcode::NXDOMAIN => {
                let apex = zone_index
                    .map(|zone| snapshot.zones.zones()[zone].origin().len())
                    .unwrap_or(1);
                (ResponseClass::NxDomain, suffix(apex))
            }
            _ => (ResponseClass::Error, None),
        };
        Answered {
            rcode: code,
            class,
            name_offset,
            zone: zone_index.map(|zone| snapshot.zones.stats_slot(zone)),
            trickle: resolution.trickle,
        }
    }

    /// Encodes a resolution, dropping optional additional data or setting TC when it
    /// does not fit the transport.
    fn write(
        &mut self,
        snapshot: &Snapshot,
        query: &Query<'_>,
        resolution: &Resolution<'_>,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> u16 {
        let limit = response_limit(
            query.edns.as_ref(),
            transport,
            snapshot.limits.max_udp_payload,
        );
        let keepalive = self
            .tcp_keepalive
            .filter(|_| transport == Transport::Tcp && query.edns.is_some_and(|e| e.tcp_keepalive));
        let options = Options {
            snapshot,
            keepalive,
        };
        let len = encode(
            query,
            resolution,
            Sections::All,
            self.use_cache,
            &options,
            out,
        );
        if len <= limit {
            if self.use_cache && resolution.cached.is_some() {
                self.cache_hits += 1;
            }
            return resolution.rcode;
        }
        if !resolution.referral && !resolution.additional.is_empty() {
            let len = encode(
                query,
                resolution,
                Sections::NoAdditional,
                false,
                &options,
                out,
            );
            if len <= limit {
                return resolution.rcode;
            }
        }
        encode(query, resolution, Sections::Truncated, false, &options, out);
        resolution.rcode
    }
}

/// Largest response for this query and transport.
pub(crate) fn response_limit(
    edns: Option<&Edns>,
    transport: Transport,
    max_udp_payload: u16,
) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match edns {
            None => 512,
            Some(e) => usize::from(e.payload.min(max_udp_payload).max(512)),
        },
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sections {
    All,
    NoAdditional,
    Truncated,
}

/// Writes the ECS option echo (RFC 7871 §7.2.1) into `out`; returns its length.
fn client_subnet_option(edns: &Edns, scope: u8, enabled: bool, out: &mut [u8; 24]) -> usize {
    let Some(subnet) = edns.client_subnet.filter(|_| enabled) else {
        return 0;
    };
    let (address, len) = subnet.address_bytes();
    out[0..2].copy_from_slice(&OPTION_CLIENT_SUBNET.to_be_bytes());
    out[2..4].copy_from_slice(&(4 + len as u16).to_be_bytes());
    out[4..6].copy_from_slice(&subnet.family.to_be_bytes());
    out[6] = subnet.source_prefix;
    // RFC 7871 §7.2.1: a query that disclosed nothing gets scope 0.
    out[7] = if subnet.source_prefix == 0 { 0 } else { scope };
    out[8..8 + len].copy_from_slice(&address[..len]);
    8 + len
}

/// What the OPT record of a response carries besides the snapshot's limits.
struct Options<'s> {
    snapshot: &'s Snapshot,
    /// edns-tcp-keepalive timeout to announce (100 ms units).
    keepalive: Option<u16>,
}

fn encode(
    query: &Query<'_>,
    resolution: &Resolution<'_>,
    sections: Sections,
    use_cache: bool,
    options: &Options<'_>,
    out: &mut Vec<u8>,
) -> usize {
    let snapshot = options.snapshot;
    let qname = &query.qname;
    let mut writer = Writer::new(out, query.question, qname.wire(), qname.label_starts());
    let (mut an, mut ns, mut ar) = (0u16, 0u16, 0u16);
    match (sections, resolution.cached) {
        (Sections::Truncated, _) => {}
        (Sections::All, Some(cached)) if use_cache => {
            writer.raw(cached.bytes);
            (an, ns, ar) = (cached.ancount, cached.nscount, cached.arcount);
        }
        _ => {
            let mut write = |section: &[resolve::RrRef<'_>], count: &mut u16| {
                for rr in section {
                    // DNSSEC (issue 13): the records, then their RRSIGs, if any.
                    *count += resolve::write_rrset(&mut writer, rr);
                }
            };
            write(&resolution.answer, &mut an);
            write(&resolution.authority, &mut ns);
            if sections == Sections::All {
                write(&resolution.additional, &mut ar);
            }
        }
    }
    if let Some(edns) = &query.edns {
        let mut subnet = [0u8; 24];
        let subnet_len =
            client_subnet_option(edns, resolution.ecs_scope, snapshot.limits.ecs, &mut subnet);
        let mut option = [0u8; 30];
        option[..subnet_len].copy_from_slice(&subnet[..subnet_len]);
        let mut option_len = subnet_len;
        if let Some(timeout) = options.keepalive {
            option[option_len..option_len + 2].copy_from_slice(&OPTION_TCP_KEEPALIVE.to_be_bytes());
            option[option_len + 2..option_len + 4].copy_from_slice(&2u16.to_be_bytes());
            option[option_len + 4..option_len + 6].copy_from_slice(&timeout.to_be_bytes());
            option_len += 6;
        }
        let extended = (resolution.rcode >> 4) as u8;
        writer.opt(
            snapshot.limits.max_udp_payload,
            extended,
            edns.dnssec_ok,
            &option[..option_len],
        );
        ar += 1;
    }
    let truncated = sections == Sections::Truncated;
    writer.finish(Header {
        id: query.id,
        flags: response_flags(
            query.flags,
            resolution.authoritative,
            truncated,
            resolution.rcode,
        ),
        qdcount: 1,
        ancount: an,
        nscount: ns,
        arcount: ar,
    })
}

fn write_rejection(rejection: &Rejection<'_>, snapshot: &Snapshot, out: &mut Vec<u8>) {
    let mut writer = match rejection.question {
        Some(question) => {
            // The question is echoed verbatim; compression never points into it here.
            let mut w = Writer::without_question(out);
            w.raw(question);
            w
        }
        None => Writer::without_question(out),
    };
    let mut arcount = 0;
    if let Some(edns) = &rejection.edns {
        writer.opt(snapshot.limits.max_udp_payload, 0, edns.dnssec_ok, &[]);
        arcount = 1;
    }
    writer.finish(Header {
        id: rejection.id,
        flags: response_flags(rejection.flags, false, false, rejection.rcode),
        qdcount: u16::from(rejection.question.is_some()),
        ancount: 0,
        nscount: 0,
        arcount,
    });
}

/// Seed for a responder: distinct per thread and process start.
pub(crate) fn fresh_seed() -> u64 {
    crate::runtime::random::u64()
}
