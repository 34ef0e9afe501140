//! TSIG (RFC 8945) with HMAC-SHA256/384/512: verifying a signed request, signing
//! the responses to it (every message of a multi-message transfer, §5.3.1), and
//! signing requests of our own (NOTIFY).
//!
//! Digests are computed over the exact bytes sent, so a transport that re-encodes
//! a message (hickory-server's) signs what it encodes: [`ResponseSigner::sign`]
//! takes the unsigned message and returns the TSIG record to append.
//!
//! **Time.** RFC 8945 §5.2.3 has a server answer BADTIME when its clock is outside
//! the interval the request names, Time Signed ± the request's own Fudge; BIND
//! (`lib/dns/tsig.c`) and Knot (`check_time_signed` in libknot) check exactly that, so
//! a signer that puts Fudge 65535 in its request is believed for ±18 hours, and a
//! captured request can be replayed that long. The RFC requires the BADTIME outside
//! that interval but not acceptance inside it, and §10 recommends 300 s: here a
//! message counts only if `|now − Time Signed| ≤ min(Fudge, window)`, with the
//! window ours (`[transfer] tsig_window`, default `WINDOW`). The same bound applies
//! to the signed answers to our NOTIFYs.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use super::wire::{self, Reader};
use crate::config::{TsigAlgorithm, TsigKey};

/// The Fudge we put in our own signatures (RFC 8945 §10 recommends 300 s).
pub(crate) const FUDGE: u16 = 300;

/// Our default bound on a signed message's clock difference, whatever its Fudge.
#[cfg(test)]
pub(crate) const WINDOW: u64 = crate::config::transfer_defaults::TSIG_WINDOW.as_secs();

/// Whether a message signed at `time` with `fudge` is on time at `now`: within the
/// smaller of its Fudge and our `window` (seconds).
pub(crate) fn on_time(time: u64, fudge: u16, now: u64, window: u64) -> bool {
    now.abs_diff(time) <= u64::from(fudge).min(window)
}

/// TSIG error codes (RFC 8945 §4.3).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) mod error {
    /// Bad signature.
    pub(crate) const BADSIG: u16 = 16;
    /// Unknown key.
    pub(crate) const BADKEY: u16 = 17;
    /// Time outside the fudge.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) const BADTIME: u16 = 18;
}

/// CLASS of TSIG records.
const CLASS_ANY: u16 = 255;

/// A TSIG record as read from a message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct TsigRecord {
    /// Lower-case wire key name.
    pub key_name: Vec<u8>,
    /// Lower-case wire algorithm name.
    pub algorithm: Vec<u8>,
    /// Time signed (48 bits).
    pub time: u64,
    /// Fudge.
    pub fudge: u16,
    /// The MAC.
    pub mac: Vec<u8>,
    /// Original message id.
    pub original_id: u16,
    /// TSIG error.
    pub error: u16,
    /// Other data.
    pub other: Vec<u8>,
}

impl TsigRecord {
    /// Appends the record (uncompressed) to `message` and bumps its ARCOUNT.
    pub(crate) fn append_to(&self, message: &mut Vec<u8>) {
        message.extend_from_slice(&self.key_name);
        message.extend_from_slice(&crate::zone::rtype::TSIG.to_be_bytes());
        message.extend_from_slice(&CLASS_ANY.to_be_bytes());
        message.extend_from_slice(&0u32.to_be_bytes());
        let rdata = self.rdata();
        message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        message.extend_from_slice(&rdata);
        wire::bump_count(message, 10);
    }

    /// The record's rdata.
    pub(crate) fn rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.algorithm.len() + 16 + self.mac.len());
        out.extend_from_slice(&self.algorithm);
        out.extend_from_slice(&self.time.to_be_bytes()[2..]);
        out.extend_from_slice(&self.fudge.to_be_bytes());
        out.extend_from_slice(&(self.mac.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(&self.original_id.to_be_bytes());
        out.extend_from_slice(&self.error.to_be_bytes());
        out.extend_from_slice(&(self.other.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.other);
        out
    }

    /// The TSIG variables covered by the MAC (§4.3.3), or only the timers.
    fn variables(&self, timers_only: bool, out: &mut Vec<u8>) {
        if !timers_only {
            out.extend_from_slice(&self.key_name);
            out.extend_from_slice(&CLASS_ANY.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&self.algorithm);
        }
        out.extend_from_slice(&self.time.to_be_bytes()[2..]);
        out.extend_from_slice(&self.fudge.to_be_bytes());
        if !timers_only {
            out.extend_from_slice(&self.error.to_be_bytes());
            out.extend_from_slice(&(self.other.len() as u16).to_be_bytes());
            out.extend_from_slice(&self.other);
        }
    }
}

/// A signed message split into the message as it was before signing and its TSIG.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Signed {
    /// The message without the TSIG record, ARCOUNT decreased, the original id.
    pub unsigned: Vec<u8>,
    /// The TSIG record.
    pub tsig: TsigRecord,
}

/// Finds a TSIG record (the last additional record) in `message`. `Ok(None)`: not
/// signed; `Err`: malformed.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn split(message: &[u8]) -> Result<Option<Signed>, wire::Malformed> {
    let mut reader = Reader::new(message);
    let header = reader.header()?;
    for _ in 0..header.qdcount {
        reader.name()?;
        reader.skip(4)?;
    }
    let records = u32::from(header.ancount) + u32::from(header.nscount) + u32::from(header.arcount);
    let mut last = None;
    for _ in 0..records {
        let start = reader.position();
        reader.name()?;
        let rtype = reader.u16()?;
        reader.skip(6)?;
        let len = usize::from(reader.u16()?);
        reader.skip(len)?;
        last = Some((start, rtype));
    }
    if reader.position() != message.len() {
        return Err(wire::Malformed);
    }
    let Some((start, crate::zone::rtype::TSIG)) = last else {
        return Ok(None);
    };
    if header.arcount == 0 {
        return Err(wire::Malformed);
    }
    let mut reader = Reader::at(message, start);
    let key_name = reader.name()?;
    reader.skip(10)?;
    let algorithm = reader.name()?;
    let time = reader.u48()?;
    let fudge = reader.u16()?;
    let mac_len = usize::from(reader.u16()?);
    let mac = reader.bytes(mac_len)?.to_vec();
    let original_id = reader.u16()?;
    let error = reader.u16()?;
    let other_len = usize::from(reader.u16()?);
    let other = reader.bytes(other_len)?.to_vec();
    if reader.position() != message.len() {
        return Err(wire::Malformed);
    }
    let mut unsigned = message[..start].to_vec();
    unsigned[0..2].copy_from_slice(&original_id.to_be_bytes());
    wire::set_count(&mut unsigned, 10, header.arcount - 1);
    Ok(Some(Signed {
        unsigned,
        tsig: TsigRecord {
            key_name,
            algorithm,
            time,
            fudge,
            mac,
            original_id,
            error,
            other,
        },
    }))
}

/// Wire name of an algorithm.
pub(crate) fn algorithm_wire(algorithm: TsigAlgorithm) -> Vec<u8> {
    crate::zone::name::wire_from_text(&format!("{}.", algorithm.name())).unwrap_or_default()
}

/// HMAC of `data` under `key`.
pub(crate) fn mac(key: &TsigKey, data: &[u8]) -> Vec<u8> {
    let secret = key.secret.expose();
    match key.algorithm {
        TsigAlgorithm::HmacSha256 => hmac_of::<Hmac<Sha256>>(secret, data),
        TsigAlgorithm::HmacSha384 => hmac_of::<Hmac<Sha384>>(secret, data),
        TsigAlgorithm::HmacSha512 => hmac_of::<Hmac<Sha512>>(secret, data),
    }
}

fn hmac_of<M: Mac + hmac::digest::KeyInit>(secret: &[u8], data: &[u8]) -> Vec<u8> {
    match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(), // HMAC takes keys of any length
    }
}

/// Why a signed request was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::enum_variant_names,
    reason = "the RFC 8945 error names: BADKEY, BADSIG, BADTIME"
)]
pub(crate) enum Rejection {
    /// Unknown key or algorithm (BADKEY).
    BadKey,
    /// The MAC does not verify (BADSIG).
    BadSig,
    /// Signed too far from now (BADTIME); the request MAC is valid.
    BadTime,
}

/// Verifies a signed request against `keys` at unix time `now`, on time within
/// `window` seconds (see [`on_time`]); returns the key.
pub(crate) fn verify<'k>(
    signed: &Signed,
    keys: &'k [TsigKey],
    now: u64,
    window: u64,
) -> Result<&'k TsigKey, (Rejection, Option<&'k TsigKey>)> {
    let Some(key) = keys.iter().find(|k| {
        crate::zone::name::wire_from_text(&k.name).is_some_and(|n| n == signed.tsig.key_name)
            && algorithm_wire(k.algorithm) == signed.tsig.algorithm
    }) else {
        return Err((Rejection::BadKey, None));
    };
    let mut data = signed.unsigned.clone();
    signed.tsig.variables(false, &mut data);
    let expected = mac(key, &data);
    if expected.is_empty()
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_slice(),
            signed.tsig.mac.as_slice(),
        ))
    {
        return Err((Rejection::BadSig, Some(key)));
    }
    if !on_time(signed.tsig.time, signed.tsig.fudge, now, window) {
        return Err((Rejection::BadTime, Some(key)));
    }
    Ok(key)
}

/// Verifies the signed response to a request of ours whose MAC was `request_mac`
/// (RFC 8945 §5.3.1: the request MAC, the response, its TSIG variables): the
/// key that signed the request, a valid MAC, no TSIG error, on time within `window`
/// seconds (see [`on_time`]).
pub(crate) fn verify_response(
    response: &[u8],
    key: &TsigKey,
    request_mac: &[u8],
    now: u64,
    window: u64,
) -> Result<(), Rejection> {
    let Ok(Some(signed)) = split(response) else {
        return Err(Rejection::BadSig); // unsigned (or malformed): not from the key holder
    };
    let tsig = &signed.tsig;
    let key_name = crate::zone::name::wire_from_text(&key.name).unwrap_or_default();
    if tsig.key_name != key_name || tsig.algorithm != algorithm_wire(key.algorithm) {
        return Err(Rejection::BadKey);
    }
    let mut data = Vec::with_capacity(signed.unsigned.len() + request_mac.len() + 128);
    data.extend_from_slice(&(request_mac.len() as u16).to_be_bytes());
    data.extend_from_slice(request_mac);
    data.extend_from_slice(&signed.unsigned);
    tsig.variables(false, &mut data);
    let expected = mac(key, &data);
    if tsig.error != 0
        || expected.is_empty()
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_slice(),
            tsig.mac.as_slice(),
        ))
    {
        return Err(Rejection::BadSig);
    }
    if !on_time(tsig.time, tsig.fudge, now, window) {
        return Err(Rejection::BadTime);
    }
    Ok(())
}

/// Signs a request of our own (NOTIFY): appends the TSIG record; returns its MAC
/// (the response's is computed over it).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn sign_request(message: &mut Vec<u8>, key: &TsigKey, now: u64) -> Vec<u8> {
    sign_request_with(message, key, now, FUDGE)
}

/// [`sign_request`] with a Fudge of the caller's (tests: what another signer sends).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn sign_request_with(
    message: &mut Vec<u8>,
    key: &TsigKey,
    time: u64,
    fudge: u16,
) -> Vec<u8> {
    let id = u16::from_be_bytes([message[0], message[1]]);
    let mut tsig = TsigRecord {
        key_name: crate::zone::name::wire_from_text(&key.name).unwrap_or_default(),
        algorithm: algorithm_wire(key.algorithm),
        time,
        fudge,
        mac: Vec::new(),
        original_id: id,
        error: 0,
        other: Vec::new(),
    };
    let mut data = message.clone();
    tsig.variables(false, &mut data);
    tsig.mac = mac(key, &data);
    tsig.append_to(message);
    tsig.mac
}

/// Signs the responses to one verified request, in order (RFC 8945 §5.3, §5.3.1).
#[derive(Clone, Debug)]
pub(crate) struct ResponseSigner {
    key: TsigKey,
    /// The request's MAC, then each response's.
    prior_mac: Vec<u8>,
    original_id: u16,
    first: bool,
    error: u16,
    other: Vec<u8>,
}

impl ResponseSigner {
    /// A signer for the responses to a request whose TSIG verified with `key`.
    pub(crate) fn new(key: TsigKey, request: &TsigRecord) -> Self {
        Self {
            key,
            prior_mac: request.mac.clone(),
            original_id: request.original_id,
            first: true,
            error: 0,
            other: Vec::new(),
        }
    }

    /// A signer for a BADTIME answer (signed, with our time as other data).
    pub(crate) fn bad_time(key: TsigKey, request: &TsigRecord, now: u64) -> Self {
        let mut signer = Self::new(key, request);
        signer.error = error::BADTIME;
        signer.other = now.to_be_bytes()[2..].to_vec();
        signer
    }

    /// The TSIG record for the next response `unsigned` (as it goes on the wire,
    /// without TSIG) at unix time `now`.
    pub(crate) fn sign(&mut self, unsigned: &[u8], now: u64) -> TsigRecord {
        let mut tsig = TsigRecord {
            key_name: crate::zone::name::wire_from_text(&self.key.name).unwrap_or_default(),
            algorithm: algorithm_wire(self.key.algorithm),
            time: now,
            fudge: FUDGE,
            mac: Vec::new(),
            original_id: self.original_id,
            error: self.error,
            other: self.other.clone(),
        };
        let mut data = Vec::with_capacity(unsigned.len() + 128);
        data.extend_from_slice(&(self.prior_mac.len() as u16).to_be_bytes());
        data.extend_from_slice(&self.prior_mac);
        data.extend_from_slice(unsigned);
        tsig.variables(!self.first, &mut data);
        tsig.mac = mac(&self.key, &data);
        self.prior_mac = tsig.mac.clone();
        self.first = false;
        tsig
    }
}

/// An unsigned TSIG record carrying an error (BADKEY, BADSIG: §5.3.2).
pub(crate) fn error_record(request: &TsigRecord, code: u16, now: u64) -> TsigRecord {
    TsigRecord {
        key_name: request.key_name.clone(),
        algorithm: request.algorithm.clone(),
        time: now,
        fudge: FUDGE,
        mac: Vec::new(),
        original_id: request.original_id,
        error: code,
        other: Vec::new(),
    }
}

pub(crate) use crate::runtime::clock::unix_now;

#[cfg(test)]
mod tests;
