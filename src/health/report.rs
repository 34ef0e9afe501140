//! Reports: what one vantage point sends to a server — its verdict per endpoint —
//! signed with its secret (HMAC-SHA256 over the exact body bytes).
//!
//! Replay protection (see the README, "Replay guarantee") rests on two things a
//! captured report cannot change without breaking its signature:
//!
//! - the receiving server's **challenge**: a random boot id drawn when the server
//!   process starts, plus an epoch counter that advances every `staleness`. A report
//!   must carry the challenge of the server it is sent to, current or one epoch old, so
//!   nothing captured before a restart is accepted after it (with or without the
//!   state file), and nothing held back for more than two epochs is accepted at all;
//! - the sender's **session and sequence**: a random session id per sender process
//!   and a counter within it. Within one server boot, a report must be newer than the
//!   newest accepted from its sender; a new session retires the older ones.
//!
//! Reports are delta-encoded: after a full report, a sender sends only the verdicts
//! that changed (and those its prober has not refreshed for a while, with their age),
//! naming the sequence of the report they build on (`base`). A server that did not
//! accept exactly that report answers 409 `resync` and gets a full one; a full report
//! also goes out every [`FULL_REPORT_EVERY`] anyway.
//!
//! No clock is compared across machines: a sender whose clock steps backwards (or a
//! server whose clock does) keeps being accepted. The sender's timestamp is shown in
//! status only.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::Secret;
use crate::model::HealthState;

/// HTTP header carrying the signature: `v1=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-failoverd-signature";

/// HTTP header naming the signing vantage point, so a server checks the signature
/// before it parses the body.
pub const VANTAGE_HEADER: &str = "x-failoverd-vantage";

/// HTTP response header carrying the server's current challenge.
pub const CHALLENGE_HEADER: &str = "x-failoverd-challenge";

/// HTTP response header naming why a report was refused ([`ReportError::label`]).
pub const ERROR_HEADER: &str = "x-failoverd-error";

/// A sender sends a full report at least this often, deltas in between.
pub const FULL_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// A vantage point's verdicts, addressed to one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Sending vantage point.
    pub vantage: String,
    /// Random id of the sending process (new at every start).
    pub session: u64,
    /// Increases with every report of the session.
    pub sequence: u64,
    /// The receiving server's challenge, as last seen in its responses.
    pub challenge: String,
    /// Sender's wall clock, Unix milliseconds (informational).
    pub sent_at_ms: u64,
    /// A delta: only the verdicts changed since the report of this sequence (of the
    /// same session), which the server must have accepted last. None: a full report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    /// One verdict per probed endpoint (full), or the changed ones (delta).
    pub verdicts: Vec<Verdict>,
}

/// A verdict on one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// `pool/endpoint`.
    pub endpoint: String,
    /// Up or down.
    pub state: HealthState,
    /// Last probe's reason, for status output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Milliseconds since the sender last probed the endpoint, so a stalled prober's
    /// verdict goes stale on the server even while its reports keep arriving.
    #[serde(default)]
    pub age_ms: u64,
    /// The sender's smoothed round-trip time to the endpoint, microseconds (latency
    /// steering; None: not measured). Deltas carry it when it moved by more than
    /// [`crate::policy::latency::REPORT_CHANGE`]. Servers of an earlier version
    /// refuse reports that carry it: upgrade the servers first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u32>,
    /// Up, but degraded (slow or flaky; see [`crate::health::degraded`]). Sent only
    /// when true, so reports stay as before until something is degraded; servers of
    /// an earlier version refuse a report that carries it (400 `malformed`, counted in
    /// `failoverd_reports_received_total{result="malformed"}`) rather than misread it:
    /// upgrade the servers before the agents. A report without it (an older sender)
    /// votes not degraded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
}

/// Why a report was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Not JSON of the report shape.
    #[error("malformed report")]
    Malformed,
    /// The vantage point is not in the config (or has no secret).
    #[error("unknown vantage point")]
    UnknownVantage,
    /// Missing or wrong signature.
    #[error("bad signature")]
    BadSignature,
    /// The report carries another server boot's challenge, or one too old.
    #[error("unknown or expired challenge; retry with the current one")]
    Challenge,
    /// Not newer than the last report accepted from this vantage point.
    #[error("replayed or out-of-order report")]
    Replay,
    /// A delta on a report this server did not accept last: send a full one.
    #[error("delta on an unknown base; send a full report")]
    Resync,
}

impl ReportError {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownVantage => "unknown_vantage",
            Self::BadSignature => "bad_signature",
            Self::Challenge => "challenge",
            Self::Replay => "replay",
            Self::Resync => "resync",
        }
    }

    /// Every label, for metrics.
    pub const LABELS: [&'static str; 6] = [
        "malformed",
        "unknown_vantage",
        "bad_signature",
        "challenge",
        "replay",
        "resync",
    ];
}

/// Signature header value of `body`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose()).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + digest.len() * 2);
    out.push_str("v1=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Checks a signature header value in constant time.
pub fn verify(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("v1=") else {
        return false;
    };
    let Some(bytes) = decode_hex(hex) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Authenticates a report body, then parses it: `vantage` is the sender named in
/// [`VANTAGE_HEADER`], `secret_of` finds its secret. The body is not parsed unless
/// its signature is right. Ordering (challenge, session, sequence) is checked by the
/// health board, which knows what was accepted before.
pub fn authenticate(
    body: &[u8],
    vantage: Option<&str>,
    signature: Option<&str>,
    secret_of: impl Fn(&str) -> Option<Secret>,
) -> Result<Report, ReportError> {
    let vantage = vantage.ok_or(ReportError::UnknownVantage)?;
    let secret = secret_of(vantage).ok_or(ReportError::UnknownVantage)?;
    if !signature.is_some_and(|s| verify(&secret, body, s)) {
        return Err(ReportError::BadSignature);
    }
    let report: Report = serde_json::from_slice(body).map_err(|_| ReportError::Malformed)?;
    if report.vantage != vantage {
        // Signed by one vantage point, claiming to be another.
        return Err(ReportError::BadSignature);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            vantage: "fra-1".into(),
            session: 7,
            sequence: 10,
            challenge: "00ff.3".into(),
            sent_at_ms: 1_000_000,
            base: None,
            verdicts: vec![Verdict {
                endpoint: "web/a".into(),
                state: HealthState::Down,
                reason: "connect refused".into(),
                age_ms: 120,
                rtt_us: None,
                degraded: false,
            }],
        }
    }

    #[test]
    fn signed_reports_authenticate_and_tampering_is_caught() {
        let secret = Secret::new("0123456789abcdef0123");
        let body = serde_json::to_vec(&report()).unwrap();
        let signature = sign(&secret, &body);
        let secret_of = |v: &str| (v == "fra-1").then(|| secret.clone());
        let ok = authenticate(&body, Some("fra-1"), Some(&signature), secret_of);
        assert_eq!(ok.unwrap(), report());
        let tampered = String::from_utf8(body.clone())
            .unwrap()
            .replace("\"down\"", "\"up\"");
        assert_ne!(tampered.as_bytes(), body.as_slice());
        let check = |body: &[u8], vantage: Option<&str>, signature: Option<&str>| {
            authenticate(body, vantage, signature, secret_of).unwrap_err()
        };
        assert_eq!(
            check(tampered.as_bytes(), Some("fra-1"), Some(&signature)),
            ReportError::BadSignature
        );
        assert_eq!(check(&body, Some("fra-1"), None), ReportError::BadSignature);
        let wrong = sign(&Secret::new("another-secret-of-16b"), &body);
        assert_eq!(
            check(&body, Some("fra-1"), Some(&wrong)),
            ReportError::BadSignature
        );
        assert_eq!(
            check(&body, None, Some(&signature)),
            ReportError::UnknownVantage
        );
        assert_eq!(
            check(&body, Some("ams-1"), Some(&signature)),
            ReportError::UnknownVantage
        );
        // Garbage is refused before it is parsed: unsigned garbage is a bad signature,
        // signed garbage is malformed.
        assert_eq!(
            check(b"{", Some("fra-1"), Some(&signature)),
            ReportError::BadSignature
        );
        let signed_garbage = sign(&secret, b"{");
        assert_eq!(
            check(b"{", Some("fra-1"), Some(&signed_garbage)),
            ReportError::Malformed
        );
    }

    #[test]
    fn a_report_signed_by_one_vantage_cannot_claim_another() {
        let secret = Secret::new("0123456789abcdef0123");
        let mut other = report();
        other.vantage = "ams-1".into();
        let body = serde_json::to_vec(&other).unwrap();
        let signature = sign(&secret, &body);
        let secret_of = |_: &str| Some(secret.clone());
        assert_eq!(
            authenticate(&body, Some("fra-1"), Some(&signature), secret_of).unwrap_err(),
            ReportError::BadSignature
        );
    }

    #[test]
    fn the_degraded_flag_is_sent_only_when_set_and_an_older_server_refuses_it() {
        let mut plain = report();
        plain.verdicts[0].state = HealthState::Up;
        let body = serde_json::to_string(&plain).unwrap();
        assert!(!body.contains("degraded"), "{body}");
        let mut degraded = plain.clone();
        degraded.verdicts[0].degraded = true;
        let body = serde_json::to_string(&degraded).unwrap();
        assert!(body.contains(r#""degraded":true"#), "{body}");
        assert_eq!(serde_json::from_str::<Report>(&body).unwrap(), degraded);
        // An older sender's verdict (no field) votes not degraded.
        let old = r#"{"endpoint":"web/a","state":"up","age_ms":3}"#;
        assert!(!serde_json::from_str::<Verdict>(old).unwrap().degraded);
        // An older server's verdict type (deny_unknown_fields, no `degraded`) refuses
        // the report instead of reading it as plain up.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct OldVerdict {
            endpoint: String,
            state: HealthState,
            #[serde(default)]
            reason: String,
            #[serde(default)]
            age_ms: u64,
        }
        let verdict = serde_json::to_string(&degraded.verdicts[0]).unwrap();
        assert!(serde_json::from_str::<OldVerdict>(&verdict).is_err());
        let plain = serde_json::to_string(&plain.verdicts[0]).unwrap();
        assert!(serde_json::from_str::<OldVerdict>(&plain).is_ok());
    }
}
