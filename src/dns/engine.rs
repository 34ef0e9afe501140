//! Packet in, packet out: parse, resolve, encode, truncate. Shared by UDP and TCP.
//!
//! The hot path allocates nothing: the query is parsed into stack buffers, the
//! resolution borrows from the snapshot, and a direct hit copies its pre-encoded
//! sections after the question.

use std::net::IpAddr;

use super::resolve::{self, Client, Resolution};
use super::snapshot::Snapshot;
use super::wire::{self, Edns, OPTION_CLIENT_SUBNET, Parsed, Query, Rejection, rcode};
use super::writer::{Header, Writer, response_flags};
use crate::model::SplitMix64;
use crate::zone::rtype;

/// Class IN.
const CLASS_IN: u16 = 1;

/// Transport a query arrived on (sets the response size limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the EDNS payload size capped by our limit.
    Udp,
    /// TCP: 65535 bytes.
    Tcp,
}

/// What [`Responder::respond`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds a response with this rcode.
    Answered(u16),
    /// Nothing to send.
    Dropped,
}

/// Per-thread answering state (the random source for picking answers).
pub struct Responder {
    rng: SplitMix64,
    /// Whether pre-encoded sections may be used (tests compare both ways).
    pub use_cache: bool,
    /// Responses built from pre-encoded sections.
    pub cache_hits: u64,
}

impl Responder {
    /// A responder seeded from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            use_cache: true,
            cache_hits: 0,
        }
    }

    /// Answers one message from `src`, writing the response into `out`.
    pub fn respond(
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
                Outcome::Answered(rejection.rcode)
            }
            Parsed::Query(query) => {
                let code = self.answer(snapshot, &query, src, transport, out);
                Outcome::Answered(code)
            }
        }
    }

    fn answer(
        &mut self,
        snapshot: &Snapshot,
        query: &Query<'_>,
        src: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> u16 {
        let limits = snapshot.limits;
        if let Some(edns) = &query.edns {
            if edns.version > 0 {
                let refusal = Resolution::empty(rcode::BADVERS, false);
                return self.write(snapshot, query, &refusal, transport, out);
            }
        }
        let refuse = |code| Resolution::empty(code, false);
        // Other classes are refused. Zone transfers are served over TCP only (the TCP
        // path hands them to `xfr` before the responder): over UDP, AXFR is not
        // implemented (RFC 5936 §4.2) and IXFR is not authorised, as Knot and NSD
        // answer both.
        let resolution = if query.qclass != CLASS_IN {
            refuse(rcode::REFUSED)
        } else if query.qtype == rtype::AXFR {
            refuse(rcode::NOTIMP)
        } else if query.qtype == rtype::IXFR {
            refuse(rcode::NOTAUTH)
        } else {
            // Every other QTYPE (OPT, TKEY, TSIG, MAILA, MAILB and unknown ones
            // included) is looked up as data and gets NODATA, as Knot and NSD
            // answer: RFC 3597 types are opaque, and RFC 1035's obsolete mail
            // meta-queries are answered by the (absent) data.
            match snapshot.zones.find_zone(query.qname.wire()) {
                None => refuse(rcode::REFUSED),
                Some(zone) => {
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
        code
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
        let len = encode(
            query,
            resolution,
            Sections::All,
            self.use_cache,
            snapshot,
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
                snapshot,
                out,
            );
            if len <= limit {
                return resolution.rcode;
            }
        }
        encode(query, resolution, Sections::Truncated, false, snapshot, out);
        resolution.rcode
    }
}

/// Largest response for this query and transport.
pub fn response_limit(edns: Option<&Edns>, transport: Transport, max_udp_payload: u16) -> usize {
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

fn encode(
    query: &Query<'_>,
    resolution: &Resolution<'_>,
    sections: Sections,
    use_cache: bool,
    snapshot: &Snapshot,
    out: &mut Vec<u8>,
) -> usize {
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
        let mut option = [0u8; 24];
        let option_len =
            client_subnet_option(edns, resolution.ecs_scope, snapshot.limits.ecs, &mut option);
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
pub fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    // RandomState is seeded from the OS once per process and varies per instance.
    RandomState::new().hash_one(std::thread::current().id())
}
