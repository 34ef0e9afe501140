//! RRSIG generation over the canonical form of an RRset (RFC 4034 §3.1.8.1, §6),
//! computed from our uncompressed packed rdata.

use super::DnssecError;
use super::keys::Key;
use crate::zone::name;
use crate::zone::store::pack_rdata;

/// Class IN.
use crate::proto::class::IN as CLASS_IN;

/// A signature validity window (RRSIG inception and expiration, Unix seconds mod
/// 2^32, RFC 4034 §3.1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Window {
    /// Signature inception.
    pub inception: u32,
    /// Signature expiration.
    pub expiration: u32,
}

impl Window {
    /// The window for signing at `now`: inception `offset` seconds back, expiry
    /// `validity` seconds ahead.
    pub(crate) fn at(now: u64, offset: u64, validity: u64) -> Self {
        Self {
            inception: now.saturating_sub(offset) as u32,
            expiration: (now + validity) as u32,
        }
    }
}

/// Labels field of an RRSIG for `owner` (the root and a leading `*` not counted).
pub(crate) fn rrsig_labels(owner: &[u8]) -> u8 {
    let count = name::label_count(owner);
    if name::is_wildcard(owner) {
        (count - 1) as u8
    } else {
        count as u8
    }
}

/// Where the names are inside rdata of types whose embedded names are lower-cased
/// in canonical form (RFC 4034 §6.2, RFC 6840 §5.1): bytes to skip, then names.
fn embedded_names(rtype: u16) -> Option<(usize, usize)> {
    Some(match rtype {
        2..=5 | 7..=9 | 12 | 39 => (0, 1), // NS MD MF CNAME MB MG MR PTR DNAME
        6 | 14 | 17 => (0, 2),             // SOA MINFO RP
        15 | 18 | 21 | 36 => (2, 1),       // MX AFSDB RT KX
        26 => (2, 2),                      // PX
        33 => (6, 1),                      // SRV
        _ => return None,
    })
}

/// The canonical form of one record's rdata.
pub(crate) fn canonical_rdata(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = rdata.to_vec();
    if let Some((skip, names)) = embedded_names(rtype) {
        let mut pos = skip;
        for _ in 0..names {
            loop {
                let Some(&len) = out.get(pos) else {
                    return out;
                };
                let len = usize::from(len);
                if len == 0 {
                    pos += 1;
                    break;
                }
                if len & 0xC0 != 0 || pos + 1 + len > out.len() {
                    return out;
                }
                out[pos + 1..pos + 1 + len].make_ascii_lowercase();
                pos += 1 + len;
            }
        }
    }
    out
}

/// Signs the RRset `owner`/`rtype` (TTL `ttl`, records `rdatas`) with each of `keys`,
/// appending each RRSIG's rdata to `out` in packed form. Returns how many were added.
#[allow(clippy::too_many_arguments)] // the RRSIG fields, each distinct
pub(crate) fn sign_rrset<'a>(
    keys: &[&Key],
    signer: &[u8],
    owner: &[u8],
    rtype: u16,
    ttl: u32,
    rdatas: impl IntoIterator<Item = &'a [u8]>,
    window: Window,
    out: &mut Vec<u8>,
) -> Result<u16, DnssecError> {
    let mut records: Vec<Vec<u8>> = rdatas
        .into_iter()
        .map(|r| canonical_rdata(rtype, r))
        .collect();
    records.sort();
    records.dedup();
    let mut owner_lower = owner.to_vec();
    name::lowercase_in_place(&mut owner_lower);
    let mut body = Vec::with_capacity(records.iter().map(|r| owner.len() + 10 + r.len()).sum());
    for r in &records {
        body.extend_from_slice(&owner_lower);
        body.extend_from_slice(&rtype.to_be_bytes());
        body.extend_from_slice(&CLASS_IN.to_be_bytes());
        body.extend_from_slice(&ttl.to_be_bytes());
        body.extend_from_slice(&(r.len() as u16).to_be_bytes());
        body.extend_from_slice(r);
    }
    let mut count = 0;
    for key in keys {
        let mut rdata = Vec::with_capacity(18 + signer.len() + 64);
        rdata.extend_from_slice(&rtype.to_be_bytes());
        rdata.push(key.algorithm.number());
        rdata.push(rrsig_labels(&owner_lower));
        rdata.extend_from_slice(&ttl.to_be_bytes());
        rdata.extend_from_slice(&window.expiration.to_be_bytes());
        rdata.extend_from_slice(&window.inception.to_be_bytes());
        rdata.extend_from_slice(&key.tag.to_be_bytes());
        rdata.extend_from_slice(signer);
        let mut message = Vec::with_capacity(rdata.len() + body.len());
        message.extend_from_slice(&rdata);
        message.extend_from_slice(&body);
        rdata.extend_from_slice(&key.sign(&message)?);
        pack_rdata(out, &rdata);
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::keys::{Algorithm, Role, Timing};
    use crate::zone::name::wire_from_text;
    use ring::signature::{ED25519, UnparsedPublicKey};

    #[test]
    fn an_rrsig_verifies_over_the_canonical_rrset_in_any_order_and_case() {
        let key = Key::generate(
            "example.test.",
            Role::Csk,
            Algorithm::Ed25519,
            Timing::from(0),
        )
        .unwrap();
        let zone = wire_from_text("example.test.").unwrap();
        let owner = wire_from_text("www.example.test.").unwrap();
        let window = Window::at(1_000_000, 3600, 86_400);
        let sign = |rdatas: Vec<Vec<u8>>| {
            let mut out = Vec::new();
            sign_rrset(
                &[&key],
                &zone,
                &owner,
                15,
                300,
                rdatas.iter().map(|r| r.as_slice()),
                window,
                &mut out,
            )
            .unwrap();
            out
        };
        let mut mx1 = vec![0, 10];
        mx1.extend(wire_from_text("Mail.Example.test.").unwrap());
        let mut mx2 = vec![0, 20];
        mx2.extend(wire_from_text("b.example.test.").unwrap());
        let mut mx1_lower = vec![0, 10];
        mx1_lower.extend(wire_from_text("mail.example.test.").unwrap());
        let a = sign(vec![mx1.clone(), mx2.clone()]);
        let b = sign(vec![mx2.clone(), mx1_lower.clone()]);
        assert_eq!(a, b, "Ed25519 is deterministic over the canonical form");
        // Verify by hand: RRSIG rdata minus signature, then the canonical records.
        let rrsig = &a[2..];
        let signature = &rrsig[rrsig.len() - 64..];
        let mut message = rrsig[..rrsig.len() - 64].to_vec();
        for r in [&mx1_lower, &mx2] {
            message.extend(&owner);
            message.extend([0, 15, 0, 1, 0, 0, 1, 44]);
            message.extend((r.len() as u16).to_be_bytes());
            message.extend(r.iter());
        }
        UnparsedPublicKey::new(&ED25519, &key.public_key)
            .verify(&message, signature)
            .unwrap();
        assert_eq!(rrsig[3], 3, "labels of www.example.test.");
        assert_eq!(rrsig_labels(&wire_from_text("*.w.example.").unwrap()), 2);
    }
}
