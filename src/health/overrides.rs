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
//!  ctl ──▶ every server ──▶ OverrideSet::set ──┐
//!  peer sync (signed, both ways) ──▶ merge ────┼─▶ effects(config, now) ─▶ answers
//!  state file ──▶ merge ───────────────────────┘
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{AllDown, Config, DynamicRecord, PoolChoice, Selection};
use crate::model::{DynamicType, EndpointIndex, HealthState, PoolIndex};

/// How long a release (or an expired override) is remembered, so that an older copy
/// of the override it ended cannot come back from a peer that was away.
pub const TOMBSTONE_KEEP_MS: u64 = 7 * 24 * 3600 * 1000;

/// Most overrides (releases included) a set holds; a request beyond it is refused.
pub const MAX_OVERRIDES: usize = 10_000;

/// Longest `by` (characters).
pub const MAX_BY: usize = 256;

/// Longest `reason` (characters).
pub const MAX_REASON: usize = 1024;

/// How far ahead of this server's clock a peer's stamp (or sending time) may be. A
/// stamp further ahead would pin every later stamp behind it, so it is refused.
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// What an override applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
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
}

impl Target {
    /// The record target of `name` (made absolute and lower case).
    pub fn record(name: &str, record_type: Option<DynamicType>) -> Self {
        let mut name = name.trim().to_ascii_lowercase();
        if !name.ends_with('.') {
            name.push('.');
        }
        Self::Record { name, record_type }
    }
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
        }
    }
}

/// What an override does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
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
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Drain => f.write_str("drain"),
            Self::ForceUp => f.write_str("force up"),
            Self::ForceDown => f.write_str("force down"),
            Self::Failover(pool) => write!(f, "failover to {pool}"),
        }
    }
}

/// A hybrid logical clock reading and its origin: the version of an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
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
pub struct Entry {
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
    pub fn active(&self, now_ms: u64) -> bool {
        self.action.is_some() && self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

/// A change an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
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
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverrideError {
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

/// Why a peer's entry is not merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryRefusal {
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
    pub fn label(&self) -> &'static str {
        match self {
            Self::Future { .. } => "future_stamp",
            Self::Target(_) => "unknown_target",
            Self::Text(_) => "bad_text",
            Self::Expiry => "bad_expiry",
        }
    }

    /// Every label, for metrics.
    pub const LABELS: [&'static str; 4] =
        ["future_stamp", "unknown_target", "bad_text", "bad_expiry"];
}

/// Checks the free text of an override: bounded, no control characters (which would
/// forge log lines or terminal output).
pub fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), OverrideError> {
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
pub fn check_entry(
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
pub struct Effects {
    /// Forced state per endpoint.
    pub forced: Vec<Option<HealthState>>,
    /// Drained per endpoint.
    pub drained: Vec<bool>,
    /// Manual failover per record: the pool answered first.
    pub pins: Vec<Option<PoolIndex>>,
}

/// Every override and release a server knows, with its clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverrideSet {
    entries: BTreeMap<Target, Entry>,
    /// The newest stamp made or seen (the hybrid logical clock).
    clock: (u64, u32),
}

impl OverrideSet {
    /// A set holding `entries` (merged: the newest per target wins).
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut set = Self::default();
        set.merge(entries);
        set
    }

    /// Every entry, releases included, in target order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entry of a target.
    pub fn get(&self, target: &Target) -> Option<&Entry> {
        self.entries.get(target)
    }

    /// The overrides in force at `now_ms`.
    pub fn active(&self, now_ms: u64) -> impl Iterator<Item = &Entry> {
        self.entries.values().filter(move |e| e.active(now_ms))
    }

    /// Checks `change` against `config` and makes it, stamped by `origin` at `now_ms`.
    /// Returns the new entry.
    pub fn apply(
        &mut self,
        change: Change,
        config: &Config,
        origin: &str,
        now_ms: u64,
    ) -> Result<Entry, OverrideError> {
        if let Some(action) = &change.action {
            let in_force = self
                .entries
                .get(&change.target)
                .filter(|e| e.active(now_ms))
                .and_then(|e| e.action.as_ref());
            check(config, &change.target, action, in_force)?;
        }
        check_text("by", &change.by, MAX_BY)?;
        check_text("reason", &change.reason, MAX_REASON)?;
        if !self.entries.contains_key(&change.target) && self.entries.len() >= MAX_OVERRIDES {
            self.collect_garbage(now_ms);
            if self.entries.len() >= MAX_OVERRIDES {
                return Err(OverrideError::Full);
            }
        }
        let stamp = self.tick(now_ms, origin);
        let entry = Entry {
            target: change.target,
            action: change.action,
            by: change.by,
            reason: change.reason,
            at_ms: now_ms,
            expires_at_ms: change.expires_in_ms.map(|ms| now_ms.saturating_add(ms)),
            stamp,
        };
        self.entries.insert(entry.target.clone(), entry.clone());
        Ok(entry)
    }

    /// Takes entries from a peer or the state file (checked with [`check_entry`]
    /// first): per target the newest stamp wins. Returns the entries that changed this
    /// set.
    pub fn merge(&mut self, entries: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
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
    pub fn collect_garbage(&mut self, now_ms: u64) {
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
    pub fn next_expiry(&self, now_ms: u64) -> Option<u64> {
        self.active(now_ms).filter_map(|e| e.expires_at_ms).min()
    }

    /// What the overrides in force at `now_ms` do under `config` (targets the config
    /// no longer has are kept but do nothing).
    pub fn effects(&self, config: &Config, now_ms: u64) -> Effects {
        let mut effects = Effects {
            forced: vec![None; config.endpoints.len()],
            drained: vec![false; config.endpoints.len()],
            pins: vec![None; config.records.len()],
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
                        Action::Failover(_) => {}
                    }
                }
                (Target::Pool(pool), Action::Drain) => {
                    if let Some(p) = config.pool_by_name(pool) {
                        for e in &config.pool(p).endpoints {
                            effects.drained[e.0 as usize] = true;
                        }
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

/// Whether `action` applies to `target` under `config`: the target exists, the
/// action is of a kind it takes, and it changes something — it ends `in_force`, a
/// different override in force on the same target (a target holds one override, so
/// `force up` replaces a `force down`), or would change an answer by itself (see
/// [`check_effect`]). An operator's change that fails here is refused (HTTP 400,
/// with the reason). Pure: the configuration and the override in force only.
fn check(
    config: &Config,
    target: &Target,
    action: &Action,
    in_force: Option<&Action>,
) -> Result<(), OverrideError> {
    check_target(config, target, action)?;
    if in_force.is_some_and(|current| current != action) {
        return Ok(());
    }
    check_effect(config, target, action)
}

/// Whether the target exists and takes this kind of action.
fn check_target(config: &Config, target: &Target, action: &Action) -> Result<(), OverrideError> {
    let mismatch = |kind, allowed| OverrideError::Mismatch {
        action: action.clone(),
        kind,
        allowed,
    };
    let unknown = || OverrideError::UnknownTarget(target.clone());
    match target {
        Target::Endpoint(label) => {
            endpoint_by_label(config, label).ok_or_else(unknown)?;
            if matches!(action, Action::Failover(_)) {
                return Err(mismatch("endpoint", "drain, force_up or force_down"));
            }
        }
        Target::Pool(pool) => {
            config.pool_by_name(pool).ok_or_else(unknown)?;
            if *action != Action::Drain {
                return Err(mismatch("pool", "drain; force its endpoints one by one"));
            }
        }
        Target::Record { .. } => {
            let records = records_of(config, target);
            if records.is_empty() {
                return Err(unknown());
            }
            let Action::Failover(pool) = action else {
                return Err(mismatch("record", "failover"));
            };
            let listed = |r: usize| {
                config
                    .pool_by_name(pool)
                    .is_some_and(|p| record_pools(config, r).contains(&p))
            };
            if !records.iter().any(|&r| listed(r)) {
                let mut pools: Vec<&str> = records
                    .iter()
                    .flat_map(|&r| record_pools(config, r))
                    .map(|p| config.pool(p).name.as_str())
                    .collect();
                pools.sort_unstable();
                pools.dedup();
                return Err(OverrideError::NotAPoolOfTheRecord {
                    target: target.clone(),
                    pool: pool.clone(),
                    pools: pools.join(", "),
                });
            }
        }
    }
    Ok(())
}

/// How a record uses a pool.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Answers from it (one of its pool lists).
    Answers,
    /// Answers from it only when no pool is up (`all_down = { fallback = … }`).
    Fallback,
    /// Lets traffic move to a pool only while this one is up (a gate).
    Gate,
}

/// Every (record, use) of `pool` in `config`.
fn uses_of(config: &Config, pool: PoolIndex) -> Vec<(&DynamicRecord, Use)> {
    let mut uses = Vec::new();
    for (r, record) in config.records.iter().enumerate() {
        if record_pools(config, r).contains(&pool) {
            uses.push((record, Use::Answers));
        }
        if record.all_down == AllDown::Fallback(pool) {
            uses.push((record, Use::Fallback));
        }
        if record.gates.iter().any(|g| g.gate == pool) {
            uses.push((record, Use::Gate));
        }
    }
    uses
}

/// Whether a valid override would change any answer under `config` (pure: the
/// configuration alone, so the same request gets the same verdict on every server).
/// What changes nothing (README, "Operations"):
///
/// | action | changes nothing when |
/// |---|---|
/// | `failover` | the record is `policy = "primary"` (it follows its checks); a `failover` record's pool is already first in every pool list holding it and has no gate to override; a `weighted`/`multivalue` record has it as its only pool |
/// | `drain` | every endpoint is drained by the configuration (`weight = 0`), or no record answers from its pool (nor falls back to it, nor is gated by it; a `primary` record's fallback ignores drains) |
/// | `force_up` | the configuration forces it up already, or its pool is only a fallback (answered whatever its health) or used by no record |
/// | `force_down` | the configuration forces it down already, or no record uses its pool |
fn check_effect(config: &Config, target: &Target, action: &Action) -> Result<(), OverrideError> {
    let no_effect = |reason: String| OverrideError::NoEffect {
        action: action.clone(),
        target: target.clone(),
        reason,
    };
    match (target, action) {
        (Target::Record { .. }, Action::Failover(pool)) => {
            let Some(pin) = config.pool_by_name(pool) else {
                return Ok(());
            };
            let mut reasons: Vec<String> = Vec::new();
            for r in records_of(config, target) {
                match failover_effect(config, &config.records[r], pin) {
                    Ok(()) => return Ok(()),
                    Err(reason) => {
                        if !reasons.contains(&reason) {
                            reasons.push(reason);
                        }
                    }
                }
            }
            Err(no_effect(reasons.join("; ")))
        }
        (Target::Endpoint(label), _) => {
            let Some(e) = endpoint_by_label(config, label) else {
                return Ok(());
            };
            endpoint_effect(config, e, action).map_err(no_effect)
        }
        (Target::Pool(name), Action::Drain) => {
            let Some(pool) = config.pool_by_name(name) else {
                return Ok(());
            };
            let endpoints = &config.pool(pool).endpoints;
            let mut first = None;
            for &e in endpoints {
                match endpoint_effect(config, e, action) {
                    Ok(()) => return Ok(()),
                    Err(reason) => {
                        first.get_or_insert(reason);
                    }
                }
            }
            Err(no_effect(
                first.unwrap_or_else(|| "it has no endpoints".into()),
            ))
        }
        _ => Ok(()),
    }
}

/// Whether a manual failover of `record` to `pin` (one of its pools or not) changes
/// its answers; else why not.
fn failover_effect(config: &Config, record: &DynamicRecord, pin: PoolIndex) -> Result<(), String> {
    let what = format!("{} {}", record.name, record.record_type);
    let pool = &config.pool(pin).name;
    let lists: Vec<&[PoolIndex]> = record
        .pools
        .all_lists()
        .into_iter()
        .filter(|list| list.contains(&pin))
        .collect();
    if lists.is_empty() {
        return Err(format!("{what} does not answer from pool {pool}"));
    }
    let others = || {
        let mut names: Vec<&str> = lists
            .iter()
            .flat_map(|l| l.iter())
            .filter(|&&p| p != pin)
            .map(|&p| config.pool(p).name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    };
    match record.selection {
        Selection::Primary => Err(format!(
            "{what} is a primary record: it answers the one endpoint whose check claims \
             primary, so a manual failover does not apply; promote the database instead \
             (failoverd drill --mode promote measures it), or drain or force its endpoints"
        )),
        Selection::Failover => {
            let moves = lists
                .iter()
                .any(|list| list[0] != pin || record.gate_of(pin).is_some());
            if moves {
                Ok(())
            } else {
                Err(format!(
                    "pool {pool} is already the first pool of {what}, and no gate holds \
                     it; fail over to another of its pools ({}), or release the record to \
                     end a failover in force",
                    others()
                ))
            }
        }
        Selection::Weighted | Selection::Multivalue => {
            if lists.iter().any(|list| list.len() > 1) {
                Ok(())
            } else {
                Err(format!(
                    "pool {pool} is the only pool {what} answers from, so answering from it \
                     alone is what it does already"
                ))
            }
        }
    }
}

/// Whether `action` (drain, force up or down) on endpoint `e` changes any answer;
/// else why not.
fn endpoint_effect(config: &Config, e: EndpointIndex, action: &Action) -> Result<(), String> {
    let endpoint = config.endpoint(e);
    let label = config.endpoint_label(e);
    let pool = &config.pool(endpoint.pool).name;
    match action {
        Action::Drain if endpoint.weight.is_drained() => {
            return Err(format!(
                "{label} is drained by the configuration already (weight = 0)"
            ));
        }
        Action::ForceUp if endpoint.forced == Some(HealthState::Up) => {
            return Err(format!(
                "{label} is forced up by the configuration already (force = \"up\")"
            ));
        }
        Action::ForceDown if endpoint.forced == Some(HealthState::Down) => {
            return Err(format!(
                "{label} is forced down by the configuration already (force = \"down\")"
            ));
        }
        _ => {}
    }
    let uses = uses_of(config, endpoint.pool);
    if uses.is_empty() {
        return Err(format!(
            "no record answers from pool {pool}, falls back to it or is gated by it"
        ));
    }
    let matters = uses.iter().any(|&(record, use_)| match (action, use_) {
        (_, Use::Answers | Use::Gate) => true,
        // A fallback pool is answered whatever its health, but never a forced-down
        // endpoint, and undrained endpoints first (a primary record takes the first
        // endpoint not forced down, drained or not).
        (Action::ForceDown, Use::Fallback) => true,
        (Action::Drain, Use::Fallback) => record.selection != Selection::Primary,
        _ => false,
    });
    if matters {
        Ok(())
    } else {
        Err(format!(
            "pool {pool} is only a fallback (all_down), answered whatever its endpoints' \
             health{}",
            if *action == Action::Drain {
                " by primary records, drained or not"
            } else {
                ""
            }
        ))
    }
}

/// Whether `target` names something `config` has (for a release, which has no action
/// to check).
fn known(config: &Config, target: &Target) -> Result<(), OverrideError> {
    let found = match target {
        Target::Endpoint(label) => endpoint_by_label(config, label).is_some(),
        Target::Pool(pool) => config.pool_by_name(pool).is_some(),
        Target::Record { .. } => !records_of(config, target).is_empty(),
    };
    if found {
        Ok(())
    } else {
        Err(OverrideError::UnknownTarget(target.clone()))
    }
}

/// An endpoint by its `pool/name` label.
pub fn endpoint_by_label(config: &Config, label: &str) -> Option<EndpointIndex> {
    let (pool, name) = label.split_once('/')?;
    let pool = config.pool(config.pool_by_name(pool)?);
    pool.endpoints
        .iter()
        .copied()
        .find(|&e| config.endpoint(e).name == name)
}

/// Indices of the records a record target names.
fn records_of(config: &Config, target: &Target) -> Vec<usize> {
    let Target::Record { name, record_type } = target else {
        return Vec::new();
    };
    config
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.name == *name && record_type.is_none_or(|t| t == r.record_type))
        .map(|(i, _)| i)
        .collect()
}

/// Every pool a record may answer from (any region).
fn record_pools(config: &Config, record: usize) -> Vec<PoolIndex> {
    let mut pools: Vec<PoolIndex> = match &config.records[record].pools {
        PoolChoice::Fixed(pools) => pools.clone(),
        PoolChoice::Geo { by_region, default } => by_region
            .iter()
            .flatten()
            .flatten()
            .chain(default)
            .copied()
            .collect(),
    };
    pools.sort_unstable();
    pools.dedup();
    pools
}

#[cfg(test)]
mod tests;
