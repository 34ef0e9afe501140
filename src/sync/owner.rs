//! Ownership: how the agent marks the record sets and health checks it manages, in
//! the style of ExternalDNS's TXT registry.
//!
//! Every record set the agent manages has a marker record set beside it:
//!
//! ```text
//!   www.gslb.example.com.                   A    [www A primary]  (the record)
//!   _failoverd-owner.www.gslb.example.com.  TXT  [owner www A primary] weight 0
//!       "heritage=failoverd,owner=<owner_id>,type=A,config=<fingerprint>,set=www A primary"
//! ```
//!
//! A marker is a weighted TXT record (weight 0) with its own set identifier, so each
//! managed record set has exactly one small marker and markers of record sets with
//! and without routing policies never mix at one name. A record set is owned when a
//! marker names it with our owner id; everything else is foreign and never changed.
//! Markers are created before (or with) the record they mark and deleted after it, in
//! the same atomic batch whenever the batch limits allow.
//!
//! A marker of a dynamic record's set also holds `config=`, the fingerprint of the
//! record's configuration the set was written from (see
//! [`super::desired::config_fingerprint`]). The safety guard compares it with the
//! fingerprint of the configuration being applied: equal, the change is health (or an
//! operator override) alone; different or missing, it is a configuration edit.
//! Readers ignore fields they do not know, so older versions still read ownership.
//!
//! Health checks are owned when tagged `failoverd:owner = <owner_id>`; the
//! `failoverd:endpoint` tag names the endpoint the check probes. A check created by a
//! run that stopped before tagging it is recognised by its caller reference.

use super::model::{RecordKey, RecordSet, RecordType, Routing, relative_name, stable_hash};

/// First label of every marker name.
pub(crate) const MARKER_LABEL: &str = "_failoverd-owner";
/// `heritage=` value of markers.
pub(crate) const HERITAGE: &str = "failoverd";
/// TTL of marker record sets.
pub(crate) const MARKER_TTL: u32 = 300;
/// Health-check tag holding the owner id.
pub(crate) const TAG_OWNER: &str = "failoverd:owner";
/// Health-check tag holding the endpoint (`pool/endpoint`) the check probes.
pub(crate) const TAG_ENDPOINT: &str = "failoverd:endpoint";
/// Health-check tag shown as its name in the AWS console.
pub(crate) const TAG_NAME: &str = "Name";
/// Longest set identifier the agent generates (Route 53 allows 128; markers add a
/// prefix).
pub(crate) const MAX_SET_IDENTIFIER: usize = 100;

/// Who claims a record set, as written in a marker value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Owner id.
    pub owner: String,
    /// The record set claimed.
    pub key: RecordKey,
    /// Fingerprint of the record configuration the set was written from (`config=`;
    /// None: a static record, or a marker written before fingerprints existed).
    pub config: Option<String>,
}

/// The marker name of a record name.
pub(crate) fn marker_name(name: &str) -> String {
    format!("{MARKER_LABEL}.{name}")
}

/// Whether a record set is at a marker name (whatever its values).
pub(crate) fn is_marker_name(name: &str) -> bool {
    name.starts_with(MARKER_LABEL) && name.as_bytes().get(MARKER_LABEL.len()) == Some(&b'.')
}

/// The marker record set claiming `key` for `owner`, written from the record
/// configuration with fingerprint `config` (None: a static record).
pub(crate) fn marker_for(
    key: &RecordKey,
    zone: &str,
    owner: &str,
    config: Option<&str>,
) -> RecordSet {
    let ident = match &key.set_identifier {
        Some(set) => set.clone(),
        None => format!("{} {}", relative_name(&key.name, zone), key.record_type),
    };
    let mut value = format!("heritage={HERITAGE},owner={owner},type={}", key.record_type);
    if let Some(config) = config {
        value.push_str(",config=");
        value.push_str(config);
    }
    if let Some(set) = &key.set_identifier {
        value.push_str(",set=");
        value.push_str(set);
    }
    RecordSet {
        key: RecordKey::new(
            &marker_name(&key.name),
            RecordType::Txt,
            Some(shorten(&format!("owner {ident}"), 127)),
        ),
        ttl: Some(MARKER_TTL),
        values: vec![super::model::txt_value(value.as_bytes())],
        alias: None,
        routing: Routing::Weighted { weight: 0 },
        health_check: None,
    }
}

/// The claims a marker record set makes, or None if it is not a marker.
pub(crate) fn parse_marker(record: &RecordSet) -> Option<Vec<Claim>> {
    if record.key.record_type != RecordType::Txt || !is_marker_name(&record.key.name) {
        return None;
    }
    let owned_name = &record.key.name[MARKER_LABEL.len() + 1..];
    let mut claims = Vec::new();
    for value in &record.values {
        let Some(strings) = super::model::txt_strings(value) else {
            continue;
        };
        let text = String::from_utf8_lossy(&strings.concat()).into_owned();
        if let Some(claim) = parse_claim(&text, owned_name) {
            claims.push(claim);
        }
    }
    (!claims.is_empty()).then_some(claims)
}

fn parse_claim(text: &str, owned_name: &str) -> Option<Claim> {
    let mut heritage = None;
    let mut owner = None;
    let mut record_type = None;
    let mut set = None;
    let mut config = None;
    let mut rest = text;
    while !rest.is_empty() {
        let (field, tail) = match rest.split_once(',') {
            // `set=` is last and may contain commas.
            Some(_) if rest.starts_with("set=") => (rest, ""),
            Some((field, tail)) => (field, tail),
            None => (rest, ""),
        };
        let (k, v) = field.split_once('=')?;
        match k {
            "heritage" => heritage = Some(v),
            "owner" => owner = Some(v),
            "type" => record_type = Some(v),
            "set" => set = Some(v),
            "config" => config = Some(v),
            _ => {}
        }
        rest = tail;
    }
    if heritage? != HERITAGE {
        return None;
    }
    Some(Claim {
        owner: owner?.to_owned(),
        key: RecordKey::new(
            owned_name,
            RecordType::from_mnemonic(record_type?),
            set.map(str::to_owned),
        ),
        config: config.map(str::to_owned),
    })
}

/// The set identifier of an agent-managed routed record set: `<relative name>
/// <type> <role>` (unique in the zone, because moto matches DELETEs by set identifier
/// alone), shortened with a hash when long.
pub(crate) fn set_identifier(
    name: &str,
    zone: &str,
    record_type: &RecordType,
    role: &str,
) -> String {
    shorten(
        &format!("{} {} {}", relative_name(name, zone), record_type, role),
        MAX_SET_IDENTIFIER,
    )
}

/// Shortens `text` to at most `max` bytes, ending in a hash of the whole text when
/// it had to be cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max - 17;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} {:016x}", &text[..cut], stable_hash(text.as_bytes()))
}

/// Prefix of the caller references of the health checks `owner` creates.
pub(crate) fn caller_reference_prefix(owner: &str) -> String {
    format!("failoverd:{:08x}:", stable_hash(owner.as_bytes()) as u32)
}

/// A caller reference for a new health check (unique per attempt: Route 53 refuses a
/// reference that was ever used by a deleted check).
pub(crate) fn caller_reference(owner: &str, key: &str, nonce: u64) -> String {
    format!(
        "{}{:016x}:{nonce:x}",
        caller_reference_prefix(owner),
        stable_hash(key.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let zone = "gslb.example.com.";
        for set in [None, Some("www A web-eu/eu-1,odd=chars".to_owned())] {
            for config in [None, Some("0123456789abcdef")] {
                let key = RecordKey::new("www.gslb.example.com.", RecordType::A, set.clone());
                let marker = marker_for(&key, zone, "team-a", config);
                assert_eq!(marker.key.name, "_failoverd-owner.www.gslb.example.com.");
                let claims = parse_marker(&marker).unwrap();
                assert_eq!(
                    claims,
                    vec![Claim {
                        owner: "team-a".into(),
                        key,
                        config: config.map(str::to_owned),
                    }]
                );
            }
        }
        // A marker written before fingerprints existed still claims its set.
        let old = RecordSet::simple(
            "_failoverd-owner.www.gslb.example.com.",
            RecordType::Txt,
            300,
            vec!["\"heritage=failoverd,owner=team-a,type=A,set=www A x\"".into()],
        );
        let claims = parse_marker(&old).unwrap();
        assert_eq!(claims[0].config, None);
        assert_eq!(claims[0].key.set_identifier.as_deref(), Some("www A x"));
    }

    #[test]
    fn foreign_txt_is_not_a_marker() {
        let txt = RecordSet::simple(
            "_failoverd-owner.www.example.com.",
            RecordType::Txt,
            60,
            vec!["\"hello\"".into()],
        );
        assert_eq!(parse_marker(&txt), None);
        let other_name = RecordSet::simple(
            "_failoverd-ownerx.www.example.com.",
            RecordType::Txt,
            60,
            vec!["\"heritage=failoverd,owner=a,type=A\"".into()],
        );
        assert_eq!(parse_marker(&other_name), None);
    }

    #[test]
    fn identifiers_are_bounded() {
        let long = "x".repeat(300);
        let id = set_identifier("www.example.com.", "example.com.", &RecordType::A, &long);
        assert_eq!(id.len(), MAX_SET_IDENTIFIER);
        assert_ne!(
            id,
            set_identifier(
                "www.example.com.",
                "example.com.",
                &RecordType::A,
                &(long + "y")
            )
        );
        let reference = caller_reference(&"o".repeat(64), "pool/endpoint", u64::MAX);
        assert!(reference.len() <= 64, "{reference}");
        assert!(reference.starts_with(&caller_reference_prefix(&"o".repeat(64))));
    }
}
