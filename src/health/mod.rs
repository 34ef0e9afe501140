//! Endpoint health as the answer path sees it: one state per endpoint.
//!
//! A [`HealthSnapshot`] is an immutable value. Whatever decides health (forced states in
//! the config, probes and vantage-point quorum) produces a new snapshot, and the DNS
//! layer rebuilds its answers from it.

pub(crate) mod board;
pub(crate) mod damping;
pub(crate) mod degraded;
pub(crate) mod machine;
pub(crate) mod overrides;
pub(crate) mod peering;
pub(crate) mod persist;
pub(crate) mod published;
pub(crate) mod quorum;
pub(crate) mod report;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::overrides::Percent;
use crate::config::Config;
use crate::model::{EndpointIndex, HealthState, PoolIndex, RecordIndex};

/// What one probe saw.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ProbeOutcome {
    /// Whether the endpoint passed.
    pub ok: bool,
    /// Time the probe took.
    pub latency: Duration,
    /// Short explanation ("ok", "connect refused", "status 503", ...).
    pub reason: String,
    /// Some: the probe could not be made for a reason of this prober's own (see
    /// [`LocalFault`]) — an abstention, not a vote: `ok` means nothing then, and
    /// `reason` says what failed ("local fault: too many open files (EMFILE)").
    pub fault: Option<LocalFault>,
}

impl ProbeOutcome {
    /// A vote: the endpoint passed (`ok`) or failed, for `reason`.
    pub(crate) fn vote(ok: bool, latency: Duration, reason: String) -> Self {
        Self {
            ok,
            latency,
            reason,
            fault: None,
        }
    }

    /// An abstention for a local `fault`; `reason` is the full text shown
    /// ("local fault: …").
    pub(crate) fn abstention(fault: LocalFault, latency: Duration, reason: String) -> Self {
        Self {
            ok: false,
            latency,
            reason,
            fault: Some(fault),
        }
    }
}

/// Why a probe could not be made, when the cause lies with this prober and not with
/// the endpoint: its outcome says nothing about the endpoint, so it does not vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum LocalFault {
    /// No file descriptor left (EMFILE, ENFILE).
    FdExhausted,
    /// No kernel memory or buffer space (ENOBUFS, ENOMEM).
    NoBuffers,
    /// The configured source address is not on this host (EADDRNOTAVAIL).
    NoSourceAddress,
    /// No route to the endpoint in the local routing table (ENETUNREACH from
    /// connect, with no route found locally either).
    NoRoute,
    /// A local firewall refused the packet (EPERM, EACCES).
    LocalFirewall,
    /// The exec check's program could not be started (missing, not executable, no
    /// fork or pipe).
    SpawnFailed,
    /// The prober's own client could not be set up (TLS CA file unreadable, a
    /// request that cannot be built).
    ClientSetup,
}

impl LocalFault {
    /// Every fault, in label order of the metrics.
    pub(crate) const ALL: [Self; 7] = [
        Self::FdExhausted,
        Self::NoBuffers,
        Self::NoSourceAddress,
        Self::NoRoute,
        Self::LocalFirewall,
        Self::SpawnFailed,
        Self::ClientSetup,
    ];

    /// Metric label (`failoverd_probe_abstentions_total{reason}`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::FdExhausted => "fd_exhausted",
            Self::NoBuffers => "no_buffers",
            Self::NoSourceAddress => "no_source_address",
            Self::NoRoute => "no_route",
            Self::LocalFirewall => "local_firewall",
            Self::SpawnFailed => "spawn_failed",
            Self::ClientSetup => "client_setup",
        }
    }
}

/// Why an endpoint has its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum HealthSource {
    /// Forced by the operator (config `force`, or the admin API).
    Forced,
    /// Nothing has been observed; the default applies.
    Assumed,
    /// Restored at start-up (state file or peers), not yet confirmed by probes.
    Restored,
    /// Decided from probe verdicts.
    Observed,
}

/// Health of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct EndpointHealth {
    /// Up or down.
    pub state: HealthState,
    /// Why.
    pub source: HealthSource,
}

/// Health of every endpoint of a configuration, indexed by [`EndpointIndex`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct HealthSnapshot {
    endpoints: Vec<EndpointHealth>,
    /// Per endpoint, whole seconds until its state could change at the earliest, while
    /// it is in doubt (empty: nothing in doubt). Answers that depend on it carry no
    /// longer a TTL.
    doubt: Vec<Option<u32>>,
    /// Per endpoint, its slow-start share of answers in permille (empty: none ramping).
    ramp: Vec<Option<u16>>,
    /// Per endpoint, its weight factor in permille while degraded (empty: none).
    degraded: Vec<Option<u16>>,
    /// Per endpoint, drained by an operator at run time (empty: none).
    drained: Vec<bool>,
    /// Per record, the pool an operator failed it over to (empty: none).
    pins: Vec<Option<PoolIndex>>,
    /// Per pool, the operator's traffic dial (empty: none).
    dials: Vec<Option<Percent>>,
    /// Per `primary` record, the last primary its checks agreed on (empty: none);
    /// kept by the health plane (see [`crate::policy::primary`]).
    primaries: Vec<Option<EndpointIndex>>,
    /// Per latency record, the pool answered first per client region slot (see
    /// [`crate::policy::latency`]; empty: none chosen).
    latency: Vec<Vec<Option<PoolIndex>>>,
}

impl HealthSnapshot {
    /// Every endpoint up unless forced otherwise in the config.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn from_config(config: &Config) -> Self {
        Self {
            endpoints: config
                .endpoints
                .iter()
                .map(|e| match e.forced {
                    Some(state) => EndpointHealth {
                        state,
                        source: HealthSource::Forced,
                    },
                    None => EndpointHealth {
                        state: HealthState::Up,
                        source: HealthSource::Assumed,
                    },
                })
                .collect(),
            doubt: Vec::new(),
            ramp: Vec::new(),
            degraded: Vec::new(),
            drained: Vec::new(),
            pins: Vec::new(),
            dials: Vec::new(),
            primaries: Vec::new(),
            latency: Vec::new(),
        }
    }

    /// A snapshot from explicit per-endpoint health.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn from_health(endpoints: Vec<EndpointHealth>) -> Self {
        Self {
            endpoints,
            doubt: Vec::new(),
            ramp: Vec::new(),
            degraded: Vec::new(),
            drained: Vec::new(),
            pins: Vec::new(),
            dials: Vec::new(),
            primaries: Vec::new(),
            latency: Vec::new(),
        }
    }

    /// The same health, with the seconds until each endpoint's state could change at
    /// the earliest (None: not in doubt), indexed by endpoint.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn with_doubt(mut self, doubt: Vec<Option<u32>>) -> Self {
        self.doubt = if doubt.iter().all(Option::is_none) {
            Vec::new()
        } else {
            doubt
        };
        self
    }

    /// The same health, with each endpoint's slow-start share in permille (None: full).
    pub(crate) fn with_ramp(mut self, ramp: Vec<Option<u16>>) -> Self {
        self.ramp = if ramp.iter().all(Option::is_none) {
            Vec::new()
        } else {
            ramp
        };
        self
    }

    /// The same health, with each degraded endpoint's weight factor in permille
    /// (None: not degraded).
    pub(crate) fn with_degraded(mut self, degraded: Vec<Option<u16>>) -> Self {
        self.degraded = if degraded.iter().all(Option::is_none) {
            Vec::new()
        } else {
            degraded
        };
        self
    }

    /// The weight factor in permille of a degraded endpoint (None: not degraded).
    pub(crate) fn degraded(&self, endpoint: EndpointIndex) -> Option<u16> {
        self.degraded.get(endpoint.0 as usize).copied().flatten()
    }

    /// The same health, with the operator's drains (per endpoint) and manual failovers
    /// (per record).
    pub(crate) fn with_overrides(
        mut self,
        drained: Vec<bool>,
        pins: Vec<Option<PoolIndex>>,
    ) -> Self {
        self.drained = if drained.iter().any(|d| *d) {
            drained
        } else {
            Vec::new()
        };
        self.pins = if pins.iter().any(Option::is_some) {
            pins
        } else {
            Vec::new()
        };
        self
    }

    /// The same health, with the operator's traffic dials (per pool; None: none).
    pub(crate) fn with_dials(mut self, dials: Vec<Option<Percent>>) -> Self {
        self.dials = if dials.iter().any(Option::is_some) {
            dials
        } else {
            Vec::new()
        };
        self
    }

    /// The operator's traffic dial of a pool (None: none, all it would get).
    pub(crate) fn dial(&self, pool: PoolIndex) -> Option<Percent> {
        self.dials.get(pool.0 as usize).copied().flatten()
    }

    /// The same health, with each record's last agreed primary (None: none known).
    pub(crate) fn with_primaries(mut self, primaries: Vec<Option<EndpointIndex>>) -> Self {
        self.primaries = if primaries.iter().any(Option::is_some) {
            primaries
        } else {
            Vec::new()
        };
        self
    }

    /// The same health, with each latency record's pool per client region slot.
    pub(crate) fn with_latency(mut self, latency: Vec<Vec<Option<PoolIndex>>>) -> Self {
        self.latency = if latency.iter().flatten().any(Option::is_some) {
            latency
        } else {
            Vec::new()
        };
        self
    }

    /// The pool a latency record answers first for clients of region slot `slot`.
    pub(crate) fn latency_choice(&self, record: RecordIndex, slot: usize) -> Option<PoolIndex> {
        self.latency
            .get(record.0 as usize)
            .and_then(|r| r.get(slot))
            .copied()
            .flatten()
    }

    /// The last primary a `primary` record's checks agreed on.
    pub(crate) fn last_primary(&self, record: RecordIndex) -> Option<EndpointIndex> {
        self.primaries.get(record.0 as usize).copied().flatten()
    }

    /// Whether an operator drained the endpoint at run time.
    pub(crate) fn drained(&self, endpoint: EndpointIndex) -> bool {
        self.drained
            .get(endpoint.0 as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The pool an operator failed a record over to.
    pub(crate) fn pin(&self, record: RecordIndex) -> Option<PoolIndex> {
        self.pins.get(record.0 as usize).copied().flatten()
    }

    /// Whether an operator forced the endpoint down (config `force` or at run time):
    /// it is never answered, not even in fail-open.
    pub(crate) fn forced_down(&self, endpoint: EndpointIndex) -> bool {
        self.get(endpoint)
            .is_some_and(|h| h.source == HealthSource::Forced && h.state == HealthState::Down)
    }

    /// The endpoint's share of answers in permille (1000 unless on a slow start).
    pub(crate) fn share(&self, endpoint: EndpointIndex) -> u16 {
        self.ramp
            .get(endpoint.0 as usize)
            .copied()
            .flatten()
            .unwrap_or(1000)
    }

    /// Seconds until the endpoint's state could change at the earliest, if it is in
    /// doubt.
    pub(crate) fn doubt(&self, endpoint: EndpointIndex) -> Option<u32> {
        self.doubt.get(endpoint.0 as usize).copied().flatten()
    }

    /// Every endpoint's health, indexed by endpoint.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn endpoints(&self) -> &[EndpointHealth] {
        &self.endpoints
    }

    /// A snapshot from explicit states (tests, tools).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn from_states(states: impl IntoIterator<Item = HealthState>) -> Self {
        Self {
            endpoints: states
                .into_iter()
                .map(|state| EndpointHealth {
                    state,
                    source: HealthSource::Observed,
                })
                .collect(),
            doubt: Vec::new(),
            ramp: Vec::new(),
            degraded: Vec::new(),
            drained: Vec::new(),
            pins: Vec::new(),
            dials: Vec::new(),
            primaries: Vec::new(),
            latency: Vec::new(),
        }
    }

    /// State of an endpoint (unknown endpoints count as up: never fail on missing data).
    pub(crate) fn state(&self, endpoint: EndpointIndex) -> HealthState {
        self.endpoints
            .get(endpoint.0 as usize)
            .map_or(HealthState::Up, |h| h.state)
    }

    /// Full health record of an endpoint.
    pub(crate) fn get(&self, endpoint: EndpointIndex) -> Option<&EndpointHealth> {
        self.endpoints.get(endpoint.0 as usize)
    }

    /// Returns a copy with one endpoint's health replaced.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn with(&self, endpoint: EndpointIndex, health: EndpointHealth) -> Self {
        let mut next = self.clone();
        if let Some(slot) = next.endpoints.get_mut(endpoint.0 as usize) {
            *slot = health;
        }
        next
    }
}
