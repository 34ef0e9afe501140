//! The slip: a limited response cut down to what tells a real client to retry
//! over TCP.

use crate::dns::wire::HEADER_LEN;
use crate::dns::writer::flags;
use crate::zone::rtype;

/// Cuts a response in `out` down to its header, question and OPT record (RFC 6891
/// §7: a truncated response to an EDNS query keeps its OPT), with TC set: what rate
/// limiting sends instead of a limited response ("slip"), so a real client retries
/// over TCP. Returns `false` if `out` is not a response this server wrote (then
/// nothing should be sent).
pub(crate) fn truncate_to_question(out: &mut Vec<u8>) -> bool {
    let Some(header) = out.get(..HEADER_LEN) else {
        return false;
    };
    let count = |at: usize| usize::from(u16::from_be_bytes([header[at], header[at + 1]]));
    let (qdcount, records) = (count(4), count(6) + count(8) + count(10));
    if qdcount > 1 {
        return false;
    }
    let mut pos = HEADER_LEN;
    if qdcount == 1 {
        let Some(end) = skip_name(out, pos) else {
            return false;
        };
        pos = end + 4;
    }
    let question_end = pos;
    // Our encoder writes OPT last: find where the last record starts.
    let mut last = None;
    for _ in 0..records {
        let start = pos;
        let Some(end) = skip_name(out, pos) else {
            return false;
        };
        let Some(fixed) = out.get(end..end + 10) else {
            return false;
        };
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        last = Some((start, u16::from_be_bytes([fixed[0], fixed[1]])));
        pos = end + 10 + rdlen;
    }
    if question_end > out.len() || pos > out.len() {
        return false;
    }
    let mut arcount = 0u16;
    match last {
        Some((start, rtype::OPT)) if start > question_end => {
            out.copy_within(start..pos, question_end);
            out.truncate(question_end + (pos - start));
            arcount = 1;
        }
        Some((_, rtype::OPT)) => {
            out.truncate(pos);
            arcount = 1;
        }
        _ => out.truncate(question_end),
    }
    let flags_word = u16::from_be_bytes([out[2], out[3]]) | flags::TC;
    out[2..4].copy_from_slice(&flags_word.to_be_bytes());
    out[6..10].fill(0);
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    true
}

/// Offset just past a (possibly compressed) name starting at `pos`.
fn skip_name(message: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..128 {
        let label = *message.get(pos)?;
        match label & 0xC0 {
            0x00 if label == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(label),
            0xC0 => return message.get(pos + 1).map(|_| pos + 2),
            _ => return None,
        }
    }
    None
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
    fn slipping_keeps_header_and_question_and_sets_tc() {
        let q = query();
        let mut out = q.clone();
        out[2] |= 0x84;
        out[6..8].copy_from_slice(&1u16.to_be_bytes());
        out[10..12].copy_from_slice(&1u16.to_be_bytes());
        out.extend([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        out.extend([0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
        let opt = [0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0];
        assert!(truncate_to_question(&mut out));
        assert_eq!(out.len(), q.len() + opt.len());
        assert_eq!(&out[12..q.len()], &q[12..]);
        assert_eq!(&out[q.len()..], &opt, "OPT kept");
        assert_eq!(out[2] & 0x02, 0x02, "TC");
        assert_eq!(&out[6..12], &[0, 0, 0, 0, 0, 1]);
        let mut plain = q.clone();
        plain[6..8].copy_from_slice(&1u16.to_be_bytes());
        plain.extend([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        assert!(truncate_to_question(&mut plain));
        assert_eq!(&plain[12..], &q[12..], "no OPT: question only");
        assert_eq!(&plain[6..12], &[0; 6]);
        let mut cut_short = q.clone();
        cut_short[6..8].copy_from_slice(&1u16.to_be_bytes());
        assert!(!truncate_to_question(&mut cut_short), "a record missing");
        let mut headerless = vec![0u8; 5];
        assert!(!truncate_to_question(&mut headerless));
    }
}
