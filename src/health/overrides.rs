//! Operator overrides as replicated cluster state (pure: time is passed in).
//!
//! An override drains an endpoint or a whole pool (weight 0 at run time), forces an
//! endpoint up or down, or fails a record over to a named pool. Each carries who, why,
//! when and an optional expiry, and a **stamp**: a hybrid logical clock reading (wall
//! milliseconds, a counter) and the server that made it. Sets merge by last writer
//! wins per target; a release is an entry without an action (a tombstone), so it wins
//! over the override it releases wherever it arrives. Merging is commutative,
//! associative and idempotent: servers that have seen the same entries hold the same
//! set, in whatever order the entries came.
//!
//! ```text
//! An operator's change may name a **pattern** (`web-eu/*`, `web-*`, `*.example.com`:
//! `*` any run of characters but `/`, `?` one) or a **region**: [`expand`] turns it
//! into the concrete targets it matches, all of which are changed or none, in one
//! entry each. Entries only ever hold concrete targets.
//!
//! **Typed and untyped record targets.** An untyped record target (the name, every
//! type) covers the typed ones: an untyped failover or release also ends the typed
//! overrides of the name in force; a typed failover refines one type on top of an
//! untyped one; a typed release ends only its type, and when only an untyped
//! override is in force it is refused (nothing to end) with that override named.
//! A release that ends nothing is refused ([`OverrideError::NothingInForce`]), naming
//! what is in force on related targets.
//!
//! ```text
//!  ctl ──▶ every server ──▶ OverrideSet::set ──┐
//!  peer sync (signed, both ways) ──▶ merge ────┼─▶ effects(config, now) ─▶ answers
//!  state file ──▶ merge ───────────────────────┘
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::model::{DynamicType, HealthState, PoolIndex};

/// How long a release (or an expired override) is remembered, so that an older copy
/// of the override it ended cannot come back from a peer that was away.
pub(crate) const TOMBSTONE_KEEP_MS: u64 = 7 * 24 * 3600 * 1000;

/// Most overrides (releases included) a set holds; a request beyond it is refused.
pub(crate) const MAX_OVERRIDES: usize = 10_000;

/// Longest `by` (characters).
pub(crate) const MAX_BY: usize = 256;

/// Longest `reason` (characters).
pub(crate) const MAX_REASON: usize = 1024;

/// How far ahead of this server's clock a peer's stamp (or sending time) may be. A
/// stamp further ahead would pin every later stamp behind it, so it is refused.
pub(crate) const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// What an override applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Target {
    /// One endpoint, `pool/name`.
    Endpoint(String),
    /// Every endpoint of a pool.
    Pool(String),
    /// The records of a name (absolute, lower case, trailing dot), one type or all.
    Record {
        /// Owner name.
        name: String,
        /// Record type (None: every dynamic record of the name).
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        record_type: Option<DynamicType>,
    },
    /// In a request only (expanded, never held): every pool of a region (a drain or
    /// release) or every endpoint of those pools (a force; a release ends those too).
    Region(String),
}

impl Target {
    /// The record target of `name` (made absolute and lower case).
    pub(crate) fn record(name: &str, record_type: Option<DynamicType>) -> Self {
        let mut name = name.trim().to_ascii_lowercase();
        if !name.ends_with('.') {
            name.push('.');
        }
        Self::Record { name, record_type }
    }

    /// Whether this is a pattern or a region (what [`expand`] turns into targets),
    /// not one target.
    pub(crate) fn is_selector(&self) -> bool {
        match self {
            Self::Endpoint(text) | Self::Pool(text) | Self::Record { name: text, .. } => {
                is_pattern(text)
            }
            Self::Region(_) => true,
        }
    }
}

/// Whether `text` holds a glob character (`*`, `?`).
fn is_pattern(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// Whether `text` matches the glob `pattern`: `*` any run of characters but `/`, `?`
/// one character but `/`, the rest itself (case-insensitive).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (
        pattern.to_ascii_lowercase().chars().collect(),
        text.to_ascii_lowercase().chars().collect(),
    );
    // Iterative matching with one backtrack point (the last `*`).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some('?') if text[t] != '/' => {
                p += 1;
                t += 1;
            }
            Some(&c) if c != '?' && c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // The `*` takes one more character (never a `/`).
                Some((sp, st)) if text[st] != '/' => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                _ => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint(label) => write!(f, "endpoint {label}"),
            Self::Pool(pool) => write!(f, "pool {pool}"),
            Self::Record {
                name,
                record_type: Some(t),
            } => write!(f, "record {name} {t}"),
            Self::Record {
                name,
                record_type: None,
            } => write!(f, "record {name}"),
            Self::Region(region) => write!(f, "region {region}"),
        }
    }
}

/// What an override does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Action {
    /// Weight 0: left out of answers while anything else can be answered (an
    /// endpoint or every endpoint of a pool).
    Drain,
    /// Up, whatever the probes say (an endpoint).
    ForceUp,
    /// Down, whatever the probes say, and never answered, not even in fail-open (an
    /// endpoint).
    ForceDown,
    /// Answer from this pool first (a record; the pool must be one of its pools).
    Failover(String),
    /// A traffic dial (a pool): the pool takes this percent of the answers it would
    /// otherwise get; the rest goes to the record's other pools (by spill-over where
    /// the record has `spill`, else by its plain policy). 0 is a drain that keeps
    /// the pool's health checks and its standing in status.
    Dial(Percent),
}

/// A whole percent, 0 ..= 100 (a traffic dial). Deserializing anything else fails
/// with a message naming `action.dial` and what it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Percent(u8);

impl Percent {
    /// All of it.
    pub(crate) const FULL: Self = Self(100);

    /// `value` when it is 0 ..= 100.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(value: i64) -> Result<Self, String> {
        u8::try_from(value)
            .ok()
            .filter(|&v| v <= 100)
            .map(Self)
            .ok_or_else(|| Self::refusal(&value.to_string()))
    }

    /// The whole percent.
    pub(crate) fn get(self) -> u8 {
        self.0
    }

    /// As a fraction, 0.0 ..= 1.0.
    pub(crate) fn ratio(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// Why `text` is not a dial setting.
    fn refusal(text: &str) -> String {
        format!(
            "action.dial: {text} is not a percent; give a whole number from 0 to 100 (0 takes the pool out of the answers, 100 gives it all it would get)"
        )
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl std::str::FromStr for Percent {
    type Err = String;

    /// `50` or `50%`.
    fn from_str(text: &str) -> Result<Self, String> {
        let digits = text.trim().trim_end_matches('%');
        match digits.parse::<i64>() {
            Ok(value) => Self::new(value).map_err(|_| Self::refusal(text)),
            Err(_) => Err(Self::refusal(&format!("{text:?}"))),
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole percent from 0 to 100")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Percent, E> {
                Percent::new(i64::try_from(v).unwrap_or(i64::MAX)).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Percent, E> {
                Percent::new(v).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Percent, E> {
                if v.fract() == 0.0 && (0.0..=100.0).contains(&v) {
                    Ok(Percent(v as u8))
                } else {
                    Err(E::custom(Percent::refusal(&v.to_string())))
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Percent, E> {
                Err(E::custom(Percent::refusal(&format!("{v:?}"))))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Percent, E> {
                Err(E::custom(Percent::refusal(&v.to_string())))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Drain => f.write_str("drain"),
            Self::ForceUp => f.write_str("force up"),
            Self::ForceDown => f.write_str("force down"),
            Self::Failover(pool) => write!(f, "failover to {pool}"),
            Self::Dial(percent) => write!(f, "dial {percent}"),
        }
    }
}

/// A hybrid logical clock reading and its origin: the version of an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Stamp {
    /// Wall clock (Unix ms), never behind any stamp this clock has seen.
    pub ms: u64,
    /// Orders stamps within one millisecond.
    pub counter: u32,
    /// The server that made the entry (ties between servers break by name).
    pub origin: String,
}

/// One override or release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Entry {
    /// What it applies to.
    pub target: Target,
    /// What it does (None: a release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Who made it (token name, and the user `ctl` ran as).
    pub by: String,
    /// Why.
    pub reason: String,
    /// When it was made (Unix ms).
    pub at_ms: u64,
    /// When it ends by itself (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// Version (last writer wins).
    pub stamp: Stamp,
}

impl Entry {
    /// Its version: the stamp, then (should two servers ever make the same stamp) the
    /// content, so that every server picks the same winner.
    #[allow(clippy::type_complexity)]
    fn version(&self) -> (&Stamp, &Option<Action>, Option<u64>, u64, &str, &str) {
        (
            &self.stamp,
            &self.action,
            self.expires_at_ms,
            self.at_ms,
            &self.by,
            &self.reason,
        )
    }

    /// Whether it is in force at `now_ms` (not a release, not expired).
    pub(crate) fn active(&self, now_ms: u64) -> bool {
        self.action.is_some() && self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

/// A change an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// What to change.
    pub target: Target,
    /// The override (None: release).
    pub action: Option<Action>,
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
    /// How long it lasts (ms; None: until released).
    pub expires_in_ms: Option<u64>,
    /// Make it even where a safety check refuses it (it would leave a record with no
    /// pool at `min_healthy`, change no answer for fail-open, or break a `[[safety]]`
    /// rule); see [`crate::policy::safety`].
    pub allow_empty: bool,
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum OverrideError {
    /// The target is not in the config.
    #[error("no {0} in the configuration")]
    UnknownTarget(Target),
    /// The action does not apply to the target.
    #[error("{action} does not apply to a {kind} (use {allowed})")]
    Mismatch {
        /// The action asked for.
        action: Action,
        /// What the target is.
        kind: &'static str,
        /// What applies to it.
        allowed: &'static str,
    },
    /// A failover to a pool that the record does not list.
    #[error("{target} does not answer from pool {pool:?}; its pools: {pools}")]
    NotAPoolOfTheRecord {
        /// The record.
        target: Target,
        /// The pool asked for.
        pool: String,
        /// Its pools.
        pools: String,
    },
    /// The action fits the target but would change no answer under the
    /// configuration (a manual failover of a `primary` record, a failover to the pool
    /// already answered first, a drain of an endpoint no record answers, …).
    #[error("{action} of {target} changes nothing: {reason}")]
    NoEffect {
        /// The action asked for.
        action: Action,
        /// Its target.
        target: Target,
        /// Why it changes nothing, and what to do instead.
        reason: String,
    },
    /// A pattern or region that matches no target.
    #[error("{pattern} matches nothing in the configuration ({known})")]
    NoMatch {
        /// The pattern or region.
        pattern: Target,
        /// What there is (some names of that kind).
        known: String,
    },
    /// A release of a target with nothing in force (it would end nothing).
    #[error("{}", nothing_in_force(target, in_force))]
    NothingInForce {
        /// What the release named.
        target: Target,
        /// The overrides in force on related targets, described (with how to end
        /// each).
        in_force: Vec<String>,
    },
    /// One of the targets a pattern or region expands to is refused, so none is
    /// changed.
    #[error("{pattern} matches {count} targets; none was changed: {target}: {error}")]
    Expanded {
        /// The pattern or region.
        pattern: Target,
        /// How many targets it matches.
        count: usize,
        /// The target refused.
        target: Target,
        /// Why.
        error: Box<Self>,
    },
    /// A safety check refuses the change (`allow_empty` makes it anyway).
    #[error("refused: {0}; nothing changed (allow_empty, ctl --allow-empty, makes it anyway)")]
    Unsafe(String),
    /// Too many overrides.
    #[error("too many overrides (at most {MAX_OVERRIDES}); release some first")]
    Full,
    /// `by` or `reason` is too long or holds control characters.
    #[error("{field}: {problem}")]
    Text {
        /// `by` or `reason`.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The change could not be saved to the state file, so it was not made.
    #[error("not made: {0}; nothing changed")]
    NotSaved(String),
    /// The server is stopping.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl OverrideError {
    /// The error behind an [`OverrideError::Expanded`] (else itself): what decides
    /// the HTTP status.
    pub(crate) fn root(&self) -> &Self {
        match self {
            Self::Expanded { error, .. } => error.root(),
            other => other,
        }
    }

    /// A short label of the (root) reason, for clients that act on it (the admin
    /// API's `failoverd-refusal` header).
    pub(crate) fn label(&self) -> &'static str {
        match self.root() {
            Self::UnknownTarget(_) => "unknown_target",
            Self::Mismatch { .. } => "mismatch",
            Self::NotAPoolOfTheRecord { .. } => "not_a_pool_of_the_record",
            Self::NoEffect { .. } => "no_effect",
            Self::NoMatch { .. } => "no_match",
            Self::NothingInForce { .. } => "nothing_in_force",
            Self::Unsafe(_) => "unsafe",
            Self::Full => "full",
            Self::Text { .. } => "text",
            Self::NotSaved(_) => "not_saved",
            Self::ShuttingDown => "shutting_down",
            Self::Expanded { .. } => "expanded",
        }
    }
}

/// "record api. A has nothing in force; in force: failover to web-us on record api.
/// (untyped: release it without --type)".
fn nothing_in_force(target: &Target, in_force: &[String]) -> String {
    if in_force.is_empty() {
        format!("{target} has nothing in force, nor has any related target; nothing to release")
    } else {
        format!(
            "{target} has nothing in force; in force: {}",
            in_force.join("; ")
        )
    }
}

/// Why a peer's entry is not merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum EntryRefusal {
    /// Stamped (or made) further ahead of this server's clock than [`MAX_SKEW_MS`].
    #[error("stamped {ahead_ms} ms ahead of this server's clock (at most {MAX_SKEW_MS})")]
    Future {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// The target is not in this server's configuration, or the action does not
    /// apply to it.
    #[error("{0}")]
    Target(OverrideError),
    /// `by`, `reason` or the origin is not sane text.
    #[error("{0}")]
    Text(String),
    /// Expires before it was made.
    #[error("expires before it was made")]
    Expiry,
}

impl EntryRefusal {
    /// Metric label.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Future { .. } => "future_stamp",
            Self::Target(_) => "unknown_target",
            Self::Text(_) => "bad_text",
            Self::Expiry => "bad_expiry",
        }
    }

    /// Every label, for metrics.
    pub(crate) const LABELS: [&'static str; 4] =
        ["future_stamp", "unknown_target", "bad_text", "bad_expiry"];
}

/// Checks the free text of an override: bounded, no control characters (which would
/// forge log lines or terminal output).
pub(crate) fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), OverrideError> {
    let problem = if text.chars().count() > max {
        Some(format!("longer than {max} characters"))
    } else if text.chars().any(char::is_control) {
        Some("control characters (newline, escape, NUL …) are not allowed".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(OverrideError::Text { field, problem }),
        None => Ok(()),
    }
}

/// Checks an entry a peer (or the state file) offers, as an operator's request would
/// be checked: its target under `config` (None: not checked, for the state file,
/// which may hold targets of an earlier config), its text, its times against
/// `now_ms`.
pub(crate) fn check_entry(
    entry: &Entry,
    config: Option<&Config>,
    now_ms: u64,
) -> Result<(), EntryRefusal> {
    let horizon = now_ms.saturating_add(MAX_SKEW_MS);
    let latest = entry.stamp.ms.max(entry.at_ms);
    if latest > horizon {
        return Err(EntryRefusal::Future {
            ahead_ms: latest - now_ms,
        });
    }
    check_text("by", &entry.by, MAX_BY).map_err(|e| EntryRefusal::Text(e.to_string()))?;
    check_text("reason", &entry.reason, MAX_REASON)
        .map_err(|e| EntryRefusal::Text(e.to_string()))?;
    let origin = &entry.stamp.origin;
    if origin.is_empty()
        || origin.len() > 64
        || !origin
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(EntryRefusal::Text(format!(
            "origin {origin:?} is not a vantage point name"
        )));
    }
    if entry.expires_at_ms.is_some_and(|at| at < entry.at_ms) {
        return Err(EntryRefusal::Expiry);
    }
    let Some(config) = config else {
        return Ok(());
    };
    // The target and the kind of action, not whether it changes anything here: a
    // peer made it under its configuration, and refusing it during a configuration
    // rollout would split the cluster's override sets.
    match &entry.action {
        Some(action) => {
            check_target(config, &entry.target, action).map_err(EntryRefusal::Target)?
        }
        None => known(config, &entry.target).map_err(EntryRefusal::Target)?,
    }
    Ok(())
}

/// What the overrides in force do to the answers, by config index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Effects {
    /// Forced state per endpoint.
    pub forced: Vec<Option<HealthState>>,
    /// Drained per endpoint.
    pub drained: Vec<bool>,
    /// Manual failover per record: the pool answered first.
    pub pins: Vec<Option<PoolIndex>>,
    /// Traffic dial per pool (None: none, all it would get).
    pub dials: Vec<Option<Percent>>,
}

/// Every override and release a server knows, with its clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OverrideSet {
    entries: BTreeMap<Target, Entry>,
    /// The newest stamp made or seen (the hybrid logical clock).
    clock: (u64, u32),
}

impl OverrideSet {
    /// A set holding `entries` (merged: the newest per target wins).
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut set = Self::default();
        set.merge(entries);
        set
    }

    /// Every entry, releases included, in target order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entry of a target.
    #[cfg(test)]
    pub(crate) fn get(&self, target: &Target) -> Option<&Entry> {
        self.entries.get(target)
    }

    /// The overrides in force at `now_ms`.
    pub(crate) fn active(&self, now_ms: u64) -> impl Iterator<Item = &Entry> {
        self.entries.values().filter(move |e| e.active(now_ms))
    }

    /// Checks `change` against `config` and makes it, stamped by `origin` at `now_ms`:
    /// a pattern or region is expanded ([`expand`]) and every target it matches is
    /// changed, or none. Returns the new entries: the overrides made (or releases),
    /// then the releases of typed overrides an untyped change ended.
    pub(crate) fn apply(
        &mut self,
        change: Change,
        config: &Config,
        origin: &str,
        now_ms: u64,
    ) -> Result<Vec<Entry>, OverrideError> {
        check_text("by", &change.by, MAX_BY)?;
        check_text("reason", &change.reason, MAX_REASON)?;
        let targets = expand(config, &change.target, change.action.as_ref())?;
        let expanded = change.target.is_selector();
        let count = targets.len();
        let wrap = |target: &Target, error: OverrideError| {
            if expanded {
                OverrideError::Expanded {
                    pattern: change.target.clone(),
                    count,
                    target: target.clone(),
                    error: Box::new(error),
                }
            } else {
                error
            }
        };
        // What is set (an override, or None: a release) on which targets.
        let mut writes: Vec<(Target, Option<Action>)> = Vec::new();
        match &change.action {
            Some(action) => {
                for target in &targets {
                    let in_force = self.in_force(target, now_ms);
                    let typed = self.typed_in_force(target, now_ms);
                    // A different override in force on the same target (or typed
                    // ones an untyped failover ends) is replaced: that changes
                    // something by itself.
                    let replaces =
                        in_force.is_some_and(|current| current != action) || !typed.is_empty();
                    check(config, target, action, replaces).map_err(|e| wrap(target, e))?;
                    writes.push((target.clone(), Some(action.clone())));
                    writes.extend(typed.into_iter().map(|t| (t, None)));
                }
            }
            None => {
                for target in &targets {
                    if !expanded {
                        known(config, target)?;
                    }
                    if self.in_force(target, now_ms).is_some() {
                        writes.push((target.clone(), None));
                    }
                    writes.extend(
                        self.typed_in_force(target, now_ms)
                            .into_iter()
                            .map(|t| (t, None)),
                    );
                }
                if writes.is_empty() {
                    return Err(OverrideError::NothingInForce {
                        target: change.target.clone(),
                        in_force: self.related(&targets, now_ms),
                    });
                }
            }
        }
        let new_targets = writes
            .iter()
            .filter(|(t, _)| !self.entries.contains_key(t))
            .count();
        if self.entries.len() + new_targets > MAX_OVERRIDES {
            self.collect_garbage(now_ms);
            if self.entries.len() + new_targets > MAX_OVERRIDES {
                return Err(OverrideError::Full);
            }
        }
        let expires_at_ms = change.expires_in_ms.map(|ms| now_ms.saturating_add(ms));
        let mut made = Vec::with_capacity(writes.len());
        for (target, action) in writes {
            let stamp = self.tick(now_ms, origin);
            let entry = Entry {
                expires_at_ms: action.as_ref().and(expires_at_ms),
                target,
                action,
                by: change.by.clone(),
                reason: change.reason.clone(),
                at_ms: now_ms,
                stamp,
            };
            self.entries.insert(entry.target.clone(), entry.clone());
            made.push(entry);
        }
        Ok(made)
    }

    /// The override in force on exactly `target`.
    fn in_force(&self, target: &Target, now_ms: u64) -> Option<&Action> {
        self.entries
            .get(target)
            .filter(|e| e.active(now_ms))
            .and_then(|e| e.action.as_ref())
    }

    /// For an untyped record target, the typed record targets of its name with an
    /// override in force (which an untyped change ends); else none.
    fn typed_in_force(&self, target: &Target, now_ms: u64) -> Vec<Target> {
        let Target::Record {
            name,
            record_type: None,
        } = target
        else {
            return Vec::new();
        };
        self.active(now_ms)
            .filter(|e| {
                matches!(&e.target, Target::Record { name: n, record_type: Some(_) } if n == name)
            })
            .map(|e| e.target.clone())
            .collect()
    }

    /// The overrides in force on targets related to `targets` (what a release named,
    /// expanded), each described with how to end it: for a typed record the untyped
    /// one of its name (and other types), for an endpoint its pool's drain, for a pool
    /// its endpoints'; and an override of a target itself that expired.
    fn related(&self, targets: &[Target], now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        let describe = |entry: &Entry, how: String| -> String {
            let action = entry
                .action
                .as_ref()
                .map_or_else(String::new, |a| a.to_string());
            format!("{action} on {} ({how})", entry.target)
        };
        for target in targets {
            if let Some(entry) = self.entries.get(target).filter(|e| e.action.is_some()) {
                if let Some(at) = entry.expires_at_ms.filter(|&at| at <= now_ms) {
                    out.push(format!(
                        "(its {} expired at {})",
                        entry
                            .action
                            .as_ref()
                            .map_or_else(String::new, ToString::to_string),
                        format_ms(at)
                    ));
                }
            }
            match target {
                Target::Record {
                    name,
                    record_type: Some(_),
                } => {
                    let untyped = Target::Record {
                        name: name.clone(),
                        record_type: None,
                    };
                    if let Some(entry) = self.entries.get(&untyped).filter(|e| e.active(now_ms)) {
                        out.push(describe(
                            entry,
                            "untyped: it covers every type of the name; release it without --type"
                                .into(),
                        ));
                    }
                    for entry in self.active(now_ms).filter(|e| {
                        matches!(&e.target, Target::Record { name: n, record_type: Some(_) } if n == name)
                    }) {
                        out.push(describe(entry, "another type".into()));
                    }
                }
                Target::Endpoint(label) => {
                    let pool = label.split_once('/').map_or("", |(p, _)| p);
                    if let Some(entry) = self
                        .entries
                        .get(&Target::Pool(pool.to_owned()))
                        .filter(|e| e.active(now_ms))
                    {
                        out.push(describe(entry, format!("the whole pool: undrain {pool}")));
                    }
                }
                Target::Pool(pool) => {
                    let prefix = format!("{pool}/");
                    for entry in self.active(now_ms).filter(
                        |e| matches!(&e.target, Target::Endpoint(l) if l.starts_with(&prefix)),
                    ) {
                        let Target::Endpoint(label) = &entry.target else {
                            continue;
                        };
                        out.push(describe(entry, format!("release {label}")));
                    }
                }
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Takes entries from a peer or the state file (checked with [`check_entry`]
    /// first): per target the newest stamp wins. Returns the entries that changed this
    /// set.
    pub(crate) fn merge(&mut self, entries: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
        let mut changed = Vec::new();
        for entry in entries {
            self.clock = self.clock.max((entry.stamp.ms, entry.stamp.counter));
            let newer = self
                .entries
                .get(&entry.target)
                .is_none_or(|old| entry.version() > old.version());
            if newer
                && (self.entries.len() < MAX_OVERRIDES || self.entries.contains_key(&entry.target))
            {
                self.entries.insert(entry.target.clone(), entry.clone());
                changed.push(entry);
            }
        }
        changed
    }

    /// A new stamp, later than every stamp made or seen (hybrid logical clock). The
    /// counter never wraps: past its last value the clock moves on a millisecond.
    fn tick(&mut self, now_ms: u64, origin: &str) -> Stamp {
        let (ms, counter) = self.clock;
        self.clock = if now_ms > ms {
            (now_ms, 0)
        } else if counter == u32::MAX {
            (ms.saturating_add(1), 0)
        } else {
            (ms, counter + 1)
        };
        Stamp {
            ms: self.clock.0,
            counter: self.clock.1,
            origin: origin.to_owned(),
        }
    }

    /// Forgets releases and expired overrides older than [`TOMBSTONE_KEEP_MS`].
    pub(crate) fn collect_garbage(&mut self, now_ms: u64) {
        self.entries.retain(|_, e| {
            let ended_at = match (&e.action, e.expires_at_ms) {
                (None, _) => Some(e.at_ms),
                (Some(_), Some(at)) if at <= now_ms => Some(at),
                _ => None,
            };
            ended_at.is_none_or(|at| now_ms.saturating_sub(at) < TOMBSTONE_KEEP_MS)
        });
    }

    /// When the next override in force expires.
    #[cfg(test)]
    pub(crate) fn next_expiry(&self, now_ms: u64) -> Option<u64> {
        self.active(now_ms).filter_map(|e| e.expires_at_ms).min()
    }

    /// What the overrides in force at `now_ms` do under `config` (targets the config
    /// no longer has are kept but do nothing).
    pub(crate) fn effects(&self, config: &Config, now_ms: u64) -> Effects {
        let mut effects = Effects {
            forced: vec![None; config.endpoints.len()],
            drained: vec![false; config.endpoints.len()],
            pins: vec![None; config.records.len()],
            dials: vec![None; config.pools.len()],
        };
        for entry in self.active(now_ms) {
            let Some(action) = &entry.action else {
                continue;
            };
            match (&entry.target, action) {
                (Target::Endpoint(label), _) => {
                    let Some(e) = endpoint_by_label(config, label) else {
                        continue;
                    };
                    let i = e.0 as usize;
                    match action {
                        Action::Drain => effects.drained[i] = true,
                        Action::ForceUp => effects.forced[i] = Some(HealthState::Up),
                        Action::ForceDown => effects.forced[i] = Some(HealthState::Down),
                        Action::Failover(_) | Action::Dial(_) => {}
                    }
                }
                (Target::Pool(pool), Action::Drain) => {
                    if let Some(p) = config.pool_by_name(pool) {
                        for e in &config.pool(p).endpoints {
                            effects.drained[e.0 as usize] = true;
                        }
                    }
                }
                (Target::Pool(pool), Action::Dial(percent)) => {
                    if let Some(p) = config.pool_by_name(pool) {
                        effects.dials[p.0 as usize] = Some(*percent);
                    }
                }
                (Target::Record { .. }, Action::Failover(pool)) => {
                    let Some(p) = config.pool_by_name(pool) else {
                        continue;
                    };
                    for r in records_of(config, &entry.target) {
                        if record_pools(config, r).contains(&p) {
                            effects.pins[r] = Some(p);
                        }
                    }
                }
                _ => {}
            }
        }
        effects
    }
}

mod expand;
mod validity;

pub(crate) use self::expand::expand;
use self::expand::format_ms;
pub(crate) use self::validity::endpoint_by_label;
use self::validity::{check, check_target, known, record_pools, records_of};

#[cfg(test)]
mod tests;
