//! Types of the admin HTTP API (JSON), shared by the server and its clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::health::HealthSource;
use crate::health::overrides::{Action, Entry, Target};
use crate::model::HealthState;

/// `GET /status`: what is answered, and why.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Status {
    /// Snapshot generation (increases with every change).
    pub generation: u64,
    /// This process's vantage point.
    pub vantage: Option<String>,
    /// Whether start-up (zones, cold start) is complete.
    pub ready: bool,
    /// Every endpoint.
    pub endpoints: Vec<EndpointStatus>,
    /// Every pool.
    pub pools: Vec<PoolStatus>,
    /// Every dynamic record.
    pub records: Vec<RecordStatus>,
    /// Vantage points heard from.
    pub vantages: Vec<VantageStatus>,
    /// Whether this server hears a quorum (absent for probe agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationStatus>,
    /// The last configuration reload, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<ReloadStatus>,
    /// Operator overrides in force.
    #[serde(default)]
    pub overrides: Vec<Entry>,
    /// The state file: where, when it was last written, and why not if the last save
    /// failed (overrides are then refused and `/readyz` fails).
    #[serde(default)]
    pub state_file: StateFileStatus,
    /// What needs attention, most severe first (empty: nothing): what the status
    /// page's header and `ctl status` say instead of a plain "up".
    #[serde(default)]
    pub attention: Vec<Notice>,
    /// Unix milliseconds since which the endpoints' change and down counters count
    /// (the first start with this state file; this process's start without one).
    #[serde(default)]
    pub counted_since_ms: u64,
    /// `[health] override_warn_after` in milliseconds: an override in force longer
    /// than this is called out (0: never).
    #[serde(default)]
    pub override_warn_after_ms: u64,
    /// Latency steering: every smoothed round-trip time this server holds, by
    /// vantage point and endpoint (empty: none measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rtts: Vec<EndpointRtt>,
}

/// One vantage point's smoothed round-trip time to one endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct EndpointRtt {
    /// The vantage point that measured it.
    pub vantage: String,
    /// Its region (None: the vantage point names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `pool/endpoint`.
    pub endpoint: String,
    /// Milliseconds (EWMA over `[health] rtt_window`).
    pub rtt_ms: f64,
}

/// Something that needs attention.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Notice {
    /// `critical`, `warning` or `info`.
    pub level: NoticeLevel,
    /// What: `not_ready`, `state_file`, `isolated`, `impaired`, `fail_open`,
    /// `all_down`, `conflict`, `failover`, `override_old`, `override`, `reload`.
    pub kind: String,
    /// In words, with the names concerned.
    pub text: String,
}

/// How much a [`Notice`] matters.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum NoticeLevel {
    /// Nothing is wrong, but something is not as configured (an override in force).
    Info,
    /// Answers are not what the configuration intends (a failover, an old override).
    Warning,
    /// Answers may be wrong or stuck (fail-open, isolated, not ready).
    Critical,
}

impl NoticeLevel {
    /// The word status shows.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// The state file, as status shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct StateFileStatus {
    /// Its path (None: no state file; nothing survives a restart).
    pub path: Option<String>,
    /// Unix milliseconds of the last successful save.
    pub saved_at_ms: Option<u64>,
    /// Why the last save failed, if it did.
    pub error: Option<String>,
}

/// Whether a server hears enough vantage points to decide.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct IsolationStatus {
    /// Fewer usable vantage points than `needed` are heard.
    pub isolated: bool,
    /// `[health] isolation`: `hold` (every state kept) or `local` (the vantage points
    /// still heard decide).
    pub mode: String,
    /// Votes needed either way.
    pub needed: u32,
    /// Configured vantage points heard from recently (this server included).
    pub fresh: Vec<String>,
    /// Configured vantage points not heard from, or ignored as partitioned.
    pub missing: Vec<String>,
}

/// The outcome of the last reload.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ReloadStatus {
    /// Whether the new configuration was taken.
    pub ok: bool,
    /// Unix milliseconds of the attempt.
    pub at_ms: u64,
    /// Errors, when refused.
    pub errors: Vec<String>,
    /// Keys that changed but take effect only after a restart.
    pub restart_needed: Vec<String>,
}

/// One endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct EndpointStatus {
    /// `pool/name`.
    pub endpoint: String,
    /// Address or host name.
    pub target: String,
    /// Decided state.
    pub state: HealthState,
    /// Why it has this state.
    pub source: HealthSource,
    /// Votes of vantage points (`name → up/down`).
    pub votes: BTreeMap<String, String>,
    /// This vantage point's last probe, if it probes the endpoint.
    pub local: Option<ProbeStatus>,
    /// Flap damping of the decided state, once the endpoint has had an outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damping: Option<DampingStatus>,
    /// Drained by an operator at run time (left out of answers while others can be
    /// answered).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drained: bool,
    /// Up but degraded (slow or flaky, decided by quorum): answered with its weight
    /// scaled by the check's `degraded_weight`, this factor (absent: not degraded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<f64>,
    /// Forced to `state` by an operator's override (`source` is then `forced`; a
    /// force from the config file is `source: forced` without this).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced_by_operator: bool,
    /// Its decided state's history (absent before the first decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryStatus>,
}

/// One endpoint's decided-state history (what the probes and votes decided,
/// operator forces aside), counted since [`Status::counted_since_ms`] and kept
/// across restarts in the state file.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct HistoryStatus {
    /// Unix milliseconds of the last change of the decided state (of the first
    /// decision while it never changed).
    pub changed_at_ms: u64,
    /// Changes either way (flaps).
    pub changes: u64,
    /// Changes to down.
    pub downs: u64,
    /// Time spent down, in milliseconds, up to the last change (add the time since
    /// `changed_at_ms` while down).
    pub down_ms: u64,
}

/// Flap damping of one endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DampingStatus {
    /// Penalty now (decays by half every half-life).
    pub penalty: f64,
    /// Whether the way back up is withheld.
    pub suppressed: bool,
    /// Unix milliseconds when the suppression ends if no outage comes first.
    pub suppressed_until_ms: Option<u64>,
}

/// The last probe from this vantage point.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ProbeStatus {
    /// This vantage's verdict (after rise/fall).
    pub verdict: HealthState,
    /// Whether the last probe passed.
    pub ok: bool,
    /// Its reason.
    pub reason: String,
    /// Its latency in milliseconds.
    pub latency_ms: f64,
    /// The reason of the last probe that abstained (a local fault of this prober:
    /// it did not vote), if one did within the last staleness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstained: Option<String>,
    /// How long ago that abstention was, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstained_age_ms: Option<u64>,
    /// Whether the latest probe abstained (the verdict above is then ageing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abstaining: bool,
    /// This vantage's degraded verdict: why its last probe judged the endpoint
    /// degraded ("slow: 240 ms > 100 ms", "success 7/10 < 0.8"), or "recovering"
    /// while the verdict holds on fine probes (absent: not degraded here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// One pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct PoolStatus {
    /// Pool name.
    pub pool: String,
    /// Usable endpoints (up, not drained).
    pub usable: u32,
    /// Needed to be up.
    pub needed: u32,
    /// Whether the pool is up.
    pub up: bool,
    /// Its traffic dial in percent, when an operator set one (`ctl dial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial: Option<u8>,
}

/// One dynamic record.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RecordStatus {
    /// Owner name.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// One entry per distinct pool list (one, or one per geo region).
    pub answers: Vec<AnswerStatus>,
}

/// The answers of a record for one pool list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct AnswerStatus {
    /// Regions this pool list serves (`default` included), empty for non-geo records.
    pub regions: Vec<String>,
    /// Pools considered, in order.
    pub pools: Vec<String>,
    /// Which rule applied: `healthy`, `failover` (a later pool is answered, or an
    /// operator's), `degraded`, `fail-open`, `fallback`, `nodata`, and for `primary`
    /// records `primary` or `conflict` (two endpoints claim primary).
    pub outcome: String,
    /// Why `failover` or `degraded`: `health` or `operator` (a manual failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<crate::policy::FailoverCause>,
    /// The pool an operator failed the record over to, while that override is in
    /// force (whether or not that pool is answered now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// The pool answered (failover), if one.
    pub pool: Option<String>,
    /// Pools their failover gate holds (traffic does not move to them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by_gate: Vec<String>,
    /// TTL answered.
    pub ttl: u32,
    /// Endpoints that may be answered (`pool/name`).
    pub candidates: Vec<String>,
    /// Spill-over and trickle shares in words (`spill: a failed; b 50% (load
    /// 40/40), c 50% (load 40/40)`), for records with `spill` or `trickle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<String>,
    /// Spill-over: every pool is at its limit (the rest goes by the plain policy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overloaded: bool,
}

/// A vantage point.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct VantageStatus {
    /// Name.
    pub name: String,
    /// Whether its last report is fresh.
    pub fresh: bool,
    /// Whether its votes are ignored as partitioned.
    pub partitioned: bool,
    /// Milliseconds since its last report.
    pub last_report_age_ms: Option<u64>,
    /// Its clock minus ours when it sent its last report, in milliseconds (shown, never
    /// used to accept or refuse).
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// This process only: its probes abstained on an endpoint (a local fault) within
    /// the last staleness, so its verdicts may be going stale.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub impaired: bool,
}

/// `GET /v1/health`: decided state per endpoint (used by `route53 sync --health-url`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct HealthView {
    /// Snapshot generation.
    pub generation: u64,
    /// Endpoints.
    pub endpoints: Vec<EndpointState>,
    /// Records an operator failed over, and to which pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failovers: Vec<RecordFailover>,
    /// `primary` records' last agreed primary (what their answers follow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primaries: Vec<RecordPrimary>,
    /// Pools an operator dialled (`ctl dial`), and to what percent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dials: Vec<PoolDial>,
}

/// A traffic dial in force, as `/v1/health` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct PoolDial {
    /// The pool.
    pub pool: String,
    /// The percent of what it would get that it takes (0 ..= 100).
    pub percent: u8,
}

/// A `primary` record's last agreed primary, as `/v1/health` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RecordPrimary {
    /// Owner name.
    pub record: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The endpoint (`pool/name`).
    pub endpoint: String,
}

/// A manual failover in force, as `/v1/health` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RecordFailover {
    /// Owner name.
    pub record: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The pool answered first.
    pub pool: String,
}

/// One endpoint's decided state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct EndpointState {
    /// `pool/name`.
    pub endpoint: String,
    /// Up or down.
    pub state: HealthState,
    /// Drained by an operator (left out of answers while others can be answered).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drained: bool,
    /// Forced to this state by an operator or the config (`state` is then this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<HealthState>,
}

/// `GET /v1/state`: a server's decided states, signed, for peers starting cold.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PeerState {
    /// The answering server's vantage point (its secret signs the body).
    pub vantage: String,
    /// The asker's nonce (`?nonce=`), echoed so an old answer cannot be replayed.
    #[serde(default)]
    pub nonce: String,
    /// Its clock, Unix milliseconds (informational).
    pub sent_at_ms: u64,
    /// Decided state per endpoint.
    pub endpoints: BTreeMap<String, HealthState>,
    /// Every override and release it knows (checked by the asker like a sync's).
    #[serde(default)]
    pub overrides: Vec<Entry>,
}

/// `GET /v1/identity`: which vantage point answers at this URL (signed with its peer
/// key), so that servers learn which vantage points are servers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Identity {
    /// The answering server's vantage point.
    pub vantage: String,
    /// The asker's nonce, echoed.
    pub nonce: String,
}

/// `PUT /v1/endpoints/{pool}/{name}/force` body (the older form of an override).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForceRequest {
    /// `up`, `down`, or null to release the override; required.
    #[serde(deserialize_with = "Option::deserialize")]
    pub state: Option<HealthState>,
    /// Why (optional here).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/overrides` body: make an override on this server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverrideRequest {
    /// What it applies to: `{"endpoint": "pool/name"}`, `{"pool": "name"}` or
    /// `{"record": {"name": "www.example.com.", "type": "A"}}`; a name may be a
    /// pattern (`{"endpoint": "web-eu/*"}`), and `{"region": "eu"}` names every pool
    /// of a region (a drain) or their endpoints (a force).
    pub target: Target,
    /// `"drain"`, `"force_up"`, `"force_down"`, `{"failover": "pool"}` or (a pool)
    /// `{"dial": PERCENT}`, a whole percent from 0 to 100.
    pub action: Action,
    /// Why (required, non-empty).
    pub reason: String,
    /// Who, besides the token's name (e.g. the user running `ctl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// How long it lasts (`30m`, `2h`; absent: until released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// Make it even where a safety check refuses it (no healthy pool left, a change
    /// fail-open ignores, a `[[safety]]` rule); default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty: bool,
}

/// The answer to a change that made several entries: a pattern or region (one per
/// target it matched), or an untyped failover or release that also ended the typed
/// overrides of its name. A change of one target that made one entry is answered
/// with that [`Entry`] alone.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeOutcome {
    /// Every entry made, in order.
    pub entries: Vec<Entry>,
}

/// `POST /v1/overrides/release` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseRequest {
    /// What to release.
    pub target: Target,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who, besides the token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// `POST /v1/overrides/sync` body and answer: a server's every override and release,
/// signed by its vantage secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct OverrideSync {
    /// The sending server's vantage name.
    pub vantage: String,
    /// Its clock at sending (Unix ms): a copy far from now is refused.
    pub sent_at_ms: u64,
    /// Its entries.
    pub entries: Vec<Entry>,
}

/// `GET /v1/overrides`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct OverridesView {
    /// This server's vantage name.
    pub server: String,
    /// Overrides in force.
    pub active: Vec<Entry>,
    /// Releases and expired overrides still remembered.
    pub ended: Vec<Entry>,
}

/// `GET /v1/stats`: this server's DNS counters since it started (`ctl stats`), the
/// same counts `/metrics` gives (`failoverd_dns_*`, `failoverd_transfers_*`,
/// `failoverd_notify_*`), grouped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stats {
    /// Responses by rcode label (`noerror`, `nxdomain`, …, `other`).
    pub responses: BTreeMap<String, u64>,
    /// Per zone (absolute name; `(other)` past the first 63 zones), responses by
    /// rcode label.
    pub zones: BTreeMap<String, BTreeMap<String, u64>>,
    /// Datagrams dropped without a response.
    pub dropped: u64,
    /// UDP responses truncated (TC).
    pub truncated: u64,
    /// Internal errors on the answer path (should stay 0).
    pub internal_errors: u64,
    /// Response rate limiting: `limited` (slipped plus dropped), `slipped`,
    /// `dropped`.
    pub rrl: BTreeMap<String, u64>,
    /// TCP: `accepted`, `rejected` (a connection limit), `timeouts`, `open` now.
    pub tcp: BTreeMap<String, u64>,
    /// Zone transfers served by kind (`axfr`, `ixfr`, …); empty without
    /// `[transfer]`.
    pub transfers: BTreeMap<String, u64>,
    /// Transfer requests refused, by reason.
    pub transfers_refused: BTreeMap<String, u64>,
    /// NOTIFY messages by outcome (`sent`, `acked`, `failed`).
    pub notify: BTreeMap<String, u64>,
}

impl Stats {
    /// The counts in a server's Prometheus text (what `/metrics` says).
    pub(crate) fn from_metrics(text: &str) -> Self {
        let mut stats = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let value = value.max(0.0) as u64;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let label = |key: &str| -> String {
                labels
                    .split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| {
                        v.trim_matches('"')
                            .replace("\\\"", "\"")
                            .replace("\\\\", "\\")
                    })
                    .unwrap_or_default()
            };
            use crate::telemetry::names as m;
            match name {
                m::DNS_RESPONSES_TOTAL => {
                    stats.responses.insert(label("rcode"), value);
                }
                m::DNS_ZONE_RESPONSES_TOTAL => {
                    stats
                        .zones
                        .entry(label("zone"))
                        .or_default()
                        .insert(label("rcode"), value);
                }
                m::DNS_DROPPED_TOTAL => stats.dropped = value,
                m::DNS_TRUNCATED_TOTAL => stats.truncated = value,
                m::DNS_INTERNAL_ERRORS_TOTAL => stats.internal_errors = value,
                m::DNS_RRL_LIMITED_TOTAL => {
                    stats.rrl.insert("limited".into(), value);
                }
                m::DNS_RRL_SLIPPED_TOTAL => {
                    stats.rrl.insert("slipped".into(), value);
                }
                m::DNS_RRL_DROPPED_TOTAL => {
                    stats.rrl.insert("dropped".into(), value);
                }
                m::DNS_TCP_CONNECTIONS_TOTAL => {
                    stats.tcp.insert("accepted".into(), value);
                }
                m::DNS_TCP_REJECTED_TOTAL => {
                    stats.tcp.insert("rejected".into(), value);
                }
                m::DNS_TCP_TIMEOUTS_TOTAL => {
                    stats.tcp.insert("timeouts".into(), value);
                }
                m::DNS_TCP_OPEN => {
                    stats.tcp.insert("open".into(), value);
                }
                m::TRANSFERS_TOTAL => {
                    stats.transfers.insert(label("kind"), value);
                }
                m::TRANSFERS_REFUSED_TOTAL => {
                    stats.transfers_refused.insert(label("reason"), value);
                }
                m::NOTIFY_TOTAL => {
                    stats.notify.insert(label("outcome"), value);
                }
                _ => {}
            }
        }
        stats
    }
}
