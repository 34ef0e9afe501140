//! Small wire-format helpers for transfers: reading names and fields with bounds
//! checks, and writing uncompressed messages.

use crate::zone::name::MAX_NAME_LEN;

/// A message that does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Malformed;

/// The fixed header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    /// Id.
    pub id: u16,
    /// Flags.
    pub flags: u16,
    /// Questions.
    pub qdcount: u16,
    /// Answers.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Additional records.
    pub arcount: u16,
}

/// Reads a message with bounds checks.
pub(crate) struct Reader<'m> {
    message: &'m [u8],
    pos: usize,
}

impl<'m> Reader<'m> {
    /// From the start.
    pub(crate) fn new(message: &'m [u8]) -> Self {
        Self { message, pos: 0 }
    }

    /// From `pos`.
    pub(crate) fn at(message: &'m [u8], pos: usize) -> Self {
        Self { message, pos }
    }

    /// Current offset.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The header.
    pub(crate) fn header(&mut self) -> Result<Header, Malformed> {
        Ok(Header {
            id: self.u16()?,
            flags: self.u16()?,
            qdcount: self.u16()?,
            ancount: self.u16()?,
            nscount: self.u16()?,
            arcount: self.u16()?,
        })
    }

    /// `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'m [u8], Malformed> {
        let out = self.message.get(self.pos..self.pos + n).ok_or(Malformed)?;
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Malformed> {
        self.bytes(n).map(|_| ())
    }

    /// A 16-bit field.
    pub(crate) fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A 48-bit field.
    pub(crate) fn u48(&mut self) -> Result<u64, Malformed> {
        let b = self.bytes(6)?;
        Ok(b.iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x)))
    }

    /// A name (compression followed), returned lower-case and uncompressed.
    pub(crate) fn name(&mut self) -> Result<Vec<u8>, Malformed> {
        let mut out = Vec::with_capacity(32);
        let mut pos = self.pos;
        let mut jumped = false;
        let mut jumps = 0;
        loop {
            let len = *self.message.get(pos).ok_or(Malformed)?;
            match len {
                0 => {
                    out.push(0);
                    if !jumped {
                        self.pos = pos + 1;
                    }
                    break;
                }
                1..=63 => {
                    let label = self.message.get(pos + 1..pos + 1 + usize::from(len));
                    let label = label.ok_or(Malformed)?;
                    out.push(len);
                    out.extend(label.iter().map(u8::to_ascii_lowercase));
                    if out.len() > MAX_NAME_LEN {
                        return Err(Malformed);
                    }
                    pos += 1 + usize::from(len);
                }
                0xC0..=0xFF => {
                    let low = *self.message.get(pos + 1).ok_or(Malformed)?;
                    if !jumped {
                        self.pos = pos + 2;
                    }
                    jumped = true;
                    jumps += 1;
                    if jumps > 64 {
                        return Err(Malformed);
                    }
                    pos = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                }
                _ => return Err(Malformed),
            }
        }
        Ok(out)
    }
}

/// Sets the 16-bit count at `offset` of a message.
pub(crate) fn set_count(message: &mut [u8], offset: usize, value: u16) {
    if let Some(slot) = message.get_mut(offset..offset + 2) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Adds one to the 16-bit count at `offset`.
pub(crate) fn bump_count(message: &mut [u8], offset: usize) {
    if let Some(slot) = message.get(offset..offset + 2) {
        let value = u16::from_be_bytes([slot[0], slot[1]]).wrapping_add(1);
        set_count(message, offset, value);
    }
}

/// Appends one record (class IN, uncompressed).
pub(crate) fn push_record(out: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// Encoded size of a record.
pub(crate) fn record_len(owner: &[u8], rdata: &[u8]) -> usize {
    owner.len() + 10 + rdata.len()
}
