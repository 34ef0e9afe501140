//! A zone as served now, in zone-file text (`GET /v1/zone`, `ctl zone-read`, like
//! `knotc zone-read`): the SOA with the serial served, every static record, and each
//! dynamic record's client-independent answer — what a zone transfer carries (see
//! [`super::xfr::content`]) — with a comment saying why it is what it is. Signed
//! zones come with their signatures and denial chain. Pure: it reads a snapshot.
//!
//! A record type hickory cannot print (DNSSEC types without its `dnssec` feature,
//! unknown types) is written in the generic form of RFC 3597 (`TYPE \# LEN HEX`).

use std::fmt::Write as _;
use std::sync::Arc;

use hickory_proto::rr::{RData, Record as HickoryRecord};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::answers::Snapshot;
use super::xfr::content::{Record, StaticContent, ZoneContent};
use crate::policy::describe_outcome;
use crate::zone::name;

/// Why a zone cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneReadError {
    /// No zone of that name is served.
    #[error("no zone {zone} is served here (zones: {served})")]
    UnknownZone {
        /// The name asked for (absolute).
        zone: String,
        /// The zones served.
        served: String,
    },
}

/// The zone `zone` (any case, with or without the final dot) of `snapshot` as zone-file
/// text.
pub fn render(snapshot: &Snapshot, zone: &str) -> Result<String, ZoneReadError> {
    let mut wanted = zone.trim().to_ascii_lowercase();
    if !wanted.ends_with('.') {
        wanted.push('.');
    }
    let zones = snapshot.zones.zones();
    let Some(index) = zones.iter().position(|z| z.origin_text() == wanted) else {
        let served: Vec<String> = zones.iter().map(|z| z.origin_text()).collect();
        return Err(ZoneReadError::UnknownZone {
            zone: wanted,
            served: served.join(", "),
        });
    };
    let loaded = &zones[index];
    let signer = snapshot.signed_zone(index);
    let statics = Arc::new(StaticContent::of(loaded, signer));
    let content = ZoneContent::build(
        loaded.origin(),
        statics.clone(),
        &snapshot.config,
        &snapshot.dynamic,
        signer,
    )
    .with_serial(loaded.soa_serial());
    let mut out = String::new();
    let _ = writeln!(
        out,
        ";; zone {wanted} as served now (serial {}, answers generation {}{})",
        content.serial,
        snapshot.generation,
        if signer.is_some() { ", signed" } else { "" }
    );
    let _ = writeln!(
        out,
        ";; a dynamic record shows the answer of a client with no location (a geo record: the\n\
         ;; default region's), every endpoint answers are drawn from; a comment says why"
    );
    let soa = content.soa();
    write_record(&mut out, &soa);
    // Every record in canonical name order (RFC 4034 §6.1), each dynamic owner's
    // comments before its records (a dynamic record with no answer now has only its
    // comment).
    let mut records: Vec<&Record> = content.records().collect();
    records.sort_by(|a, b| {
        canonical(&a.owner)
            .cmp(&canonical(&b.owner))
            .then(a.rtype.cmp(&b.rtype))
            .then(a.rdata.cmp(&b.rdata))
    });
    let mut owners: Vec<&[u8]> = records.iter().map(|r| &*r.owner).collect();
    owners.extend(statics.dynamic_owners.iter().map(|(owner, _)| &**owner));
    owners.sort_by_key(|owner| canonical(owner));
    owners.dedup();
    for owner in owners {
        if let Some((_, bound)) = statics.dynamic_owners.iter().find(|(o, _)| &**o == owner) {
            for &record in bound {
                comment_dynamic(&mut out, snapshot, record);
            }
        }
        for record in records.iter().filter(|r| &*r.owner == owner && **r != &soa) {
            write_record(&mut out, record);
        }
    }
    Ok(out)
}

/// Why a dynamic record answers what it does, as a comment line.
fn comment_dynamic(out: &mut String, snapshot: &Snapshot, record: crate::model::RecordIndex) {
    let Some(answer) = snapshot.dynamic.get(record.0 as usize) else {
        return;
    };
    let config_record = &snapshot.config.records[record.0 as usize];
    let set = answer.set_for(None);
    let pin = snapshot
        .health
        .pin(record)
        .filter(|_| config_record.selection != crate::config::Selection::Primary);
    let pools = answer.pools_of_set(0);
    let pin = crate::policy::operator_pin(
        &snapshot.config,
        &snapshot.health,
        pools,
        pin,
        &set.decision,
    );
    let outcome = describe_outcome(&snapshot.config, pools, pin, &set.decision);
    let _ = writeln!(
        out,
        "; {} {}: dynamic, {outcome}{}{}",
        config_record.name,
        config_record.record_type,
        if answer.is_client_dependent() {
            ", varies by client location"
        } else {
            ""
        },
        if set.decision.candidates.is_empty() {
            " (no record now: NODATA)"
        } else {
            ""
        }
    );
}

/// The labels of a wire name from the root down, lower case (canonical order).
fn canonical(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut labels = Vec::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        let label = wire
            .get(at + 1..at + 1 + usize::from(len))
            .unwrap_or_default();
        labels.push(label.to_ascii_lowercase());
        at += 1 + usize::from(len);
    }
    labels.reverse();
    labels
}

/// One record as a zone-file line: owner, TTL, class, type, data.
fn write_record(out: &mut String, record: &Record) {
    let owner = name::text_from_wire(&record.owner);
    let rtype = crate::zone::store::type_name(record.rtype);
    let _ = writeln!(
        out,
        "{owner}\t{}\tIN\t{rtype}\t{}",
        record.ttl,
        rdata_text(record)
    );
}

/// The data of a record in presentation form, or RFC 3597's generic form.
fn rdata_text(record: &Record) -> String {
    // TXT and SPF: each character-string quoted (hickory prints them bare).
    if matches!(record.rtype, 16 | 99) {
        if let Some(text) = character_strings(&record.rdata) {
            return text;
        }
    }
    let mut wire = Vec::with_capacity(record.owner.len() + 10 + record.rdata.len());
    wire.extend_from_slice(&record.owner);
    wire.extend_from_slice(&record.rtype.to_be_bytes());
    wire.extend_from_slice(&1u16.to_be_bytes());
    wire.extend_from_slice(&record.ttl.to_be_bytes());
    wire.extend_from_slice(&(record.rdata.len() as u16).to_be_bytes());
    wire.extend_from_slice(&record.rdata);
    let mut decoder = BinDecoder::new(&wire);
    match HickoryRecord::<RData>::read(&mut decoder) {
        Ok(parsed) if !matches!(parsed.data, RData::Unknown { .. } | RData::Update0(_)) => {
            parsed.data.to_string()
        }
        _ => generic(&record.rdata),
    }
}

/// `"one" "two"`: length-prefixed strings quoted, `"` and `\` escaped, bytes outside
/// printable ASCII as `\DDD`; None when the data is not such strings.
fn character_strings(rdata: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    let mut at = 0;
    while at < rdata.len() {
        let len = usize::from(rdata[at]);
        let bytes = rdata.get(at + 1..at + 1 + len)?;
        let mut part = String::from("\"");
        for &b in bytes {
            match b {
                b'"' | b'\\' => {
                    part.push('\\');
                    part.push(char::from(b));
                }
                0x20..=0x7e => part.push(char::from(b)),
                _ => {
                    let _ = write!(part, "\\{b:03}");
                }
            }
        }
        part.push('"');
        parts.push(part);
        at += 1 + len;
    }
    Some(parts.join(" "))
}

/// RFC 3597 §5: `\# LENGTH HEX`.
fn generic(rdata: &[u8]) -> String {
    let mut text = format!("\\# {}", rdata.len());
    if !rdata.is_empty() {
        text.push(' ');
        for byte in rdata {
            let _ = write!(text, "{byte:02x}");
        }
    }
    text
}
