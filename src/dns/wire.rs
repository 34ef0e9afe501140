//! Query parsing straight from the datagram: header, one question, and the EDNS OPT
//! record with its Client Subnet option. No allocation; every malformed input is
//! classified (drop or FORMERR), never a panic.

use std::net::IpAddr;

use crate::zone::name::{MAX_LABELS, MAX_NAME_LEN};
use crate::zone::rtype;

/// Size of the DNS header.
pub(crate) const HEADER_LEN: usize = 12;

/// Response codes (one table for the crate: [`crate::proto::rcode`]).
pub(crate) use crate::proto::rcode;

/// EDNS option code of Client Subnet (RFC 7871).
pub(crate) const OPTION_CLIENT_SUBNET: u16 = 8;

/// EDNS option code of edns-tcp-keepalive (RFC 7828).
pub(crate) const OPTION_TCP_KEEPALIVE: u16 = 11;

/// A lower-case wire name in a fixed buffer.
#[derive(Clone)]
pub(crate) struct NameBuf {
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
    starts: [u8; MAX_LABELS],
    labels: u8,
}

impl NameBuf {
    fn new() -> Self {
        Self {
            bytes: [0; MAX_NAME_LEN],
            len: 0,
            starts: [0; MAX_LABELS],
            labels: 0,
        }
    }

    /// The lower-case wire name.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Offset of each label, first label first.
    pub(crate) fn label_starts(&self) -> &[u8] {
        &self.starts[..usize::from(self.labels)]
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::zone::name::text_from_wire(self.wire()))
    }
}

/// EDNS Client Subnet as sent by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientSubnet {
    /// 1 = IPv4, 2 = IPv6.
    pub family: u16,
    /// Bits of the address the client disclosed.
    pub source_prefix: u8,
    /// The address (bits beyond the prefix are zero).
    pub address: IpAddr,
}

impl ClientSubnet {
    /// Number of address bytes on the wire.
    pub(crate) fn address_len(&self) -> usize {
        usize::from(self.source_prefix).div_ceil(8)
    }

    /// Address bytes as sent (truncated to the prefix).
    pub(crate) fn address_bytes(&self) -> ([u8; 16], usize) {
        let mut out = [0u8; 16];
        match self.address {
            IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
        }
        (out, self.address_len())
    }
}

/// The query's OPT record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Edns {
    /// Requestor's UDP payload size (values below 512 count as 512).
    pub payload: u16,
    /// EDNS version.
    pub version: u8,
    /// DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// Client Subnet, if sent.
    pub client_subnet: Option<ClientSubnet>,
    /// Whether the query carried edns-tcp-keepalive (RFC 7828; its TIMEOUT, which
    /// clients must not send, is ignored).
    pub tcp_keepalive: bool,
}

/// A well-formed query.
#[derive(Clone, Debug)]
pub(crate) struct Query<'a> {
    /// Message id.
    pub id: u16,
    /// Header flags of the query (RD and CD are echoed).
    pub flags: u16,
    /// The question as sent (name, type, class), for echoing with its case.
    pub question: &'a [u8],
    /// Lower-case query name.
    pub qname: NameBuf,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
    /// EDNS, if the query had an OPT record.
    pub edns: Option<Edns>,
}

/// A query that gets an error response without being resolved.
#[derive(Clone, Debug)]
pub(crate) struct Rejection<'a> {
    /// Message id.
    pub id: u16,
    /// Query flags (opcode, RD, CD are echoed).
    pub flags: u16,
    /// Response code.
    pub rcode: u16,
    /// The question to echo, if it was readable.
    pub question: Option<&'a [u8]>,
    /// Whether to attach an OPT record (the query had a valid one).
    pub edns: Option<Edns>,
}

/// What a datagram turned out to be.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // lives on the stack of one call; boxing would allocate per query
pub(crate) enum Parsed<'a> {
    /// A query to resolve.
    Query(Query<'a>),
    /// A message to answer with an error code.
    Reject(Rejection<'a>),
    /// Not worth answering (too short to carry an id, or a response).
    Drop,
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Opcode of header flags.
pub(crate) fn opcode(flags: u16) -> u8 {
    ((flags >> 11) & 0xF) as u8
}

/// Parses a datagram.
pub(crate) fn parse(packet: &[u8]) -> Parsed<'_> {
    if packet.len() < HEADER_LEN {
        return Parsed::Drop;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & 0x8000 != 0 {
        return Parsed::Drop; // a response: never answer (reflection loops)
    }
    let reject = |rcode, question, edns| {
        Parsed::Reject(Rejection {
            id,
            flags,
            rcode,
            question,
            edns,
        })
    };
    let qdcount = be16(packet, 4).unwrap_or(0);
    let ancount = be16(packet, 6).unwrap_or(0);
    let nscount = be16(packet, 8).unwrap_or(0);
    let arcount = be16(packet, 10).unwrap_or(0);
    if opcode(flags) != 0 {
        return reject(rcode::NOTIMP, None, None);
    }
    // Records in the authority section are allowed (an IXFR query carries the
    // client's SOA there, RFC 1995 §3) and skipped; answers in a query are not.
    if qdcount != 1 || ancount != 0 {
        return reject(rcode::FORMERR, None, None);
    }
    let mut qname = NameBuf::new();
    let Some(name_end) = read_question_name(packet, HEADER_LEN, &mut qname) else {
        return reject(rcode::FORMERR, None, None);
    };
    let (Some(qtype), Some(qclass)) = (be16(packet, name_end), be16(packet, name_end + 2)) else {
        return reject(rcode::FORMERR, None, None);
    };
    let question_end = name_end + 4;
    let question = &packet[HEADER_LEN..question_end];
    let edns = match skip_authority(packet, question_end, nscount)
        .and_then(|at| read_additional(packet, at, arcount))
    {
        Ok(edns) => edns,
        Err(()) => return reject(rcode::FORMERR, Some(question), None),
    };
    Parsed::Query(Query {
        id,
        flags,
        question,
        qname,
        qtype,
        qclass,
        edns,
    })
}

/// Reads an uncompressed name starting at `pos` into `out` (lower-cased); returns the
/// offset after it.
fn read_question_name(packet: &[u8], mut pos: usize, out: &mut NameBuf) -> Option<usize> {
    let mut len = 0usize;
    loop {
        let label = usize::from(*packet.get(pos)?);
        if label == 0 {
            if len + 1 > MAX_NAME_LEN {
                return None;
            }
            out.bytes[len] = 0;
            out.len = (len + 1) as u8;
            return Some(pos + 1);
        }
        if label & 0xC0 != 0 {
            return None; // pointer (nothing to point to yet) or a reserved label type
        }
        if len + 1 + label + 1 > MAX_NAME_LEN || usize::from(out.labels) >= MAX_LABELS - 1 {
            return None;
        }
        let bytes = packet.get(pos + 1..pos + 1 + label)?;
        out.starts[usize::from(out.labels)] = len as u8;
        out.labels += 1;
        out.bytes[len] = label as u8;
        for (dst, src) in out.bytes[len + 1..len + 1 + label].iter_mut().zip(bytes) {
            *dst = src.to_ascii_lowercase();
        }
        len += 1 + label;
        pos += 1 + label;
    }
}

/// Skips a possibly compressed name; returns the offset after it.
fn skip_name(packet: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..MAX_LABELS {
        let label = usize::from(*packet.get(pos)?);
        match label & 0xC0 {
            0x00 if label == 0 => return Some(pos + 1),
            0x00 => pos += 1 + label,
            0xC0 => {
                packet.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
    None
}

/// Skips `count` authority records starting at `pos` (an OPT there is an error,
/// RFC 6891 §6.1.1); returns the offset after them.
fn skip_authority(packet: &[u8], mut pos: usize, count: u16) -> Result<usize, ()> {
    for _ in 0..count {
        pos = skip_name(packet, pos).ok_or(())?;
        if be16(packet, pos).ok_or(())? == rtype::OPT {
            return Err(());
        }
        let rdlen = usize::from(be16(packet, pos + 8).ok_or(())?);
        packet.get(pos + 10..pos + 10 + rdlen).ok_or(())?;
        pos += 10 + rdlen;
    }
    Ok(pos)
}

/// Reads the additional section: at most one OPT (owned by the root), anything else
/// skipped. Trailing bytes are an error.
fn read_additional(packet: &[u8], mut pos: usize, count: u16) -> Result<Option<Edns>, ()> {
    let mut edns = None;
    for _ in 0..count {
        let name_start = pos;
        pos = skip_name(packet, pos).ok_or(())?;
        let rr_type = be16(packet, pos).ok_or(())?;
        let class = be16(packet, pos + 2).ok_or(())?;
        let ttl_high = packet.get(pos + 4..pos + 8).ok_or(())?;
        let rdlen = usize::from(be16(packet, pos + 8).ok_or(())?);
        let rdata = packet.get(pos + 10..pos + 10 + rdlen).ok_or(())?;
        if rr_type == rtype::OPT {
            if edns.is_some() || packet[name_start] != 0 {
                return Err(()); // RFC 6891 §6.1.1: one OPT, owned by the root
            }
            let (client_subnet, tcp_keepalive) = read_options(rdata)?;
            edns = Some(Edns {
                payload: class.max(512),
                version: ttl_high[1],
                dnssec_ok: ttl_high[2] & 0x80 != 0,
                client_subnet,
                tcp_keepalive,
            });
        }
        pos += 10 + rdlen;
    }
    if pos != packet.len() {
        return Err(());
    }
    Ok(edns)
}

/// Reads the options of an OPT record: Client Subnet and whether edns-tcp-keepalive
/// was sent.
fn read_options(mut rdata: &[u8]) -> Result<(Option<ClientSubnet>, bool), ()> {
    let mut subnet = None;
    let mut keepalive = false;
    while !rdata.is_empty() {
        let code = be16(rdata, 0).ok_or(())?;
        let len = usize::from(be16(rdata, 2).ok_or(())?);
        let value = rdata.get(4..4 + len).ok_or(())?;
        if code == OPTION_CLIENT_SUBNET {
            if subnet.is_some() {
                return Err(());
            }
            subnet = Some(read_client_subnet(value)?);
        } else if code == OPTION_TCP_KEEPALIVE {
            keepalive = true;
        }
        rdata = &rdata[4 + len..];
    }
    Ok((subnet, keepalive))
}

/// The QTYPE of a message's first question, read cheaply (labels skipped, nothing
/// validated beyond bounds): for routing zone transfers before answering.
pub(crate) fn question_type(packet: &[u8]) -> Option<u16> {
    if be16(packet, 4)? == 0 {
        return None;
    }
    let mut pos = HEADER_LEN;
    for _ in 0..MAX_LABELS {
        let label = usize::from(*packet.get(pos)?);
        if label == 0 {
            return be16(packet, pos + 1);
        }
        if label & 0xC0 != 0 {
            return None;
        }
        pos += 1 + label;
    }
    None
}

/// Validates ECS per RFC 7871 §6: known family, prefix within it, scope 0 in queries,
/// exactly ceil(prefix/8) address bytes, no bits set beyond the prefix.
fn read_client_subnet(value: &[u8]) -> Result<ClientSubnet, ()> {
    let family = be16(value, 0).ok_or(())?;
    let source_prefix = *value.get(2).ok_or(())?;
    let scope_prefix = *value.get(3).ok_or(())?;
    let address = &value[4.min(value.len())..];
    let max_prefix = match family {
        1 => 32,
        2 => 128,
        _ => return Err(()),
    };
    if source_prefix > max_prefix || scope_prefix != 0 {
        return Err(());
    }
    let needed = usize::from(source_prefix).div_ceil(8);
    if address.len() != needed {
        return Err(());
    }
    let mut full = [0u8; 16];
    full[..needed].copy_from_slice(address);
    if source_prefix % 8 != 0 {
        let mask = 0xFFu8 >> (source_prefix % 8);
        if full[needed - 1] & mask != 0 {
            return Err(());
        }
    }
    let address = if family == 1 {
        IpAddr::from([full[0], full[1], full[2], full[3]])
    } else {
        IpAddr::from(full)
    };
    Ok(ClientSubnet {
        family,
        source_prefix,
        address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, additional: &[u8], arcount: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        q.extend(arcount.to_be_bytes());
        q.extend(name);
        q.extend(qtype.to_be_bytes());
        q.extend(1u16.to_be_bytes());
        q.extend(additional);
        q
    }

    fn opt(options: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0];
        o.extend((options.len() as u16).to_be_bytes());
        o.extend(options);
        o
    }

    #[test]
    fn parses_question_and_edns_with_client_subnet() {
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2];
        let packet = query(b"\x03WwW\x07example\x00", 1, &opt(&ecs), 1);
        let Parsed::Query(q) = parse(&packet) else {
            panic!()
        };
        assert_eq!(q.qname.wire(), b"\x03www\x07example\x00");
        assert_eq!(q.question, &packet[12..packet.len() - opt(&ecs).len()]);
        let edns = q.edns.unwrap();
        assert_eq!(edns.payload, 1232);
        assert!(edns.dnssec_ok);
        let subnet = edns.client_subnet.unwrap();
        assert_eq!(subnet.source_prefix, 24);
        assert_eq!(subnet.address, "192.0.2.0".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn malformed_inputs_are_classified() {
        assert!(matches!(parse(&[0; 5]), Parsed::Drop));
        let mut response = query(b"\x00", 1, &[], 0);
        response[2] |= 0x80;
        assert!(matches!(parse(&response), Parsed::Drop));
        let formerr = |p: &[u8]| {
            matches!(
                parse(p),
                Parsed::Reject(Rejection {
                    rcode: rcode::FORMERR,
                    ..
                })
            )
        };
        assert!(
            formerr(&query(b"\xC0\x0C", 1, &[], 0)),
            "pointer in question"
        );
        assert!(formerr(&query(b"\x05ab", 1, &[], 0)), "truncated label");
        let bad_bits = [0, 8, 0, 7, 0, 1, 23, 0, 192, 0, 3];
        assert!(
            formerr(&query(b"\x00", 1, &opt(&bad_bits), 1)),
            "bits beyond prefix"
        );
        let scope = [0, 8, 0, 7, 0, 1, 24, 8, 192, 0, 2];
        assert!(
            formerr(&query(b"\x00", 1, &opt(&scope), 1)),
            "scope set in query"
        );
        assert!(
            formerr(&query(b"\x00", 1, &[opt(&[]), opt(&[])].concat(), 2)),
            "two OPTs"
        );
        assert!(formerr(&query(b"\x00", 1, &[1, 2, 3], 0)), "trailing bytes");
        // OPT as QTYPE is looked up as data (NODATA), as Knot and NSD answer.
        assert!(matches!(
            parse(&query(b"\x00", 41, &[], 0)),
            Parsed::Query(_)
        ));
        let mut notify = query(b"\x00", 6, &[], 0);
        notify[2] = 0x20;
        assert!(matches!(
            parse(&notify),
            Parsed::Reject(Rejection {
                rcode: rcode::NOTIMP,
                ..
            })
        ));
    }

    #[test]
    fn authority_records_are_skipped_and_answers_still_formerr() {
        // An IXFR query: the client's SOA in the authority section, then an OPT.
        let mut ixfr = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1];
        ixfr.extend_from_slice(b"\x07example\x00\x00\xfb\x00\x01");
        let mut soa = vec![0xc0, 0x0c, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0];
        soa.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
        ixfr.extend_from_slice(&soa);
        ixfr.extend_from_slice(&opt(&[]));
        let Parsed::Query(q) = parse(&ixfr) else {
            panic!("{:?}", parse(&ixfr));
        };
        assert_eq!(q.qtype, 251);
        assert_eq!(q.edns.map(|e| e.payload), Some(1232));
        // A truncated authority record, an OPT in the authority section, and a
        // record in the answer section are FORMERR.
        let formerr = |p: &[u8]| {
            matches!(
                parse(p),
                Parsed::Reject(Rejection {
                    rcode: rcode::FORMERR,
                    ..
                })
            )
        };
        let mut short = ixfr.clone();
        short[11] = 0;
        short.truncate(short.len() - 11 - 3);
        assert!(formerr(&short), "truncated authority record");
        let mut opt_in_authority = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
        opt_in_authority.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
        opt_in_authority.extend_from_slice(&opt(&[]));
        assert!(formerr(&opt_in_authority), "OPT in the authority section");
        let mut answer = ixfr.clone();
        answer[7] = 1;
        answer[9] = 0;
        assert!(formerr(&answer), "a record in the answer section");
    }
}
