//! Reports: what one vantage point sends to servers — its verdict per endpoint —
//! signed with its secret (HMAC-SHA256 over the exact body bytes).
//!
//! Freshness is judged by when a server *receives* a report, so clocks need not agree;
//! the sender's timestamp only bounds replays (`MAX_CLOCK_SKEW`) and the per-vantage
//! sequence number must increase.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::Secret;
use crate::model::HealthState;

/// HTTP header carrying the signature: `v1=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-failoverd-signature";

/// Largest difference between the sender's and our clock before a report is refused
/// as a possible replay.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A vantage point's verdicts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Sending vantage point.
    pub vantage: String,
    /// Strictly increasing per vantage point (start-up time in µs plus a counter, so
    /// it also increases across restarts).
    pub sequence: u64,
    /// Sender's wall clock, Unix milliseconds.
    pub sent_at_ms: u64,
    /// One verdict per probed endpoint.
    pub verdicts: Vec<Verdict>,
}

/// A verdict on one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `pool/endpoint`.
    pub endpoint: String,
    /// Up or down.
    pub state: HealthState,
    /// Last probe's reason, for status output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
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
    /// The sender's clock is too far from ours (or the report is old).
    #[error("timestamp outside the allowed clock skew")]
    Stale,
    /// Not newer than the last report accepted from this vantage point.
    #[error("replayed or out-of-order report")]
    Replay,
}

impl ReportError {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownVantage => "unknown_vantage",
            Self::BadSignature => "bad_signature",
            Self::Stale => "stale",
            Self::Replay => "replay",
        }
    }
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

/// Parses and authenticates a report body. `secret_of` finds a vantage's secret;
/// `last_sequence` is the newest sequence accepted from it; `now_ms` is our clock.
pub fn authenticate(
    body: &[u8],
    signature: Option<&str>,
    secret_of: impl Fn(&str) -> Option<Secret>,
    last_sequence: impl Fn(&str) -> Option<u64>,
    now_ms: u64,
) -> Result<Report, ReportError> {
    let report: Report = serde_json::from_slice(body).map_err(|_| ReportError::Malformed)?;
    let secret = secret_of(&report.vantage).ok_or(ReportError::UnknownVantage)?;
    if !signature.is_some_and(|s| verify(&secret, body, s)) {
        return Err(ReportError::BadSignature);
    }
    let skew = report.sent_at_ms.abs_diff(now_ms);
    if skew > MAX_CLOCK_SKEW.as_millis() as u64 {
        return Err(ReportError::Stale);
    }
    if last_sequence(&report.vantage).is_some_and(|last| report.sequence <= last) {
        return Err(ReportError::Replay);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            vantage: "fra-1".into(),
            sequence: 10,
            sent_at_ms: 1_000_000,
            verdicts: vec![Verdict {
                endpoint: "web/a".into(),
                state: HealthState::Down,
                reason: "connect refused".into(),
            }],
        }
    }

    #[test]
    fn signed_reports_authenticate_and_tampering_is_caught() {
        let secret = Secret::new("0123456789abcdef0123");
        let body = serde_json::to_vec(&report()).unwrap();
        let signature = sign(&secret, &body);
        let secret_of = |v: &str| (v == "fra-1").then(|| secret.clone());
        let ok = authenticate(&body, Some(&signature), secret_of, |_| Some(9), 1_000_500);
        assert_eq!(ok.unwrap(), report());
        let tampered = String::from_utf8(body.clone())
            .unwrap()
            .replace("\"down\"", "\"up\"");
        assert_ne!(tampered.as_bytes(), body.as_slice());
        assert_eq!(
            authenticate(
                tampered.as_bytes(),
                Some(&signature),
                secret_of,
                |_| None,
                1_000_500
            )
            .unwrap_err(),
            ReportError::BadSignature
        );
        assert_eq!(
            authenticate(&body, None, secret_of, |_| None, 1_000_500).unwrap_err(),
            ReportError::BadSignature
        );
        let wrong = sign(&Secret::new("another-secret-of-16b"), &body);
        assert_eq!(
            authenticate(&body, Some(&wrong), secret_of, |_| None, 1_000_500).unwrap_err(),
            ReportError::BadSignature
        );
        assert_eq!(
            authenticate(&body, Some(&signature), secret_of, |_| Some(10), 1_000_500).unwrap_err(),
            ReportError::Replay
        );
        assert_eq!(
            authenticate(
                &body,
                Some(&signature),
                secret_of,
                |_| None,
                1_000_000 + 301_000
            )
            .unwrap_err(),
            ReportError::Stale
        );
        assert_eq!(
            authenticate(b"{}", Some(&signature), secret_of, |_| None, 0).unwrap_err(),
            ReportError::Malformed
        );
    }
}
