//! Never silence: a panic while answering becomes a SERVFAIL for the query, on
//! every transport.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Answered, Outcome};
use crate::dns::wire::{self, HEADER_LEN, Parsed, rcode};
use crate::dns::writer::{Header, Writer, response_flags};

/// Runs `respond` (which writes a response into `out`); if it panics, writes a
/// SERVFAIL for `packet` instead. Returns the outcome and whether it panicked.
pub(crate) fn guard(
    packet: &[u8],
    out: &mut Vec<u8>,
    respond: impl FnOnce(&mut Vec<u8>) -> Outcome,
) -> (Outcome, bool) {
    match catch_unwind(AssertUnwindSafe(|| respond(&mut *out))) {
        Ok(outcome) => (outcome, false),
        Err(_) => (write_servfail(packet, out), true),
    }
}

/// Writes a SERVFAIL for `packet` (echoing its id, opcode, RD and CD, and its
/// question if it has a readable one); drops what is not a query at all.
pub(crate) fn write_servfail(packet: &[u8], out: &mut Vec<u8>) -> Outcome {
    if packet.len() < HEADER_LEN || packet[2] & 0x80 != 0 {
        return Outcome::Dropped;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let query_flags = u16::from_be_bytes([packet[2], packet[3]]);
    let question = catch_unwind(|| match wire::parse(packet) {
        Parsed::Query(query) => Some(query.question.len()),
        _ => None,
    })
    .ok()
    .flatten()
    .filter(|&len| HEADER_LEN + len <= packet.len());
    let mut writer = Writer::without_question(out);
    if let Some(len) = question {
        writer.raw(&packet[HEADER_LEN..HEADER_LEN + len]);
    }
    writer.finish(Header {
        id,
        flags: response_flags(query_flags, false, false, rcode::SERVFAIL),
        qdcount: u16::from(question.is_some()),
        ancount: 0,
        nscount: 0,
        arcount: 0,
    });
    Outcome::Answered(Answered::error(rcode::SERVFAIL))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `www.example.` A, id 0x1234, RD set.
    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend(b"\x03WwW\x07example\x00\x00\x01\x00\x01");
        q
    }

    #[test]
    fn a_panic_while_answering_becomes_a_servfail_with_the_question() {
        let q = query();
        let mut out = Vec::new();
        let (outcome, panicked) = guard(&q, &mut out, |_| panic!("injected"));
        assert!(panicked);
        assert_eq!(outcome, Outcome::Answered(Answered::error(rcode::SERVFAIL)));
        assert_eq!(&out[..4], &[0x12, 0x34, 0x81, 0x02], "id, QR, RD, SERVFAIL");
        assert_eq!(&out[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[12..], &q[12..], "question echoed as sent");
        let (outcome, panicked) = guard(&q, &mut out, |_| Outcome::Dropped);
        assert_eq!((outcome, panicked), (Outcome::Dropped, false));
        let mut garbage = q[..14].to_vec();
        garbage[13] = 0xFF;
        let (_, panicked) = guard(&garbage, &mut out, |_| panic!("injected"));
        assert!(panicked);
        assert_eq!(out.len(), HEADER_LEN, "no readable question: header only");
        assert_eq!(
            guard(&q[..5], &mut out, |_| panic!("x")).0,
            Outcome::Dropped
        );
    }
}
