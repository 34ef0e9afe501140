//! The health board: every input that decides endpoint health, as one pure value.
//!
//! ```text
//!  observe_local(probe outcome) ─┐
//!  accept_report(signed report) ─┼─▶ Board ── decide(now) ──▶ HealthSnapshot + Tally
//!  force(label, state) ──────────┤     ▲
//!  adopt(&Config) ───────────────┘     └─ state by endpoint *label*, so a reload
//!                                         re-maps it instead of dropping it
//! ```
//!
//! Time is passed in (`now`: a monotonic clock, `now_ms`: the wall clock for the state
//! file); the board does no I/O. The health plane actor around it only moves
//! messages, ticks and publishes.
//!
//! What the board keeps per endpoint label:
//! - this process's anti-flap machine and its last probe, with the time it was seen
//!   (a stalled local prober goes stale like any peer), and its last *abstention*: a
//!   probe that failed for a local fault (see [`crate::probe::fault`]) is not a vote —
//!   it feeds no machine and refreshes no verdict, so the endpoint's state holds and
//!   this vantage point's verdict on it ages and goes stale after `staleness`, like a
//!   stalled prober's, and quorum counts it like a missing voter;
//! - every remote vantage point's latest verdict, with the time it was observed;
//! - the decided state, the operator's override;
//!
//! and per sender, the replay high-water mark (see [`crate::health::report`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::config::Config;
use crate::health::damping::{Damper, DampingRules};
use crate::health::machine::{Machine, Pace, Thresholds};
use crate::health::quorum::{self, Ballot, Rules, Tally};
use crate::health::report::{Report, ReportError, Verdict};
use crate::health::{EndpointHealth, HealthSnapshot, HealthSource, ProbeOutcome};
use crate::model::{EndpointIndex, HealthState, RegionIndex};

/// Name used for this process's own verdicts when the config names no vantage point.
pub const LOCAL_VANTAGE: &str = "local";

/// One probe result of this process, tagged with the config generation it was made
/// under (results of a replaced config are ignored).
#[derive(Clone, Debug)]
pub struct LocalObservation {
    /// Config generation of the prober.
    pub generation: u64,
    /// The endpoint, as indexed in that generation.
    pub endpoint: EndpointIndex,
    /// What the probe saw.
    pub outcome: ProbeOutcome,
    /// When (monotonic).
    pub at: Duration,
}

/// What one local observation changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalChange {
    /// From another config generation, or an unknown endpoint: dropped.
    Ignored,
    /// Same verdict, same reason.
    Unchanged,
    /// Same verdict, another reason (status shows it).
    Reason,
    /// The verdict of this vantage point changed.
    Verdict(HealthState),
    /// This vantage point's degraded verdict changed (to degraded: true).
    Degraded(bool),
    /// The probe abstained (a local fault), and it had not, or for another reason:
    /// status shows it. The verdict and state are untouched.
    Abstained,
}

/// Where health starts (state file, peers).
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// Decided state per endpoint label.
    pub states: BTreeMap<String, HealthState>,
    /// Operator overrides and releases (the board takes their effect through
    /// [`Board::set_forced`]).
    pub overrides: Vec<crate::health::overrides::Entry>,
    /// Flap-damping state per endpoint label: penalty as of now, and whether the way
    /// back is withheld.
    pub damping: BTreeMap<String, (f64, bool)>,
    /// `primary` records' last agreed primary (record key → endpoint label).
    pub primaries: BTreeMap<String, String>,
    /// Decided-state history per endpoint label (state file): the state it was
    /// saved with, and its history then.
    pub history: BTreeMap<String, (HealthState, History)>,
    /// Since when the history counts (state file).
    pub counted_since_ms: Option<u64>,
}

/// An endpoint's decided-state history: when it last changed and how often.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Wall clock of the last change (of the first decision while none).
    pub changed_at_ms: u64,
    /// Changes either way (flaps).
    pub changes: u64,
    /// Times it went down (a first decision of down included).
    pub downs: u64,
    /// Time spent down up to the last change, in milliseconds.
    pub down_ms: u64,
}

/// A decided state as the state file keeps it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecidedRecord {
    /// Up or down.
    pub state: HealthState,
    /// When it last changed, and how often.
    pub history: History,
    /// Flap-damping penalty, now.
    pub penalty: f64,
    /// Whether the way back is withheld.
    pub suppressed: bool,
}

/// The flap-damping state of a decided endpoint, for status.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DampingState {
    /// Penalty now.
    pub penalty: f64,
    /// Whether the way back is withheld, and until when (board clock) if no outage
    /// comes first.
    pub suppressed_until: Option<Duration>,
}

/// Whether this server hears enough vantage points to decide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Isolation {
    /// Fewer usable voters than needed.
    pub isolated: bool,
    /// Votes needed either way.
    pub needed: u32,
    /// Configured vantage points heard from recently (itself included).
    pub fresh: Vec<String>,
    /// Configured vantage points not heard from (or ignored as partitioned).
    pub missing: Vec<String>,
}

/// The local probe state of one endpoint.
#[derive(Clone, Debug)]
struct LocalProbe {
    machine: Machine,
    /// The last vote (a probe that passed or failed) and when.
    last: Option<(ProbeOutcome, Duration)>,
    /// The last abstention and when.
    abstained: Option<(ProbeOutcome, Duration)>,
}

impl LocalProbe {
    /// Whether the latest probe abstained.
    fn abstaining(&self) -> bool {
        match (&self.abstained, &self.last) {
            (Some((_, abstained)), Some((_, voted))) => abstained > voted,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// This process's probe of one endpoint, as status shows it.
#[derive(Clone, Debug)]
pub struct LocalProbeView<'a> {
    /// This vantage point's verdict (after rise and fall).
    pub verdict: HealthState,
    /// The last probe that voted.
    pub last: Option<&'a ProbeOutcome>,
    /// The last abstention within `staleness`, and how long ago.
    pub abstained: Option<(&'a ProbeOutcome, Duration)>,
    /// Whether the latest probe abstained.
    pub abstaining: bool,
    /// This vantage point's degraded verdict, with the last probe's judgement when it
    /// was degraded ("slow: 240 ms > 100 ms").
    pub degraded: (bool, Option<String>),
}

/// A remote verdict and when it was observed (by its sender, on our clock; None:
/// before this board's clock began, treated as stale).
#[derive(Clone, Debug, PartialEq, Eq)]
struct RemoteVerdict {
    state: HealthState,
    degraded: bool,
    reason: String,
    observed_at: Option<Duration>,
    /// The report that last named it.
    sequence: u64,
}

/// A remote verdict by slot: what a decision reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IndexedVerdict {
    state: HealthState,
    degraded: bool,
    observed_at: Option<Duration>,
    sequence: u64,
}

/// A remote vantage point's latest accepted report.
#[derive(Clone, Debug)]
struct RemoteView {
    received_at: Duration,
    sent_at_ms: u64,
    /// Sequence of the last accepted report.
    sequence: u64,
    /// When the last delta arrived: it confirms, as of then, every verdict it does not
    /// name (a stalled verdict is always named, with its age). None after a full report.
    confirmed_at: Option<Duration>,
    verdicts: BTreeMap<String, RemoteVerdict>,
    /// The same verdicts by slot index, so a decision reads them without a lookup by
    /// label; rebuilt when the slots change.
    indexed: Vec<Option<IndexedVerdict>>,
}

impl RemoteView {
    /// Rebuilds `indexed` for slots indexed by `index`.
    fn reindex(&mut self, index: &HashMap<String, usize>, slots: usize) {
        self.indexed = vec![None; slots];
        for (label, verdict) in &self.verdicts {
            if let Some(&i) = index.get(label) {
                self.indexed[i] = Some(IndexedVerdict {
                    state: verdict.state,
                    degraded: verdict.degraded,
                    observed_at: verdict.observed_at,
                    sequence: verdict.sequence,
                });
            }
        }
    }

    /// When a verdict was last known to hold: when its sender observed it, or, if the
    /// last report (a delta) left it out as unchanged, when that report arrived.
    fn observed_at(&self, verdict: &IndexedVerdict) -> Option<Duration> {
        if verdict.sequence == self.sequence {
            verdict.observed_at
        } else {
            verdict.observed_at.max(self.confirmed_at)
        }
    }
}

/// Replay high-water mark of one sender.
#[derive(Clone, Debug, Default)]
struct Sender {
    session: u64,
    sequence: u64,
    /// Older sessions of this sender and when they were retired; kept while a report
    /// of theirs could still carry a valid challenge.
    retired: BTreeMap<u64, Duration>,
}

/// A decided state.
#[derive(Clone, Copy, Debug)]
struct Decided {
    state: HealthState,
    /// From the state file or peers, not yet voted on.
    restored: bool,
}

/// What the board knows of one endpoint (parallel to the slots, so a decision over
/// many endpoints reads by index, never by label).
#[derive(Clone, Debug, Default)]
struct Known {
    /// This process's probes (None: not probed here).
    local: Option<LocalProbe>,
    decided: Option<Decided>,
    /// Whether the votes decided it degraded (see [`crate::health::degraded`]).
    degraded: bool,
    /// Runtime override.
    forced: Option<HealthState>,
    /// Flap damping of the decided state (None: no outage yet).
    damper: Option<Damper>,
    /// Decided state before damping (what the votes alone say).
    raw: Option<HealthState>,
    /// On a slow start since.
    ramp: Option<Duration>,
    /// The decided state's history (kept with the decided state).
    history: History,
}

/// What the board takes from the config per endpoint.
#[derive(Clone, Debug)]
struct Slot {
    label: String,
    /// None: not probed.
    thresholds: Option<Thresholds>,
    /// How long a verdict on it stays fresh.
    fresh_for: Duration,
    forced_in_config: Option<HealthState>,
    /// Flap damping of the decided state (None: off).
    damping: Option<DampingRules>,
    /// Probe period while a verdict is in doubt.
    fast_interval: Duration,
    /// Ramp of an endpoint coming back (zero: off).
    slow_start: Duration,
    /// Weight factor in permille while degraded (None: the check has no degraded
    /// rules).
    degraded_weight: Option<u16>,
}

/// Every input that decides endpoint health (see the module docs).
#[derive(Clone, Debug)]
pub struct Board {
    boot: u128,
    epoch_length: Duration,
    generation: u64,
    local_name: String,
    local_region: Option<RegionIndex>,
    local_votes: bool,
    vantages: BTreeMap<String, Option<RegionIndex>>,
    rules: Rules,
    staleness: Duration,
    slots: Vec<Slot>,
    /// Per slot.
    known: Vec<Known>,
    index: HashMap<String, usize>,
    remote: BTreeMap<String, RemoteView>,
    senders: BTreeMap<String, Sender>,
    last: Option<Tally>,
    /// An input changed since the last decision.
    changed: bool,
    /// Whether a first decision is made (see [`Board::ready`]); kept once true.
    ready: bool,
    /// When the last decision may stop holding without any input (a verdict or
    /// report going stale, a suppression, hold or slow-start step ending).
    next_wake: Option<Duration>,
    /// When this process's probes last abstained (see [`Board::impaired`]).
    last_abstention: Option<Duration>,
    /// Counts changes of decided states (and first decisions): their history moved
    /// even where an operator's force hides them from the answers.
    decided_version: u64,
}

impl Board {
    /// A board for `config` (generation 1), starting from `restored`. `boot` must be
    /// random and new for every process: it makes this process's challenges unique.
    pub fn new(config: &Config, boot: u128, restored: &Restored, now_ms: u64) -> Self {
        let mut board = Self {
            boot,
            epoch_length: config.health.staleness.max(Duration::from_millis(100)),
            generation: 0,
            local_name: String::new(),
            local_region: None,
            local_votes: false,
            vantages: BTreeMap::new(),
            rules: rules(config),
            staleness: config.health.staleness,
            slots: Vec::new(),
            known: Vec::new(),
            index: HashMap::new(),
            remote: BTreeMap::new(),
            senders: BTreeMap::new(),
            last: None,
            changed: true,
            ready: false,
            next_wake: None,
            last_abstention: None,
            decided_version: 0,
        };
        let mut carried: HashMap<String, Known> = HashMap::new();
        for (label, (_, history)) in &restored.history {
            carried.entry(label.clone()).or_default().history = *history;
        }
        for (label, &state) in &restored.states {
            let known = carried.entry(label.clone()).or_default();
            known.decided = Some(Decided {
                state,
                restored: true,
            });
            // The saved time of the last change holds only for the state it was
            // saved with (peers may know of a change made while this server was away).
            let saved = restored.history.get(label).map(|(saved, _)| *saved);
            if saved != Some(state) {
                known.history.changed_at_ms = now_ms;
            }
        }
        for (label, &(penalty, suppressed)) in &restored.damping {
            carried.entry(label.clone()).or_default().damper =
                Some(Damper::restored(penalty, Duration::ZERO, suppressed));
        }
        board.adopt_carrying(config, 1, carried);
        board
    }

    /// Takes on a (re)loaded configuration as generation `generation`: state is kept by
    /// endpoint label for every endpoint that still exists (anti-flap machines with
    /// their counters and hold time, remote views, decided states, overrides); new
    /// endpoints start from nothing; removed ones are forgotten.
    pub fn adopt(&mut self, config: &Config, generation: u64) {
        let slots = std::mem::take(&mut self.slots);
        let known = std::mem::take(&mut self.known);
        let carried = slots.into_iter().map(|s| s.label).zip(known).collect();
        self.adopt_carrying(config, generation, carried);
    }

    fn adopt_carrying(
        &mut self,
        config: &Config,
        generation: u64,
        mut carried: HashMap<String, Known>,
    ) {
        self.generation = generation;
        self.rules = rules(config);
        self.staleness = config.health.staleness;
        let (name, region) = local_identity(config);
        self.local_name = name;
        self.local_region = region;
        self.local_votes = config.vantages.is_empty() || config.health.vantage.is_some();
        self.vantages = config
            .vantages
            .iter()
            .map(|v| (v.name.clone(), v.region))
            .collect();
        self.slots = (0..config.endpoints.len())
            .map(|i| {
                let index = EndpointIndex(i as u32);
                let check = config.endpoint_check(index);
                Slot {
                    label: config.endpoint_label(index),
                    thresholds: check.map(Thresholds::from),
                    fresh_for: check.map_or(self.staleness, |c| {
                        self.staleness.max(c.interval * 2 + c.timeout + c.jitter)
                    }),
                    forced_in_config: config.endpoint(index).forced,
                    damping: check.and_then(|c| c.damping),
                    fast_interval: check.map_or(Duration::ZERO, |c| c.fast_interval),
                    slow_start: check.map_or(Duration::ZERO, |c| c.slow_start),
                    degraded_weight: check.and_then(|c| c.degraded).map(|d| d.weight_permille()),
                }
            })
            .collect();
        self.known = self
            .slots
            .iter()
            .map(|slot| {
                let mut known = carried.remove(&slot.label).unwrap_or_default();
                match (slot.thresholds.is_some(), &known.local) {
                    (false, _) => known.local = None,
                    (true, None) => {
                        let start = known.decided.map_or(HealthState::Up, |d| d.state);
                        known.local = Some(LocalProbe {
                            machine: Machine::new(start),
                            last: None,
                            abstained: None,
                        });
                    }
                    (true, Some(_)) => {}
                }
                known
            })
            .collect();
        self.index = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.label.clone(), i))
            .collect();
        let vantages = &self.vantages;
        self.remote.retain(|name, _| vantages.contains_key(name));
        for view in self.remote.values_mut() {
            view.reindex(&self.index, self.slots.len());
        }
        self.senders.retain(|name, _| vantages.contains_key(name));
        self.last = None;
        self.changed = true;
    }

    /// Whether a decision is due: an input changed, or time may have changed it.
    pub fn due(&self, now: Duration) -> bool {
        self.changed || self.last.is_none() || self.next_wake.is_some_and(|wake| now >= wake)
    }

    /// The config generation the board is on.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// This process's vantage name.
    pub fn local_name(&self) -> &str {
        &self.local_name
    }

    /// The challenge senders must put in their reports now.
    pub fn challenge(&self, now: Duration) -> String {
        format!("{:032x}.{}", self.boot, self.epoch(now))
    }

    fn epoch(&self, now: Duration) -> u64 {
        (now.as_millis() / self.epoch_length.as_millis().max(1)) as u64
    }

    /// Feeds one local probe result to the endpoint's anti-flap machine — unless it
    /// is an abstention (a local fault): that is only noted, and leaves the machine,
    /// the verdict's time and the decision alone.
    pub fn observe_local(&mut self, observation: LocalObservation) -> LocalChange {
        if observation.generation != self.generation {
            return LocalChange::Ignored;
        }
        let Some(slot) = self.slots.get(observation.endpoint.0 as usize) else {
            return LocalChange::Ignored;
        };
        let i = observation.endpoint.0 as usize;
        let (Some(thresholds), Some(probe)) = (slot.thresholds, self.known[i].local.as_mut())
        else {
            return LocalChange::Ignored;
        };
        if observation.outcome.fault.is_some() {
            let news = !probe.abstaining()
                || probe
                    .abstained
                    .as_ref()
                    .is_none_or(|(last, _)| last.reason != observation.outcome.reason);
            probe.abstained = Some((observation.outcome, observation.at));
            self.last_abstention = Some(
                self.last_abstention
                    .map_or(observation.at, |at| at.max(observation.at)),
            );
            return if news {
                LocalChange::Abstained
            } else {
                LocalChange::Unchanged
            };
        }
        let was_abstaining = probe.abstaining();
        let doubt_before = (
            probe.machine.pace(&thresholds),
            probe.machine.probes_to_change(&thresholds),
            probe.machine.withheld_until(&thresholds),
        );
        let changed = probe
            .machine
            .observe(observation.outcome.ok, observation.at, &thresholds);
        let degraded_reason = probe.machine.degraded_reason();
        let degraded = probe.machine.observe_degraded(
            observation.outcome.ok,
            observation.outcome.latency,
            observation.at,
            &thresholds,
        );
        let degraded_reason_changed = probe.machine.degraded_reason() != degraded_reason;
        let doubt_after = (
            probe.machine.pace(&thresholds),
            probe.machine.probes_to_change(&thresholds),
            probe.machine.withheld_until(&thresholds),
        );
        let reason_changed = probe.last.as_ref().is_none_or(|(last, _)| {
            last.ok != observation.outcome.ok || last.reason != observation.outcome.reason
        });
        // A first verdict, a new one, a new doubt (state-aware TTL), or one that had
        // gone stale (the probes abstained or stalled) fresh again can change the
        // decision.
        let was_stale = probe
            .last
            .as_ref()
            .is_some_and(|(_, at)| observation.at.saturating_sub(*at) > slot.fresh_for);
        self.changed |= changed.is_some()
            || degraded.is_some()
            || probe.last.is_none()
            || was_stale
            || doubt_before != doubt_after;
        probe.last = Some((observation.outcome, observation.at));
        match (changed, degraded) {
            (Some(state), _) => LocalChange::Verdict(state),
            (None, Some(degraded)) => LocalChange::Degraded(degraded),
            (None, None) if reason_changed || was_abstaining || degraded_reason_changed => {
                LocalChange::Reason
            }
            (None, None) => LocalChange::Unchanged,
        }
    }

    /// Whether this process's probes abstained on any endpoint (a local fault) within
    /// the last `staleness`: its own verdicts may be going stale for it.
    pub fn impaired(&self, now: Duration) -> bool {
        self.last_abstention
            .is_some_and(|at| now.saturating_sub(at) <= self.staleness)
    }

    /// The endpoint whose probe abstained last, with that abstention (for events).
    pub fn last_abstention(&self) -> Option<(EndpointIndex, &ProbeOutcome)> {
        self.known
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                let (outcome, at) = k.local.as_ref()?.abstained.as_ref()?;
                Some((*at, EndpointIndex(i as u32), outcome))
            })
            .max_by_key(|(at, _, _)| *at)
            .map(|(_, endpoint, outcome)| (endpoint, outcome))
    }

    /// How soon this process should probe an endpoint again.
    pub fn pace(&self, endpoint: EndpointIndex) -> Pace {
        let Some(slot) = self.slots.get(endpoint.0 as usize) else {
            return Pace::Normal;
        };
        let probe = self.known[endpoint.0 as usize].local.as_ref();
        match (slot.thresholds, probe) {
            (Some(thresholds), Some(probe)) => probe.machine.pace(&thresholds),
            _ => Pace::Normal,
        }
    }

    /// Takes an authenticated report (signature already checked). Refuses a report
    /// without this process's current (or previous-epoch) challenge, or not newer than
    /// the newest accepted from its sender. Returns whether the sender's view changed.
    pub fn accept_report(&mut self, report: Report, now: Duration) -> Result<bool, ReportError> {
        if !self.vantages.contains_key(&report.vantage) {
            return Err(ReportError::UnknownVantage);
        }
        self.check_challenge(&report.challenge, now)?;
        let keep_retired = self.epoch_length * 3;
        let sender = self.senders.entry(report.vantage.clone()).or_default();
        sender
            .retired
            .retain(|_, at| now.saturating_sub(*at) <= keep_retired);
        let same_session = sender.sequence > 0 && sender.session == report.session;
        if same_session && report.sequence <= sender.sequence {
            return Err(ReportError::Replay);
        }
        if !same_session && sender.retired.contains_key(&report.session) {
            return Err(ReportError::Replay);
        }
        // A delta must build on exactly the report accepted last.
        if report.base.is_some() && (!same_session || report.base != Some(sender.sequence)) {
            return Err(ReportError::Resync);
        }
        if !same_session && sender.sequence > 0 {
            // The sender restarted: its older session is over.
            sender.retired.insert(sender.session, now);
        }
        sender.session = report.session;
        sender.sequence = report.sequence;
        if report.vantage == self.local_name {
            return Ok(false); // our own verdicts come straight from our probers
        }
        let sequence = report.sequence;
        let verdict = |v: Verdict| {
            let observed_at = now.checked_sub(Duration::from_millis(v.age_ms));
            let verdict = RemoteVerdict {
                state: v.state,
                degraded: v.degraded,
                reason: v.reason,
                observed_at,
                sequence,
            };
            (v.endpoint, verdict)
        };
        let staleness = self.staleness;
        let was_stale = self
            .remote
            .get(&report.vantage)
            .is_none_or(|view| now.saturating_sub(view.received_at) > staleness);
        let changed = match (report.base, self.remote.get_mut(&report.vantage)) {
            (Some(_), Some(view)) => {
                // A delta: what it does not name is unchanged and confirmed now.
                let mut changed = was_stale;
                for (label, new) in report.verdicts.into_iter().map(verdict) {
                    let old = view.verdicts.get(&label);
                    changed |= old.is_none_or(|o| {
                        o.state != new.state || o.degraded != new.degraded || o.reason != new.reason
                    });
                    if let Some(&i) = self.index.get(&label) {
                        view.indexed[i] = Some(IndexedVerdict {
                            state: new.state,
                            degraded: new.degraded,
                            observed_at: new.observed_at,
                            sequence,
                        });
                    }
                    view.verdicts.insert(label, new);
                }
                view.received_at = now;
                view.sent_at_ms = report.sent_at_ms;
                view.sequence = sequence;
                view.confirmed_at = Some(now);
                changed
            }
            (Some(_), None) => return Err(ReportError::Resync),
            (None, _) => {
                let verdicts: BTreeMap<String, RemoteVerdict> =
                    report.verdicts.into_iter().map(verdict).collect();
                let changed = was_stale
                    || self.remote.get(&report.vantage).is_none_or(|view| {
                        view.verdicts.len() != verdicts.len()
                            || view.verdicts.iter().zip(&verdicts).any(|((a, x), (b, y))| {
                                a != b
                                    || x.state != y.state
                                    || x.degraded != y.degraded
                                    || x.reason != y.reason
                            })
                    });
                let mut view = RemoteView {
                    received_at: now,
                    sent_at_ms: report.sent_at_ms,
                    sequence,
                    confirmed_at: None,
                    verdicts,
                    indexed: Vec::new(),
                };
                view.reindex(&self.index, self.slots.len());
                self.remote.insert(report.vantage, view);
                changed
            }
        };
        self.changed |= changed;
        Ok(changed)
    }

    fn check_challenge(&self, challenge: &str, now: Duration) -> Result<(), ReportError> {
        let (boot, epoch) = challenge.split_once('.').ok_or(ReportError::Challenge)?;
        let boot = u128::from_str_radix(boot, 16).map_err(|_| ReportError::Challenge)?;
        let epoch: u64 = epoch.parse().map_err(|_| ReportError::Challenge)?;
        let current = self.epoch(now);
        if boot != self.boot || epoch > current || current - epoch > 1 {
            return Err(ReportError::Challenge);
        }
        Ok(())
    }

    /// Asks for a new decision although no input of the board changed (the answers
    /// depend on something beside it: an operator's drain or manual failover).
    pub fn invalidate(&mut self) {
        self.changed = true;
    }

    /// Takes the operator's forced states, per endpoint (see
    /// [`crate::health::overrides::Effects`]).
    pub fn set_forced(&mut self, forced: &[Option<HealthState>]) {
        for (i, known) in self.known.iter_mut().enumerate() {
            let state = forced.get(i).copied().flatten();
            if known.forced != state {
                known.forced = state;
                self.changed = true;
            }
        }
    }

    /// Counts the fresh votes and decides every endpoint (see [`quorum::tally`]).
    pub fn decide(&mut self, now: Duration, now_ms: u64) -> (HealthSnapshot, Tally) {
        let (ballots, mut wake) = self.ballots(now);
        let decided: Vec<Option<HealthState>> = self
            .known
            .iter()
            .map(|k| k.decided.map(|d| d.state))
            .collect();
        // The votes decide the undamped state; where they do not, it stays.
        let raw_before: Vec<Option<HealthState>> = self
            .known
            .iter()
            .zip(&decided)
            .map(|(k, d)| k.raw.or(*d))
            .collect();
        let mut tally = quorum::tally(&ballots, &raw_before, self.slots.len(), &self.rules);
        // With nothing to probe there is nothing to hear: never "isolated".
        tally.isolated &= self.slots.iter().any(|s| s.thresholds.is_some());
        for (known, state) in self.known.iter_mut().zip(&tally.states) {
            if state.is_some() {
                known.raw = *state;
            }
        }
        for (known, (state, degraded)) in self
            .known
            .iter_mut()
            .zip(tally.states.iter().zip(&tally.degraded))
        {
            if let Some(degraded) = degraded {
                known.degraded = *degraded;
            }
            if *state != Some(HealthState::Up) {
                known.degraded = false; // down (or undecided) is no degree of degraded
            }
        }
        self.damp(&raw_before, &decided, &mut tally.states, now);
        self.ramp(&decided, &tally.states, now);
        for (known, (state, votes)) in self
            .known
            .iter_mut()
            .zip(tally.states.iter().zip(&tally.votes))
        {
            match (state, known.decided.as_mut()) {
                (Some(state), Some(decided)) => {
                    if decided.state != *state {
                        known.history.change(decided.state, *state, now_ms);
                        decided.state = *state;
                        self.decided_version += 1;
                    }
                    decided.restored &= !votes.any();
                }
                (Some(state), None) => {
                    known.decided = Some(Decided {
                        state: *state,
                        restored: false,
                    });
                    known.history.changed_at_ms = now_ms;
                    if *state == HealthState::Down {
                        known.history.downs += 1;
                    }
                    self.decided_version += 1;
                }
                (None, _) => {}
            }
        }
        let health = HealthSnapshot::from_health(
            self.slots
                .iter()
                .zip(&self.known)
                .map(|(slot, known)| {
                    match (known.forced.or(slot.forced_in_config), known.decided) {
                        (Some(state), _) => EndpointHealth {
                            state,
                            source: HealthSource::Forced,
                        },
                        (None, Some(decided)) => EndpointHealth {
                            state: decided.state,
                            source: if decided.restored {
                                HealthSource::Restored
                            } else {
                                HealthSource::Observed
                            },
                        },
                        (None, None) => EndpointHealth {
                            state: HealthState::Up,
                            source: HealthSource::Assumed,
                        },
                    }
                })
                .collect(),
        );
        let ramp = self
            .slots
            .iter()
            .zip(&self.known)
            .map(|(slot, known)| {
                let since = known.ramp?;
                Some(ramp_share(now.saturating_sub(since), slot.slow_start).0)
            })
            .collect();
        let degraded = self
            .slots
            .iter()
            .zip(&self.known)
            .zip(health.endpoints())
            .map(|((slot, known), h)| {
                let observed = h.source != HealthSource::Forced && h.state.is_up();
                slot.degraded_weight.filter(|_| known.degraded && observed)
            })
            .collect();
        let health = health.with_ramp(ramp).with_degraded(degraded);
        let doubt = (0..self.slots.len())
            .map(|i| {
                let forced =
                    self.known[i].forced.is_some() || self.slots[i].forced_in_config.is_some();
                let soonest = if forced {
                    None
                } else {
                    self.doubt(i, &tally, now)
                };
                if let Some(d) = soonest.filter(|d| !d.is_zero()) {
                    wake = Some(wake.map_or(now + d, |w| w.min(now + d)));
                }
                soonest.map(|d| d.as_secs_f64().ceil().max(1.0) as u32)
            })
            .collect::<Vec<_>>();
        self.next_wake = wake;
        self.changed = false;
        // Once ready, a process stays ready (a reload keeps what it knew).
        self.ready = self.ready || self.compute_ready();
        self.last = Some(tally.clone());
        (health.with_doubt(doubt), tally)
    }

    /// Starts a slow start for every endpoint that came back up, ends those that are
    /// over or went down again.
    fn ramp(
        &mut self,
        decided: &[Option<HealthState>],
        states: &[Option<HealthState>],
        now: Duration,
    ) {
        for (i, (slot, known)) in self.slots.iter().zip(&mut self.known).enumerate() {
            if slot.slow_start.is_zero() || states[i] != Some(HealthState::Up) {
                known.ramp = None;
                continue;
            }
            if decided[i] == Some(HealthState::Down) {
                known.ramp = Some(now);
            }
            if known
                .ramp
                .is_some_and(|since| now.saturating_sub(since) >= slot.slow_start)
            {
                known.ramp = None;
            }
        }
    }

    /// How soon endpoint `i`'s state could change at the earliest, if it is in
    /// doubt: this process's probes short of `fall` or `rise`, votes split, a hold or
    /// a damping suppression that may end.
    fn doubt(&self, i: usize, tally: &Tally, now: Duration) -> Option<Duration> {
        let slot = &self.slots[i];
        let known = &self.known[i];
        let thresholds = slot.thresholds?;
        let mut soonest: Option<Duration> = None;
        let mut consider = |d: Duration| soonest = Some(soonest.map_or(d, |s| s.min(d)));
        if let Some(probe) = &known.local {
            if let Some(probes) = probe.machine.probes_to_change(&thresholds) {
                consider(slot.fast_interval * probes);
            }
            if let Some(until) = probe.machine.withheld_until(&thresholds) {
                consider(until.saturating_sub(now));
            }
        }
        if tally.votes[i].split() {
            consider(slot.fast_interval); // one more vantage point may tip it
        }
        if let Some(since) = known.ramp.filter(|_| !slot.slow_start.is_zero()) {
            let (_, next_step) = ramp_share(now.saturating_sub(since), slot.slow_start);
            consider(next_step); // the next slow-start step changes the answers
        }
        if let (Some(rules), Some(damper)) = (&slot.damping, &known.damper) {
            if let Some(until) = damper.suppressed_until(rules) {
                consider(until.saturating_sub(now));
            }
        }
        soonest
    }

    /// Flap damping of the decided states: every outage adds a penalty; a way back
    /// up is withheld while the endpoint is suppressed. Taking one out is never delayed.
    fn damp(
        &mut self,
        raw_before: &[Option<HealthState>],
        decided: &[Option<HealthState>],
        states: &mut [Option<HealthState>],
        now: Duration,
    ) {
        for (i, (slot, known)) in self.slots.iter().zip(&mut self.known).enumerate() {
            let Some(rules) = &slot.damping else {
                continue;
            };
            if known.damper.is_none() && states[i] != Some(HealthState::Down) {
                continue; // no outage yet: nothing to damp
            }
            let damper = known.damper.get_or_insert_with(Damper::default);
            // An outage, even while suppressed; a first verdict (nothing decided
            // before, not even restored) is no change of state and costs nothing.
            if raw_before[i] == Some(HealthState::Up) && states[i] == Some(HealthState::Down) {
                damper.on_down(now, rules);
            }
            let allowed = damper.allows_up(now, rules);
            if decided[i] == Some(HealthState::Down)
                && states[i] == Some(HealthState::Up)
                && !allowed
            {
                states[i] = Some(HealthState::Down);
            }
        }
    }

    /// The decided state's flap damping of an endpoint (None: damping off, or no
    /// outage yet).
    pub fn damping(&self, endpoint: EndpointIndex, now: Duration) -> Option<DampingState> {
        let slot = self.slots.get(endpoint.0 as usize)?;
        let rules = slot.damping.as_ref()?;
        let damper = self.known[endpoint.0 as usize].damper.as_ref()?;
        Some(DampingState {
            penalty: damper.penalty(now, rules),
            suppressed_until: damper.suppressed_until(rules),
        })
    }

    /// Fresh ballots: this process's (if it is a configured voter) and every
    /// configured remote vantage point whose report arrived within `staleness`, each
    /// with only the verdicts observed recently enough.
    /// Also returns when the first of the fresh verdicts and reports goes stale.
    fn ballots(&self, now: Duration) -> (Vec<Ballot>, Option<Duration>) {
        let mut ballots = Vec::with_capacity(self.remote.len() + 1);
        let wake = std::cell::Cell::new(None::<Duration>);
        let expires = |at: Duration| {
            wake.set(Some(wake.get().map_or(at, |w: Duration| w.min(at))));
        };
        let fresh = |slot: &Slot, at: Duration| {
            let fresh = now.saturating_sub(at) <= slot.fresh_for;
            if fresh {
                expires(at + slot.fresh_for + Duration::from_millis(1));
            }
            fresh
        };
        if self.local_votes {
            let verdicts: Vec<Option<HealthState>> = self
                .slots
                .iter()
                .zip(&self.known)
                .map(|(slot, known)| {
                    let probe = known.local.as_ref()?;
                    let (_, at) = probe.last.as_ref()?;
                    if fresh(slot, *at) {
                        probe.machine.verdict()
                    } else {
                        None
                    }
                })
                .collect();
            if verdicts.iter().any(Option::is_some) {
                let degraded = self
                    .known
                    .iter()
                    .zip(&verdicts)
                    .map(|(known, verdict)| {
                        verdict.is_some()
                            && known.local.as_ref().is_some_and(|p| p.machine.degraded())
                    })
                    .collect();
                ballots.push(Ballot {
                    name: self.local_name.clone(),
                    region: self.local_region,
                    verdicts,
                    degraded,
                });
            }
        }
        for (name, view) in &self.remote {
            if now.saturating_sub(view.received_at) > self.staleness {
                continue;
            }
            expires(view.received_at + self.staleness + Duration::from_millis(1));
            let Some(&region) = self.vantages.get(name) else {
                continue;
            };
            let verdicts: Vec<Option<HealthState>> = self
                .slots
                .iter()
                .zip(&view.indexed)
                .map(|(slot, verdict)| {
                    let verdict = verdict.as_ref()?;
                    let observed_at = view.observed_at(verdict)?;
                    (slot.thresholds.is_some() && fresh(slot, observed_at)).then_some(verdict.state)
                })
                .collect();
            let degraded = view
                .indexed
                .iter()
                .zip(&verdicts)
                .map(|(indexed, verdict)| {
                    verdict.is_some() && indexed.as_ref().is_some_and(|v| v.degraded)
                })
                .collect();
            // A vantage point whose every verdict is stale (its prober stalled) is
            // not heard, however often its reports arrive.
            if verdicts.iter().all(Option::is_none) {
                continue;
            }
            ballots.push(Ballot {
                name: name.clone(),
                region,
                verdicts,
                degraded,
            });
        }
        (ballots, wake.get())
    }

    /// Isolation as of the last decision.
    pub fn isolation(&self) -> Isolation {
        let Some(tally) = &self.last else {
            return Isolation::default();
        };
        let mut configured: BTreeSet<String> = self.vantages.keys().cloned().collect();
        if self.vantages.is_empty() {
            configured.insert(self.local_name.clone());
        }
        let usable: BTreeSet<&String> = tally.fresh.difference(&tally.partitioned).collect();
        Isolation {
            isolated: tally.isolated,
            needed: tally.needed,
            fresh: tally.fresh.iter().cloned().collect(),
            missing: configured
                .iter()
                .filter(|name| !usable.contains(name))
                .cloned()
                .collect(),
        }
    }

    /// The last tally, if a decision was made since the last adopt.
    pub fn last_tally(&self) -> Option<&Tally> {
        self.last.as_ref()
    }

    /// Whether a first decision is made: every probed endpoint has a decided or
    /// restored state, or a verdict of this process's own probes.
    pub fn ready(&self) -> bool {
        self.ready
    }

    fn compute_ready(&self) -> bool {
        self.slots
            .iter()
            .zip(&self.known)
            .filter(|(s, _)| s.thresholds.is_some())
            .all(|(_, k)| {
                k.decided.is_some()
                    || k.local
                        .as_ref()
                        .is_some_and(|p| p.last.is_some() && p.machine.verdict().is_some())
            })
    }

    /// This process's verdicts for its reports, with their age at `now`, each with the
    /// time a verdict on it stays fresh. The age is that of the last probe that voted:
    /// while the probes abstain it grows, and the reason says why.
    pub fn local_verdicts(&self, now: Duration) -> Vec<(Verdict, Duration)> {
        self.slots
            .iter()
            .zip(&self.known)
            .filter_map(|(slot, known)| {
                let probe = known.local.as_ref()?;
                let (outcome, at) = probe.last.as_ref()?;
                let reason = match &probe.abstained {
                    Some((abstention, _)) if probe.abstaining() => {
                        format!("abstained: {}", abstention.reason)
                    }
                    _ => outcome.reason.clone(),
                };
                let verdict = Verdict {
                    endpoint: slot.label.clone(),
                    state: probe.machine.verdict()?,
                    reason,
                    age_ms: now.saturating_sub(*at).as_millis() as u64,
                    // Filled in by the plane from its RTT averages.
                    rtt_us: None,
                    degraded: probe.machine.degraded(),
                };
                Some((verdict, slot.fresh_for))
            })
            .collect()
    }

    /// This process's probe of an endpoint, as of `now` (None: not probed here, or
    /// no probe finished yet).
    pub fn local_probe(
        &self,
        endpoint: EndpointIndex,
        now: Duration,
    ) -> Option<LocalProbeView<'_>> {
        let probe = self.known.get(endpoint.0 as usize)?.local.as_ref()?;
        let abstained = probe
            .abstained
            .as_ref()
            .map(|(outcome, at)| (outcome, now.saturating_sub(*at)))
            .filter(|(_, age)| *age <= self.staleness);
        if probe.last.is_none() && abstained.is_none() {
            return None;
        }
        Some(LocalProbeView {
            verdict: probe.machine.state(),
            last: probe.last.as_ref().map(|(outcome, _)| outcome),
            abstained,
            abstaining: probe.abstaining(),
            degraded: (probe.machine.degraded(), probe.machine.degraded_reason()),
        })
    }

    /// Every remote vantage point heard from: name, age of its last report, and its
    /// verdict and reason on `endpoint` (if any).
    pub fn remote_verdicts(
        &self,
        endpoint: EndpointIndex,
    ) -> impl Iterator<Item = (&str, HealthState, &str)> + '_ {
        let label = self
            .slots
            .get(endpoint.0 as usize)
            .map(|s| s.label.as_str());
        self.remote.iter().filter_map(move |(name, view)| {
            let verdict = view.verdicts.get(label?)?;
            Some((name.as_str(), verdict.state, verdict.reason.as_str()))
        })
    }

    /// Remote vantage points heard from: `(name, time since its last report, its
    /// clock minus ours at sending, in ms)`.
    pub fn remote_vantages(&self, now: Duration, now_ms: u64) -> Vec<(String, Duration, i64)> {
        self.remote
            .iter()
            .map(|(name, view)| {
                let age = now.saturating_sub(view.received_at);
                let sent_at_ours = now_ms.saturating_sub(age.as_millis() as u64);
                let skew = view.sent_at_ms as i64 - sent_at_ours as i64;
                (name.clone(), age, skew)
            })
            .collect()
    }

    /// A number that changes whenever a decided state (and so its history) does.
    pub fn decided_version(&self) -> u64 {
        self.decided_version
    }

    /// An endpoint's decided-state history (None before its first decision).
    pub fn history(&self, endpoint: EndpointIndex) -> Option<History> {
        let known = self.known.get(endpoint.0 as usize)?;
        known.decided.map(|_| known.history)
    }

    /// Decided states for the state file, with their damping as of `now`.
    pub fn decided_states(&self, now: Duration) -> BTreeMap<String, DecidedRecord> {
        self.slots
            .iter()
            .zip(&self.known)
            .filter_map(|(slot, known)| {
                let decided = known.decided?;
                let damper = known.damper.unwrap_or_default();
                let record = DecidedRecord {
                    state: decided.state,
                    history: known.history,
                    penalty: slot.damping.map_or(0.0, |r| damper.penalty(now, &r)),
                    suppressed: damper.is_suppressed(),
                };
                Some((slot.label.clone(), record))
            })
            .collect()
    }
}

impl History {
    /// Notes a change of the decided state from `from` to `to` at `now_ms`.
    fn change(&mut self, from: HealthState, to: HealthState, now_ms: u64) {
        if from == HealthState::Down {
            self.down_ms += now_ms.saturating_sub(self.changed_at_ms);
        }
        if to == HealthState::Down {
            self.downs += 1;
        }
        self.changes += 1;
        self.changed_at_ms = now_ms;
    }
}

/// Steps of a slow start: the share rises 10 %, 20 %, … 100 %.
const RAMP_STEPS: u32 = 10;

/// The slow-start share (permille) `elapsed` into a ramp of `length`, and the time
/// until the next step.
fn ramp_share(elapsed: Duration, length: Duration) -> (u16, Duration) {
    let step = length / RAMP_STEPS;
    if step.is_zero() {
        return (1000, Duration::ZERO);
    }
    let done = (elapsed.as_nanos() / step.as_nanos()) as u32;
    let share = ((done + 1).min(RAMP_STEPS) * 1000 / RAMP_STEPS) as u16;
    let next = step * (done + 1);
    (share, next.saturating_sub(elapsed))
}

/// This process's vantage name and region.
pub fn local_identity(config: &Config) -> (String, Option<RegionIndex>) {
    match config.health.vantage {
        Some(v) => {
            let vantage = &config.vantages[usize::from(v.0)];
            (vantage.name.clone(), vantage.region)
        }
        None => (LOCAL_VANTAGE.to_owned(), None),
    }
}

fn rules(config: &Config) -> Rules {
    Rules {
        configured: config.vantages.len().max(1) as u32,
        down_votes: config.health.down_votes,
        down_regions: config.health.down_regions,
        isolation: config.health.isolation,
    }
}

#[cfg(test)]
mod tests;
