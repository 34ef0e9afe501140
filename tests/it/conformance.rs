//! Differential conformance: the same bytes, sent to failoverd, Knot and NSD serving
//! the same zone (`tests/data/zones/example.test.zone`). Wherever Knot and NSD give
//! the same answer, failoverd must give it too, unless the case is one of the
//! deliberate differences listed below with the reasoning for each.
//!
//! Answers are compared by their meaning, not their bytes: rcode (extended
//! included), opcode, header flags, the question echoed, each section as a sorted
//! set of records (so record order and name compression do not matter), and the
//! EDNS version, DO bit and option codes (not the payload size, which is a setting).

use std::net::SocketAddr;

use hickory_proto::op::Message;

use crate::support::peers::{Peer, ZoneFile};
use crate::support::require::tool;
use crate::support::{SERVER_HEAD, TestServer, data_dir, dns, require};

/// Where a case is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// One query of the corpus.
struct Case {
    label: String,
    bytes: Vec<u8>,
    transport: Transport,
}

/// Deliberate differences from what Knot and NSD both answer, with the reasoning.
const DELIBERATE: &[(&str, &str)] = &[(
    "id.server CH TXT",
    "failoverd does not tell who it is in CHAOS class: RFC 4892 leaves the server \
     identity to the operator, and a GSLB's host names say where it runs (Knot and NSD \
     answer the host name unless configured not to); every CHAOS query is REFUSED",
)];

// ---- building queries byte by byte ----

const IN: u16 = 1;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;
const AD: u16 = 0x0020;

fn name(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in text
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn header(flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut out = vec![0x4f, 0x2a];
    for v in [flags, qd, an, ns, ar] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

fn question(qname: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut out = name(qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    out
}

/// An OPT record: payload, version, DO, options (code, data).
fn opt(payload: u16, version: u8, dnssec_ok: bool, options: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&41u16.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&[0, version]);
    out.extend_from_slice(&(if dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    let rdata: Vec<u8> = options
        .iter()
        .flat_map(|(code, data)| {
            let mut o = code.to_be_bytes().to_vec();
            o.extend_from_slice(&(data.len() as u16).to_be_bytes());
            o.extend_from_slice(data);
            o
        })
        .collect();
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    out
}

/// A plain query (flags, one question).
fn query(flags: u16, qname: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut out = header(flags, 1, 0, 0, 0);
    out.extend(question(qname, qtype, qclass));
    out
}

/// A query with an OPT record.
fn query_edns(flags: u16, qname: &str, qtype: u16, opt_rr: Vec<u8>) -> Vec<u8> {
    let mut out = header(flags, 1, 0, 0, 1);
    out.extend(question(qname, qtype, IN));
    out.extend(opt_rr);
    out
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |label: &str, bytes: Vec<u8>, transport: Transport| {
        cases.push(Case {
            label: label.to_owned(),
            bytes,
            transport,
        });
    };
    let names = [
        "example.test",
        "www.example.test",
        "WwW.ExAmPlE.TeSt",
        "mail.example.test",
        "nothing.example.test",
        "b.ent.example.test",
        "a.b.ent.example.test",
        "alias1.example.test",
        "away.example.test",
        "broken.example.test",
        "loop1.example.test",
        "x.wild.example.test",
        "deep.er.wild.example.test",
        "exists.wild.example.test",
        "sub.example.test",
        "host.sub.example.test",
        "ns.sub.example.test",
        "x.cname-wild.example.test",
        "big.example.test",
        "mx-big.example.test",
    ];
    let types: [(&str, u16); 8] = [
        ("A", 1),
        ("AAAA", 28),
        ("MX", 15),
        ("TXT", 16),
        ("NS", 2),
        ("SOA", 6),
        ("CNAME", 5),
        ("ANY", 255),
    ];
    for qname in names {
        for (tname, qtype) in types {
            add(
                &format!("{qname} {tname}"),
                query(0, qname, qtype, IN),
                Transport::Udp,
            );
        }
    }
    // Meta, obsolete, DNSSEC-on-unsigned and unknown QTYPEs.
    for (tname, qtype) in [
        ("MD", 3),
        ("MF", 4),
        ("NULL", 10),
        ("WKS", 11),
        ("A6", 38),
        ("OPT", 41),
        ("DS", 43),
        ("RRSIG", 46),
        ("NSEC", 47),
        ("DNSKEY", 48),
        ("NSEC3PARAM", 51),
        ("TKEY", 249),
        ("TSIG", 250),
        ("IXFR", 251),
        ("AXFR", 252),
        ("MAILB", 253),
        ("MAILA", 254),
        ("TYPE0", 0),
        ("TYPE65280", 65280),
        ("TYPE65535", 65535),
    ] {
        add(
            &format!("www {tname}"),
            query(0, "www.example.test", qtype, IN),
            Transport::Udp,
        );
        add(
            &format!("apex {tname}"),
            query(0, "example.test", qtype, IN),
            Transport::Udp,
        );
    }
    // Classes.
    for (cname, class) in [
        ("CH", 3),
        ("HS", 4),
        ("NONE", 254),
        ("ANY", 255),
        ("CLASS2", 2),
    ] {
        add(
            &format!("www A class {cname}"),
            query(0, "www.example.test", 1, class),
            Transport::Udp,
        );
    }
    add(
        "version.bind CH TXT",
        query(0, "version.bind", 16, 3),
        Transport::Udp,
    );
    add(
        "id.server CH TXT",
        query(0, "id.server", 16, 3),
        Transport::Udp,
    );
    // Header bits.
    for (label, flags) in [
        ("RD", RD),
        ("CD", CD),
        ("AD", AD),
        ("RD+CD+AD", RD | CD | AD),
        ("TC set in query", 0x0200),
        ("RA set in query", 0x0080),
        ("Z bit", 0x0040),
    ] {
        add(
            &format!("www A {label}"),
            query(flags, "www.example.test", 1, IN),
            Transport::Udp,
        );
    }
    add(
        "QR set in query",
        query(0x8000, "www.example.test", 1, IN),
        Transport::Udp,
    );
    // Opcodes.
    for (label, opcode) in [
        ("IQUERY", 1u16),
        ("STATUS", 2),
        ("opcode 3", 3),
        ("NOTIFY unsolicited", 4),
        ("UPDATE", 5),
        ("DSO", 6),
        ("opcode 15", 15),
    ] {
        add(
            &format!("www SOA {label}"),
            query(opcode << 11, "www.example.test", 6, IN),
            Transport::Udp,
        );
    }
    // EDNS.
    for (label, payload) in [
        ("payload 0", 0u16),
        ("payload 511", 511),
        ("payload 1232", 1232),
        ("payload 65535", 65535),
    ] {
        add(
            &format!("big TXT edns {label}"),
            query_edns(0, "big.example.test", 16, opt(payload, 0, false, &[])),
            Transport::Udp,
        );
    }
    add(
        "www A edns DO",
        query_edns(0, "www.example.test", 1, opt(1232, 0, true, &[])),
        Transport::Udp,
    );
    add(
        "nothing A edns DO",
        query_edns(0, "nothing.example.test", 1, opt(1232, 0, true, &[])),
        Transport::Udp,
    );
    add(
        "www A edns version 1",
        query_edns(0, "www.example.test", 1, opt(1232, 1, false, &[])),
        Transport::Udp,
    );
    add(
        "www A edns version 255",
        query_edns(0, "www.example.test", 1, opt(1232, 255, false, &[])),
        Transport::Udp,
    );
    add(
        "www A edns unknown option",
        query_edns(
            0,
            "www.example.test",
            1,
            opt(1232, 0, false, &[(65001, b"xyz")]),
        ),
        Transport::Udp,
    );
    add(
        "www A edns padding",
        query_edns(
            0,
            "www.example.test",
            1,
            opt(1232, 0, false, &[(12, &[0; 16])]),
        ),
        Transport::Udp,
    );
    add(
        "www A edns unknown flag bits",
        {
            let mut rr = opt(1232, 0, false, &[]);
            rr[7] = 0x7f; // flags low byte (Z)
            query_edns(0, "www.example.test", 1, rr)
        },
        Transport::Udp,
    );
    add(
        "www A edns non-root owner",
        {
            let mut rr = name("example.test");
            rr.extend_from_slice(&opt(1232, 0, false, &[])[1..]);
            query_edns(0, "www.example.test", 1, rr)
        },
        Transport::Udp,
    );
    add(
        "www A two OPT records",
        {
            let mut out = header(0, 1, 0, 0, 2);
            out.extend(question("www.example.test", 1, IN));
            out.extend(opt(1232, 0, false, &[]));
            out.extend(opt(1232, 0, false, &[]));
            out
        },
        Transport::Udp,
    );
    add(
        "www A OPT in the answer section",
        {
            let mut out = header(0, 1, 1, 0, 0);
            out.extend(question("www.example.test", 1, IN));
            out.extend(opt(1232, 0, false, &[]));
            out
        },
        Transport::Udp,
    );
    add(
        "www A ECS truncated option",
        query_edns(
            0,
            "www.example.test",
            1,
            opt(1232, 0, false, &[(8, &[0, 1])]),
        ),
        Transport::Udp,
    );
    // Malformed and odd messages.
    add("no question", header(0, 0, 0, 0, 0), Transport::Udp);
    add(
        "two questions",
        {
            let mut out = header(0, 2, 0, 0, 0);
            out.extend(question("www.example.test", 1, IN));
            out.extend(question("mail.example.test", 1, IN));
            out
        },
        Transport::Udp,
    );
    add(
        "question count 1, no question",
        header(0, 1, 0, 0, 0),
        Transport::Udp,
    );
    add(
        "11-byte header",
        header(0, 1, 0, 0, 0)[..11].to_vec(),
        Transport::Udp,
    );
    add(
        "truncated question",
        {
            let mut out = query(0, "www.example.test", 1, IN);
            out.truncate(out.len() - 3);
            out
        },
        Transport::Udp,
    );
    add(
        "trailing garbage",
        {
            let mut out = query(0, "www.example.test", 1, IN);
            out.extend_from_slice(b"garbage");
            out
        },
        Transport::Udp,
    );
    add(
        "compression pointer loop",
        {
            let mut out = header(0, 1, 0, 0, 0);
            out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            out
        },
        Transport::Udp,
    );
    add(
        "label of 64 octets",
        {
            let mut out = header(0, 1, 0, 0, 0);
            out.push(64);
            out.extend_from_slice(&[b'a'; 64]);
            out.extend_from_slice(&[0, 0, 1, 0, 1]);
            out
        },
        Transport::Udp,
    );
    add(
        "name longer than 255",
        {
            let long = vec!["a".repeat(60); 5].join(".") + ".example.test";
            query(0, &long, 1, IN)
        },
        Transport::Udp,
    );
    add(
        "answer record in a query",
        {
            let mut out = header(0, 1, 1, 0, 0);
            out.extend(question("www.example.test", 1, IN));
            out.extend(name("www.example.test"));
            out.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
            out
        },
        Transport::Udp,
    );
    add(
        "authority record in a query",
        {
            let mut out = header(0, 1, 0, 1, 0);
            out.extend(question("www.example.test", 1, IN));
            out.extend(name("example.test"));
            out.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0]);
            out.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
            out
        },
        Transport::Udp,
    );
    // Names out of the zone and special names.
    add(
        "out of zone A",
        query(0, "www.example.org", 1, IN),
        Transport::Udp,
    );
    add("root SOA", query(0, ".", 6, IN), Transport::Udp);
    add(
        "parent name test SOA",
        query(0, "test", 6, IN),
        Transport::Udp,
    );
    add(
        "escaped label",
        {
            let mut out = header(0, 1, 0, 0, 0);
            out.extend_from_slice(&[5, b'w', b'.', b'w', 0, b'w']);
            out.extend(name("example.test"));
            out.extend_from_slice(&[0, 1, 0, 1]);
            out
        },
        Transport::Udp,
    );
    // TCP.
    for (label, qname, qtype) in [
        ("big TXT", "big.example.test", 16u16),
        ("www A", "www.example.test", 1),
        ("nothing A", "nothing.example.test", 1),
        ("mx-big MX", "mx-big.example.test", 15),
        ("sub NS", "host.sub.example.test", 1),
        ("apex ANY", "example.test", 255),
        ("apex AXFR (no transfers configured)", "example.test", 252),
        ("apex IXFR (no transfers configured)", "example.test", 251),
    ] {
        add(
            &format!("tcp {label}"),
            query(0, qname, qtype, IN),
            Transport::Tcp,
        );
    }
    add(
        "tcp www A edns",
        query_edns(0, "www.example.test", 1, opt(1232, 0, false, &[])),
        Transport::Tcp,
    );
    add(
        "tcp www A edns keepalive",
        query_edns(0, "www.example.test", 1, opt(1232, 0, false, &[(11, &[])])),
        Transport::Tcp,
    );
    cases
}

/// What an answer means, as compared.
fn meaning(reply: Option<Vec<u8>>, query: &[u8]) -> String {
    let Some(bytes) = reply else {
        return "no response".into();
    };
    let message = match Message::from_vec(&bytes) {
        Ok(message) => message,
        Err(_) => return format!("unparseable ({} bytes)", bytes.len()),
    };
    let sorted = |records: &[hickory_proto::rr::Record]| {
        let mut lines: Vec<String> = records.iter().map(ToString::to_string).collect();
        lines.sort();
        lines
    };
    let m = &message.metadata;
    let mut flags = Vec::new();
    for (set, flag) in [
        (
            m.message_type == hickory_proto::op::MessageType::Response,
            "qr",
        ),
        (m.authoritative, "aa"),
        (m.truncation, "tc"),
        (m.recursion_desired, "rd"),
        (m.recursion_available, "ra"),
        (m.authentic_data, "ad"),
        (m.checking_disabled, "cd"),
    ] {
        if set {
            flags.push(flag);
        }
    }
    let edns = message.edns.as_ref().map(|e| {
        let mut codes: Vec<u16> = e
            .options()
            .as_ref()
            .iter()
            .map(|(c, _)| u16::from(*c))
            .collect();
        codes.sort();
        format!(
            "v{} do={} options={codes:?}",
            e.version(),
            e.flags().dnssec_ok
        )
    });
    let questions: Vec<String> = message.queries.iter().map(ToString::to_string).collect();
    let id_echoed = query.len() >= 2 && bytes.len() >= 2 && bytes[..2] == query[..2];
    format!(
        "rcode={:?} opcode={:?} flags={} id_echoed={id_echoed}\n  question={questions:?}\n  \
         answer={:?}\n  authority={:?}\n  additional={:?}\n  edns={edns:?}",
        m.response_code,
        m.op_code,
        flags.join(","),
        sorted(&message.answers),
        sorted(&message.authorities),
        sorted(&message.additionals),
    )
}

fn exchange(server: SocketAddr, case: &Case) -> String {
    let reply = match case.transport {
        Transport::Udp => {
            dns::raw_udp_wait(server, &case.bytes, std::time::Duration::from_millis(700))
        }
        Transport::Tcp => dns::raw_tcp(server, &case.bytes),
    };
    meaning(reply, &case.bytes)
}

#[test]
fn failoverd_agrees_with_knot_and_nsd_wherever_they_agree() {
    require!(tool("knotd"), tool("nsd"));
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = [ZoneFile {
        origin: "example.test".into(),
        path: data_dir().join("zones/example.test.zone"),
    }];
    let knot = Peer::knot(dir.path(), &zones);
    let nsd = Peer::nsd(dir.path(), &zones);
    let server = TestServer::start(SERVER_HEAD);
    let corpus = corpus();
    let (mut peers_agree, mut matched, mut deliberate) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for case in &corpus {
        let k = exchange(knot.addr, case);
        let n = exchange(nsd.addr, case);
        if k != n {
            continue;
        }
        peers_agree += 1;
        let ours = exchange(server.addr, case);
        if ours == k {
            matched += 1;
        } else if let Some((_, why)) = DELIBERATE.iter().find(|(l, _)| *l == case.label) {
            deliberate.push(format!("{}: {why}", case.label));
        } else {
            failures.push(format!(
                "{} ({:?}):\n Knot and NSD: {k}\n failoverd:    {ours}",
                case.label, case.transport
            ));
        }
    }
    eprintln!(
        "FIGURES conformance corpus={} peers_agree={peers_agree} failoverd_matches={matched} \
         deliberate={}",
        corpus.len(),
        deliberate.len()
    );
    for line in &deliberate {
        eprintln!("deliberate difference: {line}");
    }
    assert!(
        failures.is_empty(),
        "{} of {peers_agree} cases where Knot and NSD agree differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        peers_agree * 2 > corpus.len(),
        "the peers agree on most of the corpus"
    );
}

/// QCLASS ANY (RFC 1035 §3.2.5), where Knot and NSD differ: both answer from the IN
/// data (question echoed with class ANY, records of class IN); Knot sets AA and puts
/// the SOA in an NXDOMAIN's authority section, NSD clears AA (RFC 1035 §6.2: an
/// answer for several classes is authoritative only if it covers them all) and sends
/// no SOA. failoverd serves class IN alone, so the IN answer covers every class it
/// has: it answers as Knot does. Prints each case's three answers.
#[test]
fn qclass_any_is_answered_from_the_in_data_as_knot_answers_it() {
    require!(tool("knotd"), tool("nsd"));
    const ANY: u16 = 255;
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = [ZoneFile {
        origin: "example.test".into(),
        path: data_dir().join("zones/example.test.zone"),
    }];
    let knot = Peer::knot(dir.path(), &zones);
    let nsd = Peer::nsd(dir.path(), &zones);
    let server = TestServer::start(SERVER_HEAD);
    let cases = [
        ("apex SOA class ANY", query(0, "example.test", 6, ANY)),
        ("www A class ANY", query(0, "www.example.test", 1, ANY)),
        ("www A class ANY, RD", query(RD, "www.example.test", 1, ANY)),
        (
            "mail AAAA class ANY",
            query(0, "mail.example.test", 28, ANY),
        ),
        (
            "www MX class ANY (NODATA)",
            query(0, "www.example.test", 15, ANY),
        ),
        (
            "nothing A class ANY (NXDOMAIN)",
            query(0, "nothing.example.test", 1, ANY),
        ),
        (
            "alias1 A class ANY (CNAME chain)",
            query(0, "alias1.example.test", 1, ANY),
        ),
        (
            "host.sub A class ANY (referral)",
            query(0, "host.sub.example.test", 1, ANY),
        ),
        (
            "out of zone A class ANY",
            query(0, "www.example.org", 1, ANY),
        ),
        ("www A class ANY, edns", {
            let mut out = header(0, 1, 0, 0, 1);
            out.extend(question("www.example.test", 1, ANY));
            out.extend(opt(1232, 0, false, &[]));
            out
        }),
    ];
    let mut failures = Vec::new();
    for (label, bytes) in cases {
        let case = Case {
            label: label.into(),
            bytes,
            transport: Transport::Udp,
        };
        let (k, n, ours) = (
            exchange(knot.addr, &case),
            exchange(nsd.addr, &case),
            exchange(server.addr, &case),
        );
        eprintln!("{label}:\n Knot:      {k}\n NSD:       {n}\n failoverd: {ours}");
        if ours != k {
            failures.push(format!("{label}:\n Knot:      {k}\n failoverd: {ours}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
