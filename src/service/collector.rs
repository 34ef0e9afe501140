//! The service's part of `/metrics`: collectors over the published answers, the
//! health plane's counters, DNSSEC, the event journal, the admin listeners and
//! dnstap, read at scrape time (names in [`crate::telemetry::names`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tokio::sync::watch;

use super::plane::PlaneMetrics;
use crate::api::{EndpointStatus, Status};
use crate::dns::SharedSnapshot;
use crate::health::overrides::{Action, Target};
use crate::model::HealthState;
use crate::probe::reporter::unix_ms;
use crate::telemetry::events::EventLog;
use crate::telemetry::names;
use crate::telemetry::registry::{Kind, family, labelled, single, write_summary};

type Written = Result<(), std::fmt::Error>;

/// The published answers and the health plane.
#[derive(Debug)]
pub(crate) struct PlaneCollector {
    pub(crate) shared: SharedSnapshot,
    pub(crate) status: watch::Receiver<Arc<Status>>,
    pub(crate) plane: Arc<PlaneMetrics>,
}

impl Collector for PlaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Written {
        let status = self.status.borrow().clone();
        let e = &mut encoder;
        single(
            e,
            names::SNAPSHOT_GENERATION,
            "Answer snapshot generation.",
            Kind::Gauge,
            self.shared.load_full().generation,
        )?;
        family(e, names::BUILD_INFO, "The running build.", Kind::Gauge)?
            .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1u64)?;
        endpoints(e, &status)?;
        records(e, &status)?;
        overrides(e, &status)?;
        labelled(
            e,
            names::POOL_UP,
            "Pool health (1 up, 0 down).",
            Kind::Gauge,
            "pool",
            status.pools.iter().map(|p| (p.pool.as_str(), p.up)),
        )?;
        labelled(
            e,
            names::POOL_DIAL_RATIO,
            "The operator's traffic dial of each pool (ctl dial): the fraction of the answers it would get that it takes (1: no dial).",
            Kind::Gauge,
            "pool",
            status.pools.iter().map(|p| {
                (
                    p.pool.as_str(),
                    p.dial.map_or(1.0, |d| f64::from(d) / 100.0),
                )
            }),
        )?;
        labelled(
            e,
            names::VANTAGE_PARTITIONED,
            "Vantage points whose votes are ignored as partitioned.",
            Kind::Gauge,
            "vantage",
            status
                .vantages
                .iter()
                .map(|v| (v.name.as_str(), v.partitioned)),
        )?;
        labelled(
            e,
            names::VANTAGE_FRESH,
            "Vantage points with a fresh report.",
            Kind::Gauge,
            "vantage",
            status.vantages.iter().map(|v| (v.name.as_str(), v.fresh)),
        )?;
        plane(e, &self.plane, &status)
    }
}

/// Endpoints carry `pool` and `endpoint` (its name in the pool) as two labels.
fn endpoints(e: &mut DescriptorEncoder<'_>, status: &Status) -> Written {
    type Value = fn(&EndpointStatus) -> f64;
    let gauges: [(&str, &str, Value); 5] = [
        (
            names::ENDPOINT_UP,
            "Decided endpoint health (1 up, 0 down).",
            |e| f64::from(u8::from(e.state == HealthState::Up)),
        ),
        (
            names::ENDPOINT_DRAINED,
            "Endpoints an operator drained.",
            |e| f64::from(u8::from(e.drained)),
        ),
        (
            names::ENDPOINT_DEGRADED,
            "Endpoints up but degraded (slow or flaky): answered with their weight scaled by degraded_weight.",
            |e| f64::from(u8::from(e.degraded.is_some())),
        ),
        (
            names::ENDPOINT_SUPPRESSED,
            "Endpoints whose way back flap damping withholds.",
            |e| f64::from(u8::from(e.damping.as_ref().is_some_and(|d| d.suppressed))),
        ),
        (
            names::ENDPOINT_DAMPING_PENALTY,
            "Flap-damping penalty of the decided state.",
            |e| e.damping.as_ref().map_or(0.0, |d| d.penalty),
        ),
    ];
    for (name, help, value) in gauges {
        let mut family = family(e, name, help, Kind::Gauge)?;
        for endpoint in &status.endpoints {
            let (pool, name) = endpoint
                .endpoint
                .split_once('/')
                .unwrap_or(("", &endpoint.endpoint));
            family.sample(&[("pool", pool), ("endpoint", name)], value(endpoint))?;
        }
    }
    let mut rtts = family(
        e,
        names::ENDPOINT_RTT_SECONDS,
        "Round-trip time from a vantage point to an endpoint, smoothed over [health] rtt_window (latency steering).",
        Kind::Gauge,
    )?;
    for rtt in &status.rtts {
        let (pool, endpoint) = rtt.endpoint.split_once('/').unwrap_or(("", &rtt.endpoint));
        rtts.sample(
            &[
                ("vantage", rtt.vantage.as_str()),
                ("pool", pool),
                ("endpoint", endpoint),
            ],
            rtt.rtt_ms / 1000.0,
        )?;
    }
    Ok(())
}

/// Records: in an all-down mode, answered by another pool than their first, in
/// conflict, held by a lag gate.
fn records(e: &mut DescriptorEncoder<'_>, status: &Status) -> Written {
    let any_outcome = |e: &mut DescriptorEncoder<'_>, name: &str, help: &str, outcomes: &[&str]| {
        let mut family = family(e, name, help, Kind::Gauge)?;
        for record in &status.records {
            let on = record
                .answers
                .iter()
                .any(|a| outcomes.contains(&a.outcome.as_str()));
            let record_type = record.record_type.to_string();
            family.sample(&[("record", &record.name), ("type", &record_type)], on)?;
        }
        Ok::<_, std::fmt::Error>(())
    };
    any_outcome(
        e,
        names::RECORD_ALL_DOWN,
        "Records answering in an all-down mode (fail-open, fallback, nodata) for some clients.",
        &["fail-open", "fallback", "nodata"],
    )?;
    let mut failed_over = family(
        e,
        names::RECORD_FAILED_OVER,
        "Records answered by another pool than their first, or degraded, for some clients, by cause: health (the pools before are down) or operator (a manual failover).",
        Kind::Gauge,
    )?;
    for record in &status.records {
        let record_type = record.record_type.to_string();
        for cause in crate::policy::FailoverCause::ALL {
            let on = record.answers.iter().any(|a| {
                matches!(a.outcome.as_str(), "failover" | "degraded") && a.cause == Some(cause)
            });
            let cause = cause.to_string();
            failed_over.sample(
                &[
                    ("record", &record.name),
                    ("type", &record_type),
                    ("cause", &cause),
                ],
                on,
            )?;
        }
    }
    any_outcome(
        e,
        names::RECORD_PRIMARY_CONFLICT,
        "Primary records with two or more endpoints claiming primary (split brain).",
        &["conflict"],
    )?;
    let mut held = family(
        e,
        names::RECORD_GATE_HELD,
        "Failover records with a pool their lag gate holds (traffic does not move to it).",
        Kind::Gauge,
    )?;
    for record in &status.records {
        let on = record.answers.iter().any(|a| !a.held_by_gate.is_empty());
        let record_type = record.record_type.to_string();
        held.sample(&[("record", &record.name), ("type", &record_type)], on)?;
    }
    let mut overloaded = family(
        e,
        names::RECORD_OVERLOADED,
        "Spill-over records whose pools are all at their limit (capacity x max_load) for some clients: the rest is answered by the plain policy.",
        Kind::Gauge,
    )?;
    for record in &status.records {
        let on = record.answers.iter().any(|a| a.overloaded);
        let record_type = record.record_type.to_string();
        overloaded.sample(&[("record", &record.name), ("type", &record_type)], on)?;
    }
    Ok(())
}

/// Operator overrides: in force by action, each one's age, the warning threshold.
fn overrides(e: &mut DescriptorEncoder<'_>, status: &Status) -> Written {
    labelled(
        e,
        names::OVERRIDES_ACTIVE,
        "Operator overrides in force, by action.",
        Kind::Gauge,
        "action",
        ["drain", "force_up", "force_down", "failover", "dial"].map(|action| {
            let count = status
                .overrides
                .iter()
                .filter(|o| o.action.as_ref().is_some_and(|a| action_name(a) == action))
                .count();
            (action, count as u64)
        }),
    )?;
    let now_ms = unix_ms();
    let mut ages = family(
        e,
        names::OVERRIDE_AGE,
        "Seconds each operator override has been in force, by kind (endpoint, pool, record), target as ctl names it (POOL/NAME, POOL, a record name; type for a record of one type) and action.",
        Kind::Gauge,
    )?;
    for entry in &status.overrides {
        let Some(action) = &entry.action else {
            continue;
        };
        let (kind, target, record_type) = match &entry.target {
            Target::Endpoint(label) => ("endpoint", label.as_str(), None),
            Target::Pool(pool) => ("pool", pool.as_str(), None),
            Target::Record { name, record_type } => ("record", name.as_str(), *record_type),
            // Expanded into concrete targets before it is held; kept for completeness.
            Target::Region(region) => ("region", region.as_str(), None),
        };
        let age = now_ms.saturating_sub(entry.at_ms) as f64 / 1000.0;
        let action = action_name(action);
        match record_type.map(|t| t.to_string()) {
            Some(t) => ages.sample(
                &[
                    ("kind", kind),
                    ("target", target),
                    ("type", &t),
                    ("action", action),
                ],
                age,
            )?,
            None => ages.sample(
                &[("kind", kind), ("target", target), ("action", action)],
                age,
            )?,
        }
    }
    single(
        e,
        names::OVERRIDE_WARN_AFTER,
        "[health] override_warn_after: an override in force longer is called out (0: never).",
        Kind::Gauge,
        status.override_warn_after_ms as f64 / 1000.0,
    )
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Drain => "drain",
        Action::ForceUp => "force_up",
        Action::ForceDown => "force_down",
        Action::Failover(_) => "failover",
        Action::Dial(_) => "dial",
    }
}

/// The plane's counters: reports, syncs, probes, isolation, reloads, latencies.
fn plane(e: &mut DescriptorEncoder<'_>, plane: &PlaneMetrics, status: &Status) -> Written {
    inputs(e, plane)?;
    probes(e, plane)?;
    decisions(e, plane, status)
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// What the plane took in: reports, peers' override entries and syncs, state saves.
fn inputs(e: &mut DescriptorEncoder<'_>, plane: &PlaneMetrics) -> Written {
    labelled(
        e,
        names::REPORTS_RECEIVED_TOTAL,
        "Reports from vantage points by result.",
        Kind::Counter,
        "result",
        std::iter::once(("accepted", load(&plane.reports_accepted))).chain(
            plane
                .reports_rejected
                .iter()
                .map(|(label, count)| (*label, load(count))),
        ),
    )?;
    labelled(
        e,
        names::OVERRIDE_ENTRIES_REFUSED_TOTAL,
        "Override entries from peers or the state file not taken, by reason.",
        Kind::Counter,
        "reason",
        plane
            .entries_refused
            .iter()
            .map(|(label, count)| (*label, load(count))),
    )?;
    single(
        e,
        names::STATE_SAVE_FAILURES_TOTAL,
        "State-file saves that failed (a change that could not be saved was refused).",
        Kind::Counter,
        load(&plane.state_save_failures),
    )?;
    labelled(
        e,
        names::OVERRIDE_SYNCS_RECEIVED_TOTAL,
        "Override syncs from peer servers by result.",
        Kind::Counter,
        "result",
        std::iter::once(("accepted", load(&plane.override_syncs_accepted))).chain(
            plane
                .override_syncs_refused
                .iter()
                .map(|(label, count)| (*label, load(count))),
        ),
    )?;
    Ok(())
}

/// This vantage point's probes and the reports it sends.
fn probes(e: &mut DescriptorEncoder<'_>, plane: &PlaneMetrics) -> Written {
    labelled(
        e,
        names::PROBES_TOTAL,
        "Probes run by this vantage point.",
        Kind::Counter,
        "result",
        [
            ("ok", load(&plane.probes_ok)),
            ("failed", load(&plane.probes_failed)),
        ],
    )?;
    labelled(
        e,
        names::PROBE_ABSTENTIONS_TOTAL,
        "Probes of this vantage point that failed for a local fault and abstained (no vote), by reason.",
        Kind::Counter,
        "reason",
        crate::health::LocalFault::ALL
            .iter()
            .zip(&plane.abstentions)
            .map(|(fault, count)| (fault.label(), load(count))),
    )?;
    single(
        e,
        names::VANTAGE_IMPAIRED,
        "Whether this process's probes abstained on an endpoint (a local fault) within the last staleness.",
        Kind::Gauge,
        plane.impaired.load(Ordering::Relaxed),
    )?;
    let servers = plane.reporter.snapshot();
    let mut sent = family(
        e,
        names::REPORTS_SENT_TOTAL,
        "Reports pushed to servers, by server and result.",
        Kind::Counter,
    )?;
    for (server, stats) in &servers {
        for (result, count) in [
            ("delivered", &stats.delivered),
            ("refused", &stats.refused),
            ("failed", &stats.failed),
        ] {
            sent.sample(&[("server", server), ("result", result)], load(count))?;
        }
    }
    labelled(
        e,
        names::REPORT_SERVER_REACHABLE,
        "Whether the last report to the server was delivered.",
        Kind::Gauge,
        "server",
        servers
            .iter()
            .map(|(server, stats)| (server.as_str(), stats.reachable.load(Ordering::Relaxed))),
    )?;
    Ok(())
}

/// Quorum and isolation, reloads, decision and probe latencies, readiness.
fn decisions(e: &mut DescriptorEncoder<'_>, plane: &PlaneMetrics, status: &Status) -> Written {
    if let Some(isolation) = &status.isolation {
        single(
            e,
            names::ISOLATED,
            "Whether this server hears fewer vantage points than a quorum.",
            Kind::Gauge,
            isolation.isolated,
        )?;
        single(
            e,
            names::QUORUM_NEEDED,
            "Votes needed to change an endpoint's state.",
            Kind::Gauge,
            u64::from(isolation.needed),
        )?;
        single(
            e,
            names::ISOLATIONS_TOTAL,
            "Times this server became isolated.",
            Kind::Counter,
            load(&plane.isolations),
        )?;
        single(
            e,
            names::PRIMARY_CONFLICTS_TOTAL,
            "Times two or more endpoints of a primary record began to claim primary.",
            Kind::Counter,
            load(&plane.primary_conflicts),
        )?;
    }
    labelled(
        e,
        names::CONFIG_RELOADS_TOTAL,
        "Configuration reloads by result.",
        Kind::Counter,
        "result",
        [
            ("ok", load(&plane.reloads_ok)),
            ("failed", load(&plane.reloads_failed)),
        ],
    )?;
    let reload = status.last_reload.as_ref();
    single(
        e,
        names::CONFIG_LAST_RELOAD_SUCCESSFUL,
        "Whether the last reload was taken (1 before any reload: the configuration started with).",
        Kind::Gauge,
        reload.is_none_or(|r| r.ok),
    )?;
    single(
        e,
        names::CONFIG_LAST_RELOAD_TIMESTAMP,
        "When the last reload was tried (Unix time; 0: never).",
        Kind::Gauge,
        reload.map_or(0.0, |r| r.at_ms as f64 / 1000.0),
    )?;
    family(
        e,
        names::DECISION_LATENCY,
        "Time from an input (probe verdict, report, override) to the published answers.",
        Kind::Histogram,
    )?
    .histogram(&[], plane.decision_histogram.read())?;
    family(
        e,
        names::PROBE_DURATION,
        "Probes of this vantage point, by how long they took.",
        Kind::Histogram,
    )?
    .histogram(&[], plane.probe_latency.read())?;
    single(
        e,
        names::READY,
        "Whether the first health decision is made.",
        Kind::Gauge,
        plane.ready.load(Ordering::Relaxed),
    )?;
    single(
        e,
        names::REPORT_BYTES_TOTAL,
        "Bytes of report bodies received.",
        Kind::Counter,
        load(&plane.report_bytes),
    )?;
    single(
        e,
        names::ENDPOINT_CHANGES_TOTAL,
        "Decided endpoint state changes.",
        Kind::Counter,
        load(&plane.health_changes),
    )
}

/// The recent decision latencies as a summary, which `prometheus-client` has no type
/// for: written after the registry's text.
pub(crate) fn write_decision_summary(out: &mut String, plane: &PlaneMetrics) {
    let (quantiles, count, sum) = plane.decision_latency.summary(&[0.5, 0.9, 0.99, 1.0]);
    write_summary(
        out,
        names::DECISION_LATENCY_RECENT,
        "The same over the last 4096 publications, as exact quantiles.",
        &quantiles,
        sum,
        count,
    );
}

/// When each signed zone's signatures were made and when they expire: a refresh that
/// keeps failing shows as an expiry drawing near.
#[derive(Debug)]
pub(crate) struct DnssecCollector(pub(crate) SharedSnapshot);

impl Collector for DnssecCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Written {
        let snapshot = self.0.load_full();
        let signed: Vec<(String, &crate::dnssec::SignedZone)> = snapshot
            .zones
            .zones()
            .iter()
            .enumerate()
            .filter_map(|(i, zone)| Some((zone.origin_text(), snapshot.signed_zone(i)?)))
            .collect();
        // Declared even with nothing signed, like the other labelled metrics.
        type Gauge = (
            &'static str,
            &'static str,
            fn(&crate::dnssec::SignedZone) -> u64,
        );
        let gauges: [Gauge; 2] = [
            (
                names::DNSSEC_SIGNED,
                "Unix time the zone's signatures were made.",
                |s| s.signed_at,
            ),
            (
                names::DNSSEC_EXPIRATION,
                "Unix time the zone's signatures expire.",
                |s| u64::from(s.window.expiration),
            ),
        ];
        for (name, help, value) in gauges {
            labelled(
                &mut encoder,
                name,
                help,
                Kind::Gauge,
                "zone",
                signed.iter().map(|(zone, s)| (zone.as_str(), value(s))),
            )?;
        }
        Ok(())
    }
}

/// Events the journal could not keep.
#[derive(Debug)]
pub(crate) struct JournalCollector(pub(crate) Arc<EventLog>);

impl Collector for JournalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Written {
        single(
            &mut encoder,
            names::EVENT_JOURNAL_DROPPED_TOTAL,
            "Events not written to the event journal (queue full, a write failed, or handed to a replacing process).",
            Kind::Counter,
            self.0.journal_dropped(),
        )
    }
}

/// The admin listeners' connections: open now, refused or closed early by reason.
#[derive(Debug)]
pub(crate) struct AdminCollector(pub(crate) Arc<crate::admin::ListenerStats>);

impl Collector for AdminCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Written {
        labelled(
            &mut encoder,
            names::ADMIN_CONNECTIONS_REFUSED_TOTAL,
            "Admin connections refused or closed early, by reason (limit, source_limit, evicted, handshake_timeout, handshake_failed, header_timeout, idle_timeout).",
            Kind::Counter,
            "reason",
            self.0.refusals(),
        )?;
        single(
            &mut encoder,
            names::ADMIN_CONNECTIONS_OPEN,
            "Admin connections open now.",
            Kind::Gauge,
            self.0.open(),
        )
    }
}

/// dnstap's messages and consumer.
#[derive(Debug)]
pub(crate) struct DnstapCollector(pub(crate) crate::dns::dnstap::Dnstap);

impl Collector for DnstapCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Written {
        let stats = self.0.stats();
        single(
            &mut encoder,
            names::DNSTAP_WRITTEN_TOTAL,
            "dnstap messages written to the consumer.",
            Kind::Counter,
            stats.written,
        )?;
        single(
            &mut encoder,
            names::DNSTAP_DROPPED_TOTAL,
            "dnstap messages dropped (queue full or no consumer).",
            Kind::Counter,
            stats.dropped,
        )?;
        single(
            &mut encoder,
            names::DNSTAP_CONNECTED,
            "Whether a dnstap consumer is connected.",
            Kind::Gauge,
            stats.connected,
        )
    }
}
