//! Response encoding with name compression (RFC 1035 §4.1.4).
//!
//! Compression compares names case-insensitively, so an answer encoded once for the
//! lower-case question stays byte-identical when a client asks in another case: the
//! question is copied as sent and every pointer still lands on the same offsets.

use super::wire::HEADER_LEN;
use crate::zone::rtype;

/// Class IN.
pub(crate) use crate::proto::class::IN as CLASS_IN;

/// Highest offset a compression pointer can reach.
const MAX_POINTER: usize = 0x3FFF;

/// Most compression targets remembered per message.
const MAX_TARGETS: usize = 64;

/// Who owns a record being written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Owner<'a> {
    /// The query name (written as a pointer to the question).
    Question,
    /// Another name (lower-case wire).
    Name(&'a [u8]),
}

/// Writes the sections of a response after header and question.
pub(crate) struct Writer<'b> {
    buf: &'b mut Vec<u8>,
    /// (offset, uncompressed length of the name from there).
    targets: [(u16, u8); MAX_TARGETS],
    target_count: usize,
    qname_len: usize,
}

impl<'b> Writer<'b> {
    /// Starts a response in `buf`: writes the 12-byte header placeholder and the
    /// question bytes as sent. `qname` is the lower-case query name (same length as
    /// the question's name) and `label_starts` its label offsets.
    pub(crate) fn new(
        buf: &'b mut Vec<u8>,
        question: &[u8],
        qname: &[u8],
        label_starts: &[u8],
    ) -> Self {
        buf.clear();
        buf.extend_from_slice(&[0; HEADER_LEN]);
        buf.extend_from_slice(question);
        let mut writer = Self {
            buf,
            targets: [(0, 0); MAX_TARGETS],
            target_count: 0,
            qname_len: qname.len(),
        };
        for &start in label_starts {
            writer.remember(
                HEADER_LEN + usize::from(start),
                qname.len() - usize::from(start),
            );
        }
        writer
    }

    /// Starts a response without a question section.
    pub(crate) fn without_question(buf: &'b mut Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(&[0; HEADER_LEN]);
        Self {
            buf,
            targets: [(0, 0); MAX_TARGETS],
            target_count: 0,
            qname_len: 0,
        }
    }

    /// Appends pre-encoded bytes (a cached tail).
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn remember(&mut self, offset: usize, len: usize) {
        if offset <= MAX_POINTER && self.target_count < MAX_TARGETS && len <= 255 {
            self.targets[self.target_count] = (offset as u16, len as u8);
            self.target_count += 1;
        }
    }

    /// Whether the name starting at `offset` in the buffer equals `name`
    /// (case-insensitively), following pointers.
    fn matches_at(&self, mut offset: usize, name: &[u8]) -> bool {
        let buf = &self.buf[..];
        let mut pos = 0;
        for _ in 0..256 {
            let Some(&len) = buf.get(offset) else {
                return false;
            };
            if len & 0xC0 == 0xC0 {
                let Some(&low) = buf.get(offset + 1) else {
                    return false;
                };
                let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                if target >= offset {
                    return false;
                }
                offset = target;
                continue;
            }
            let len = usize::from(len);
            if name.get(pos) != Some(&(len as u8)) {
                return false;
            }
            if len == 0 {
                return true;
            }
            let (Some(a), Some(b)) = (
                buf.get(offset + 1..offset + 1 + len),
                name.get(pos + 1..pos + 1 + len),
            ) else {
                return false;
            };
            if !a.eq_ignore_ascii_case(b) {
                return false;
            }
            offset += 1 + len;
            pos += 1 + len;
        }
        false
    }

    /// Writes a name, compressing against names already in the message.
    pub(crate) fn name(&mut self, name: &[u8]) {
        let mut start = 0;
        while start < name.len() && name[start] != 0 {
            let suffix = &name[start..];
            let found = self.targets[..self.target_count]
                .iter()
                .find(|(offset, len)| {
                    usize::from(*len) == suffix.len()
                        && self.matches_at(usize::from(*offset), suffix)
                })
                .map(|(offset, _)| *offset);
            if let Some(target) = found {
                self.buf.extend_from_slice(&(0xC000 | target).to_be_bytes());
                return;
            }
            let here = self.buf.len();
            self.remember(here, suffix.len());
            let label = usize::from(name[start]);
            self.buf.extend_from_slice(&name[start..start + 1 + label]);
            start += 1 + label;
        }
        self.buf.push(0);
    }

    fn owner(&mut self, owner: Owner<'_>) {
        match owner {
            Owner::Question if self.qname_len > 0 => {
                self.buf
                    .extend_from_slice(&(0xC000 | HEADER_LEN as u16).to_be_bytes());
            }
            Owner::Question => self.buf.push(0),
            Owner::Name(name) => self.name(name),
        }
    }

    /// Writes one record. `rdata` is uncompressed wire; names inside the rdata of
    /// types that allow it (RFC 3597 §4) are compressed.
    pub(crate) fn record(&mut self, owner: Owner<'_>, rr_type: u16, ttl: u32, rdata: &[u8]) {
        self.owner(owner);
        self.buf.extend_from_slice(&rr_type.to_be_bytes());
        self.buf.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let length_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        let start = self.buf.len();
        match rr_type {
            rtype::NS | rtype::CNAME | rtype::PTR => self.rdata_names(rdata, 0, 1),
            rtype::MX => self.rdata_names(rdata, 2, 1),
            rtype::SOA => self.rdata_names(rdata, 0, 2),
            _ => self.buf.extend_from_slice(rdata),
        }
        let len = (self.buf.len() - start) as u16;
        self.buf[length_at..length_at + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// Copies `skip` fixed bytes, then `names` compressible names, then the rest.
    fn rdata_names(&mut self, rdata: &[u8], skip: usize, names: usize) {
        let Some(fixed) = rdata.get(..skip) else {
            self.buf.extend_from_slice(rdata);
            return;
        };
        self.buf.extend_from_slice(fixed);
        let mut pos = skip;
        for _ in 0..names {
            let Some(end) = name_end(rdata, pos) else {
                self.buf.extend_from_slice(&rdata[pos..]);
                return;
            };
            self.name(&rdata[pos..end]);
            pos = end;
        }
        self.buf.extend_from_slice(&rdata[pos..]);
    }

    /// Writes the EDNS OPT record.
    pub(crate) fn opt(
        &mut self,
        payload: u16,
        extended_rcode: u8,
        dnssec_ok: bool,
        options: &[u8],
    ) {
        self.buf.push(0);
        self.buf.extend_from_slice(&rtype::OPT.to_be_bytes());
        self.buf.extend_from_slice(&payload.to_be_bytes());
        self.buf.push(extended_rcode);
        self.buf.push(0); // version
        self.buf.push(if dnssec_ok { 0x80 } else { 0 });
        self.buf.push(0);
        self.buf
            .extend_from_slice(&(options.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(options);
    }

    /// Fills in the header and returns the finished message length.
    pub(crate) fn finish(self, header: Header) -> usize {
        let b = &mut self.buf[..HEADER_LEN];
        b[0..2].copy_from_slice(&header.id.to_be_bytes());
        b[2..4].copy_from_slice(&header.flags.to_be_bytes());
        b[4..6].copy_from_slice(&header.qdcount.to_be_bytes());
        b[6..8].copy_from_slice(&header.ancount.to_be_bytes());
        b[8..10].copy_from_slice(&header.nscount.to_be_bytes());
        b[10..12].copy_from_slice(&header.arcount.to_be_bytes());
        self.buf.len()
    }
}

/// Offset just past an uncompressed name starting at `pos`.
fn name_end(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = usize::from(*bytes.get(pos)?);
        if len == 0 {
            return Some(pos + 1);
        }
        if len & 0xC0 != 0 {
            return None;
        }
        pos += 1 + len;
    }
}

/// Header fields of a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Header {
    /// Message id.
    pub id: u16,
    /// Flags word (QR, opcode, AA, TC, RD, RA, AD, CD, RCODE).
    pub flags: u16,
    /// Questions.
    pub qdcount: u16,
    /// Answer records.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Additional records (including OPT).
    pub arcount: u16,
}

/// Flag bits.
pub(crate) mod flags {
    /// Response.
    pub(crate) const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub(crate) const AA: u16 = 0x0400;
    /// Truncated.
    pub(crate) const TC: u16 = 0x0200;
    /// Recursion desired.
    pub(crate) const RD: u16 = 0x0100;
    /// Checking disabled.
    pub(crate) const CD: u16 = 0x0010;
    /// Opcode field.
    pub(crate) const OPCODE: u16 = 0x7800;
}

/// Response flags for a query's flags: QR set, opcode/RD/CD echoed.
pub(crate) fn response_flags(
    query_flags: u16,
    authoritative: bool,
    truncated: bool,
    rcode: u16,
) -> u16 {
    let mut f = flags::QR | (query_flags & (flags::OPCODE | flags::RD | flags::CD)) | (rcode & 0xF);
    if authoritative {
        f |= flags::AA;
    }
    if truncated {
        f |= flags::TC;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::name::wire_from_text;

    #[test]
    fn compresses_case_insensitively_against_the_question() {
        let qname = wire_from_text("www.example.com.").unwrap();
        let mut question = b"\x03WWW\x07Example\x03COM\x00".to_vec();
        question.extend([0, 1, 0, 1]);
        let starts = crate::zone::store::label_starts(&qname);
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf, &question, &qname, &starts);
        w.record(
            Owner::Question,
            rtype::CNAME,
            60,
            &wire_from_text("web.example.com.").unwrap(),
        );
        w.finish(Header::default());
        // owner pointer, then "web" + pointer to "Example.COM" at offset 16.
        let answer = &buf[12 + question.len()..];
        assert_eq!(&answer[..2], &[0xC0, 12]);
        assert_eq!(&answer[12..], b"\x03web\xC0\x10");
    }
}
