//! The Route 53 sync agent against moto in server mode (one server per test),
//! behind `tests/support/moto_fault.py`, which injects the failures moto lacks
//! (Throttling, PriorRequestNotComplete, atomic InvalidChangeBatch, PENDING).
//!
//! moto's gaps the tests respect: set identifiers are unique in the zone (moto
//! deletes by set identifier alone), page sizes are at least the largest set of one
//! name and type (moto's pagination ignores NextRecordIdentifier), names are lower
//! case, and nothing relies on moto's DELETE matching, atomicity or change status.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use failoverd::testing::health::{EndpointHealth, HealthSnapshot, HealthSource};
use failoverd::testing::model::{EndpointIndex, HealthState};
use failoverd::testing::sync::Plan;
use failoverd::testing::sync::agent::AgentError;
use failoverd::testing::sync::apply::ApplyError;
use failoverd::testing::sync::plan::{HealthCheckChange, Refusal};
use support::moto::{
    Moto, Workspace, agent_with, assert_converges, create_zone, eventually, fast_options,
    put_foreign, reconcile_converges,
};
use support::require;

const ZONE: &str = "gslb.test.";

/// A configuration for `gslb.test.` pointing at `moto`, fast limits for tests.
fn config(moto: &Moto, sync_static: bool, body: &str) -> String {
    format!(
        r#"version = 1
[zones]
directory = "zones"

[route53]
endpoint_url = "{url}"
owner_id = "it"
max_requests_per_second = 100
burst = 1000
debounce = "50ms"
change_timeout = "5s"
sync_interval = "1h"
zones = [ {{ zone = "{ZONE}", sync_static = {sync_static} }} ]

{body}
"#,
        url = moto.url()
    )
}

/// Two pools of two endpoints, a failover record and a weighted record: 10 owned
/// record sets and 4 health checks once applied.
fn base(eu: &str, us: &str, www_pools: &str, api_ttl: u32) -> String {
    format!(
        r#"
[checks.web]
type = "http"
path = "/health"
route53 = {{ request_interval = 30, failure_threshold = 3 }}

[pools.eu]
check = "web"
endpoints = [ {eu} ]

[pools.us]
check = "web"
endpoints = [ {us} ]

[[records]]
name = "www.gslb.test."
type = "A"
ttl = 30
policy = "failover"
pools = {www_pools}

[[records]]
name = "api.gslb.test."
type = "A"
ttl = {api_ttl}
policy = "weighted"
pools = ["eu", "us"]
"#
    )
}

const EU: &str =
    r#"{ address = "192.0.2.10", name = "eu-1" }, { address = "192.0.2.11", name = "eu-2" }"#;
const US: &str = r#"{ address = "203.0.113.10", name = "us-1" }, { address = "203.0.113.11", name = "us-2", weight = 3 }"#;
const POOLS: &str = r#"["eu", "us"]"#;

/// The plan's record changes (markers left out) as "action key" lines.
fn summary(plan: &Plan) -> Vec<String> {
    plan.zones
        .iter()
        .flat_map(|z| z.changes.iter())
        .filter(|c| !c.is_marker())
        .map(|c| format!("{} {}", c.action_name(), c.key()))
        .collect()
}

fn check_summary(plan: &Plan) -> Vec<String> {
    plan.health_checks
        .iter()
        .map(|c| match c {
            HealthCheckChange::Create { key, .. } => format!("create {key}"),
            HealthCheckChange::Update { key, .. } => format!("update {key}"),
            HealthCheckChange::Delete { key, .. } => {
                format!("delete {}", key.as_deref().unwrap_or("-"))
            }
        })
        .collect()
}

fn health(config: &failoverd::testing::config::Config) -> HealthSnapshot {
    HealthSnapshot::from_config(config)
}

/// `healthy` with both eu endpoints (the first two) observed down.
fn eu_down(healthy: &HealthSnapshot) -> HealthSnapshot {
    let down = EndpointHealth {
        state: HealthState::Down,
        source: HealthSource::Observed,
    };
    healthy
        .with(EndpointIndex(0), down)
        .with(EndpointIndex(1), down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_replan_is_empty_and_apply_is_idempotent() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    let workspace = Workspace::new(ZONE, "");
    let (cfg, zones) = workspace.load(&config(&moto, false, &base(EU, US, POOLS, 30)));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;

    let plan = agent.plan(&health(&cfg), false).await.expect("plan");
    assert_eq!(
        plan.zones[0].counts(),
        (10, 0, 0),
        "{}",
        plan.render_table()
    );
    assert_eq!(check_summary(&plan).len(), 4);
    let report = agent.apply(&plan).await.expect("apply");
    assert!(report.is_complete(), "{}", report.summary());
    assert_eq!(report.changes_applied, 20, "10 record sets + 10 markers");
    assert_eq!(report.health_checks_created, 4);

    // What Route 53 holds, read with a plain SDK client.
    let primary = support::moto::records(&sdk, &zone_id)
        .await
        .into_iter()
        .find(|r| r.set_identifier() == Some("www A primary"))
        .expect("PRIMARY record");
    let alias = primary.alias_target().expect("alias");
    assert_eq!(alias.dns_name(), "_pool-eu.www.gslb.test.");
    assert!(alias.evaluate_target_health());
    let weighted = support::moto::records(&sdk, &zone_id)
        .await
        .into_iter()
        .find(|r| r.set_identifier() == Some("api A us/us-2"))
        .expect("weighted record");
    assert_eq!(weighted.weight(), Some(3));
    assert!(weighted.health_check_id().is_some());

    // Re-plan: nothing to do. Apply again: no second change.
    assert_converges(&agent, &health(&cfg)).await;
    let calls_before = agent.metrics().snapshot();
    let run = agent
        .reconcile(&health(&cfg), false)
        .await
        .expect("reconcile");
    assert!(run.applied.is_none());
    assert_eq!(
        agent.metrics().snapshot().changes_applied,
        calls_before.changes_applied
    );
    assert!(agent.metrics().last_success_seconds() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_give_exactly_the_expected_changes() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    let workspace = Workspace::new(ZONE, "");
    let apply = |body: String| {
        let (cfg, zones) = workspace.load(&config(&moto, false, &body));
        async move {
            let agent = agent_with(cfg.clone(), zones, fast_options()).await;
            let plan = agent.plan(&health(&cfg), false).await.expect("plan");
            (agent, plan, cfg)
        }
    };
    let (agent, plan, _) = apply(base(EU, US, POOLS, 30)).await;
    agent.apply(&plan).await.expect("initial apply");

    // Add an endpoint: one record set per record using the pool, one health check.
    let eu3 = format!(r#"{EU}, {{ address = "192.0.2.12", name = "eu-3" }}"#);
    let (agent, plan, _) = apply(base(&eu3, US, POOLS, 30)).await;
    assert_eq!(
        summary(&plan),
        [
            "create _pool-eu.www.gslb.test. A [_pool-eu.www A eu/eu-3]",
            "create api.gslb.test. A [api A eu/eu-3]",
        ]
    );
    assert_eq!(check_summary(&plan), ["create eu/eu-3"]);
    assert!(agent.apply(&plan).await.expect("apply").is_complete());

    // Remove it again: the same record sets and its health check go.
    let (agent, plan, _) = apply(base(EU, US, POOLS, 30)).await;
    assert_eq!(
        summary(&plan),
        [
            "delete _pool-eu.www.gslb.test. A [_pool-eu.www A eu/eu-3]",
            "delete api.gslb.test. A [api A eu/eu-3]",
        ]
    );
    assert_eq!(check_summary(&plan), ["delete eu/eu-3"]);
    assert!(agent.apply(&plan).await.expect("apply").is_complete());

    // Change a weight: one weighted set.
    let us_heavier = US.replace("weight = 3", "weight = 5");
    let (agent, plan, _) = apply(base(EU, &us_heavier, POOLS, 30)).await;
    assert_eq!(summary(&plan), ["update api.gslb.test. A [api A us/us-2]"]);
    assert!(plan.render_table().contains("weight 3 → weight 5"));
    assert!(agent.apply(&plan).await.expect("apply").is_complete());
    assert_eq!(
        support::moto::records(&sdk, &zone_id)
            .await
            .iter()
            .find(|r| r.set_identifier() == Some("api A us/us-2"))
            .and_then(|r| r.weight()),
        Some(5)
    );

    // Switch the failover order: the two chain links at www point the other way.
    let (agent, plan, _) = apply(base(EU, &us_heavier, r#"["us", "eu"]"#, 30)).await;
    assert_eq!(
        summary(&plan),
        [
            "update www.gslb.test. A [www A primary]",
            "update www.gslb.test. A [www A secondary]",
        ]
    );
    assert!(agent.apply(&plan).await.expect("apply").is_complete());

    // Change a TTL: every set of the record (4 of 10 owned: over 30 %, refused
    // without --force).
    let (agent, plan, cfg) = apply(base(EU, &us_heavier, r#"["us", "eu"]"#, 60)).await;
    assert_eq!(
        summary(&plan),
        [
            "update api.gslb.test. A [api A eu/eu-1]",
            "update api.gslb.test. A [api A eu/eu-2]",
            "update api.gslb.test. A [api A us/us-1]",
            "update api.gslb.test. A [api A us/us-2]",
        ]
    );
    assert!(matches!(
        plan.refusals.as_slice(),
        [Refusal::TooMuchChange {
            owned: 10,
            changing: 4,
            ..
        }]
    ));
    match agent.apply(&plan).await {
        Err(AgentError::Apply(ApplyError::Refused(reason))) => {
            assert!(reason.contains("4 of 10"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let forced = agent.plan(&health(&cfg), true).await.expect("plan");
    assert!(agent.apply(&forced).await.expect("apply").is_complete());
    assert_converges(&agent, &health(&cfg)).await;

    // Remove the failover record: its aliases go before the pool sets they target,
    // each DELETE with the record set as read.
    let without_www = base(EU, &us_heavier, r#"["us", "eu"]"#, 60);
    let start = without_www.find("[[records]]").expect("records");
    let end = without_www[start + 1..]
        .find("[[records]]")
        .expect("second")
        + start
        + 1;
    let without_www = format!("{}{}", &without_www[..start], &without_www[end..]);
    let (agent, plan, cfg) = apply(without_www).await;
    assert_eq!(plan.zones[0].counts(), (0, 0, 6));
    let forced = agent.plan(&health(&cfg), true).await.expect("plan");
    assert!(agent.apply(&forced).await.expect("apply").is_complete());
    let left: Vec<String> = support::moto::records(&sdk, &zone_id)
        .await
        .iter()
        .map(|r| r.name().to_owned())
        .filter(|n| n.contains("www"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_converges(&agent, &health(&cfg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_records_are_reported_and_left_untouched() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    // Records someone else made: one where our static record goes, one unrelated.
    put_foreign(&sdk, &zone_id, "mail.gslb.test.", "A", "198.51.100.25").await;
    put_foreign(&sdk, &zone_id, "other.gslb.test.", "TXT", "\"not ours\"").await;
    let workspace = Workspace::new(
        ZONE,
        "mail IN A 192.0.2.25\nstatic IN A 192.0.2.80\nstatic IN TXT \"hello\"\n",
    );
    let (cfg, zones) = workspace.load(&config(&moto, true, ""));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let plan = agent.plan(&health(&cfg), false).await.expect("plan");
    assert_eq!(plan.zones[0].conflicts.len(), 1);
    assert_eq!(plan.zones[0].conflicts[0].key.name, "mail.gslb.test.");
    assert!(plan.render_table().contains("! conflict mail.gslb.test. A"));
    // Static records are synced, but never the apex NS/SOA.
    assert_eq!(
        summary(&plan),
        [
            "create ns1.gslb.test. A",
            "create static.gslb.test. A",
            "create static.gslb.test. TXT",
        ]
    );
    let report = agent.apply(&plan).await.expect("apply");
    assert!(report.is_complete(), "{}", report.summary());
    let value = |name: &'static str, t: &'static str| {
        let sdk = sdk.clone();
        let zone_id = zone_id.clone();
        async move { support::moto::values(&sdk, &zone_id, name, t, None).await }
    };
    assert_eq!(
        value("mail.gslb.test.", "A").await,
        Some(vec!["198.51.100.25".into()])
    );
    assert_eq!(
        value("other.gslb.test.", "TXT").await,
        Some(vec!["\"not ours\"".into()])
    );
    assert_eq!(
        value("static.gslb.test.", "TXT").await,
        Some(vec!["\"hello\"".into()])
    );
    // With everything of ours removed from the config, only our records go.
    let (cfg, zones) = Workspace::new(ZONE, "").load(&config(&moto, true, ""));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let plan = agent.plan(&health(&cfg), false).await.expect("plan");
    assert_eq!(
        summary(&plan),
        ["delete static.gslb.test. A", "delete static.gslb.test. TXT",]
    );
    agent.apply(&plan).await.expect("apply");
    assert_eq!(
        value("mail.gslb.test.", "A").await,
        Some(vec!["198.51.100.25".into()])
    );
    assert_eq!(
        value("other.gslb.test.", "TXT").await,
        Some(vec!["\"not ours\"".into()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_refuses_deleting_more_than_30_percent() {
    let moto = require!(Moto::start());
    moto.hosted_zone(ZONE).await;
    let lines: String = (0..12)
        .map(|i| format!("host{i} IN A 192.0.2.{}\n", i + 1))
        .collect();
    let workspace = Workspace::new(ZONE, &lines);
    let (cfg, zones) = workspace.load(&config(&moto, true, ""));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    agent
        .reconcile(&health(&cfg), false)
        .await
        .expect("first sync");
    // 13 owned (ns1 + 12 hosts); dropping 5 is 38 %.
    let fewer: String = (0..7)
        .map(|i| format!("host{i} IN A 192.0.2.{}\n", i + 1))
        .collect();
    let (cfg, zones) = Workspace::new(ZONE, &fewer).load(&config(&moto, true, ""));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let refused = agent.reconcile(&health(&cfg), false).await;
    assert!(
        matches!(refused, Err(AgentError::Apply(ApplyError::Refused(_)))),
        "{refused:?}"
    );
    assert!(
        agent.plan(&health(&cfg), false).await.expect("plan").zones[0]
            .changes
            .len()
            == 10
    );
    let forced = agent.reconcile(&health(&cfg), true).await.expect("forced");
    assert_eq!(forced.applied.expect("applied").changes_applied, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_apply_is_split_into_valid_batches() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    // 1,100 static records + their markers: 2,200 changes, and 2,200+ record sets to
    // read back over several pages.
    let lines: String = (0..1100)
        .map(|i| format!("h{i} IN A 10.1.{}.{}\n", i / 250, i % 250 + 1))
        .collect();
    let workspace = Workspace::new(ZONE, &lines);
    let (cfg, zones) = workspace.load(&config(&moto, true, ""));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let run = agent.reconcile(&health(&cfg), false).await.expect("apply");
    let report = run.applied.expect("applied");
    assert!(report.is_complete(), "{}", report.summary());
    assert_eq!(report.changes_applied, 2202);
    assert!(report.batches >= 3, "{} batches", report.batches);
    // Every record arrived (moto rejects a request over 1,000 records, so each batch
    // was within the limit), and reading back (paged) finds nothing to do.
    assert_converges(&agent, &health(&cfg)).await;
    let listed = sdk
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .max_items(5000)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.resource_record_sets().len(), 2 + 2202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_mode_follows_health_changes() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    let body = base(EU, US, POOLS, 30).replace(
        "policy = \"failover\"",
        "policy = \"failover\"\nroute53 = \"mirror\"\nall_down_ttl = 5",
    );
    let workspace = Workspace::new(ZONE, "");
    let (cfg, zones) = workspace.load(&config(&moto, false, &body));
    let agent = Arc::new(agent_with(cfg.clone(), zones, fast_options()).await);
    let healthy = health(&cfg);
    let (sender, receiver) = tokio::sync::watch::channel(Arc::new(healthy.clone()));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let runner = {
        let agent = agent.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { agent.run(receiver, shutdown).await })
    };
    let www = || {
        let sdk = sdk.clone();
        let zone_id = zone_id.clone();
        async move { support::moto::values(&sdk, &zone_id, "www.gslb.test.", "A", None).await }
    };
    let eu_answers = Some(vec!["192.0.2.10".to_owned(), "192.0.2.11".to_owned()]);
    assert!(
        eventually(Duration::from_secs(20), || async {
            www().await == eu_answers
        })
        .await,
        "initial sync"
    );
    // Both eu endpoints go down: the mirror record moves to us.
    let eu_down = eu_down(&healthy);
    sender.send(Arc::new(eu_down)).expect("send health");
    let us_answers = Some(vec!["203.0.113.10".to_owned(), "203.0.113.11".to_owned()]);
    assert!(
        eventually(Duration::from_secs(20), || async {
            www().await == us_answers
        })
        .await,
        "mirror update after health change"
    );
    // Recovery moves it back.
    sender.send(Arc::new(healthy)).expect("send health");
    assert!(
        eventually(Duration::from_secs(20), || async {
            www().await == eu_answers
        })
        .await,
        "mirror update after recovery"
    );
    shutdown.cancel();
    runner.await.expect("agent loop");
    // Mirror records carry no health checks.
    assert!(
        sdk.list_health_checks()
            .send()
            .await
            .expect("list")
            .health_checks()
            .len()
            == 4,
        "only the native weighted record's checks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_created_updated_and_deleted_with_tags() {
    let moto = require!(Moto::start());
    let (sdk, _) = moto.hosted_zone(ZONE).await;
    let workspace = Workspace::new(ZONE, "");
    let run = |body: String, force: bool| {
        let (cfg, zones) = workspace.load(&config(&moto, false, &body));
        async move {
            let agent = agent_with(cfg.clone(), zones, fast_options()).await;
            agent
                .reconcile(&health(&cfg), force)
                .await
                .expect("reconcile")
        }
    };
    run(base(EU, US, POOLS, 30), false).await;
    let checks = sdk.list_health_checks().send().await.expect("list");
    assert_eq!(checks.health_checks().len(), 4);
    let ids: Vec<String> = checks
        .health_checks()
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    let tags = sdk
        .list_tags_for_resources()
        .resource_type(aws_sdk_route53::types::TagResourceType::Healthcheck)
        .set_resource_ids(Some(ids.clone()))
        .send()
        .await
        .expect("tags");
    let mut endpoints: Vec<String> = tags
        .resource_tag_sets()
        .iter()
        .map(|set| {
            let tag = |key: &str| {
                set.tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
                    .map(str::to_owned)
            };
            assert_eq!(tag("failoverd:owner").as_deref(), Some("it"));
            tag("failoverd:endpoint").expect("endpoint tag")
        })
        .collect();
    endpoints.sort();
    assert_eq!(endpoints, ["eu/eu-1", "eu/eu-2", "us/us-1", "us/us-2"]);

    // Update in place: failure threshold and path (same ids).
    let updated = base(EU, US, POOLS, 30)
        .replace("failure_threshold = 3", "failure_threshold = 2")
        .replace("path = \"/health\"", "path = \"/ready\"");
    let report = run(updated.clone(), false).await;
    assert_eq!(report.plan.health_checks.len(), 4);
    assert_eq!(report.applied.expect("applied").health_checks_updated, 4);
    for id in &ids {
        let check = sdk
            .get_health_check()
            .health_check_id(id)
            .send()
            .await
            .expect("get");
        let config = check
            .health_check()
            .and_then(|c| c.health_check_config())
            .expect("config");
        assert_eq!(config.failure_threshold(), Some(2));
        assert_eq!(config.resource_path(), Some("/ready"));
    }

    // Forced down: disabled + inverted, still the same check.
    let forced = updated.replace(
        r#"name = "us-2", weight = 3 }"#,
        r#"name = "us-2", weight = 3, force = "down" }"#,
    );
    let report = run(forced, false).await;
    assert_eq!(check_summary(&report.plan), ["update us/us-2"]);

    // Request interval cannot change in place: new checks replace the old ones, and
    // the records move to the new checks before the old ones are deleted.
    let faster = updated.replace("request_interval = 30", "request_interval = 10");
    let report = run(faster, true).await;
    let applied = report.applied.expect("applied");
    assert_eq!(
        (applied.health_checks_created, applied.health_checks_deleted),
        (4, 4)
    );
    let now: Vec<String> = sdk
        .list_health_checks()
        .send()
        .await
        .expect("list")
        .health_checks()
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    assert_eq!(now.len(), 4);
    assert!(now.iter().all(|id| !ids.contains(id)));

    // Removing the check from the pools deletes every check and detaches the records.
    let unchecked = base(EU, US, POOLS, 30).replace("check = \"web\"\n", "");
    let report = run(unchecked, true).await;
    assert_eq!(report.applied.expect("applied").health_checks_deleted, 4);
    assert!(
        sdk.list_health_checks()
            .send()
            .await
            .expect("list")
            .health_checks()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_with_backoff() {
    let moto = require!(Moto::start());
    moto.hosted_zone(ZONE).await;
    let workspace = Workspace::new(ZONE, "");
    let (cfg, zones) = workspace.load(&config(&moto, false, &base(EU, US, POOLS, 30)));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    moto.fault("Throttling", 3, None);
    moto.fault("PriorRequestNotComplete", 2, None);
    let run = agent
        .reconcile(&health(&cfg), false)
        .await
        .expect("reconcile");
    assert!(run.applied.expect("applied").is_complete());
    assert_eq!(moto.injected("Throttling"), 3);
    assert_eq!(moto.injected("PriorRequestNotComplete"), 2);
    assert_eq!(agent.metrics().snapshot().throttles, 5);
    let text = agent.metrics().render_prometheus();
    assert!(
        text.contains("failoverd_route53_throttles_total{code=\"Throttling\"} 3"),
        "{text}"
    );

    // Sustained throttling: the run fails after the attempts run out, and the next
    // run converges.
    let base_with_more = base(
        &format!(r#"{EU}, {{ address = "192.0.2.12", name = "eu-3" }}"#),
        US,
        POOLS,
        30,
    );
    let (cfg, zones) = workspace.load(&config(&moto, false, &base_with_more));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    moto.fault("Throttling", 1000, None);
    let failed = agent.reconcile(&health(&cfg), false).await;
    assert!(
        matches!(&failed, Err(AgentError::Read(e)) if e.code() == Some("Throttling")),
        "{failed:?}"
    );
    moto.fault("Throttling", 0, None);
    reconcile_converges(&agent, &health(&cfg), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_change_batch_is_isolated_by_bisection() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    let lines: String = (0..40)
        .map(|i| format!("h{i} IN A 192.0.2.{}\n", i + 30))
        .collect();
    let workspace = Workspace::new(ZONE, &lines);
    let (cfg, zones) = workspace.load(&config(&moto, true, ""));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    // Route 53 rejects (atomically) any batch holding h36's value 192.0.2.66.
    moto.fault("InvalidChangeBatch", 1000, Some("192.0.2.66"));
    let plan = agent.plan(&health(&cfg), false).await.expect("plan");
    let report = agent.apply(&plan).await.expect("apply");
    // The rejected record set is isolated together with its ownership marker: the
    // two are sent, and refused, as one unit, never one without the other.
    let mut failed: Vec<&str> = report.failed.iter().map(|f| f.key.name.as_str()).collect();
    failed.sort();
    assert_eq!(
        failed,
        ["_failoverd-owner.h36.gslb.test.", "h36.gslb.test."],
        "{}",
        report.summary()
    );
    assert!(report.failed.iter().all(|f| f.error.contains("Injected")));
    assert_eq!(report.changes_applied, plan.record_change_count() - 2);
    assert!(
        moto.injected("InvalidChangeBatch") >= 2,
        "bisection retried"
    );
    assert_eq!(
        support::moto::values(&sdk, &zone_id, "h36.gslb.test.", "A", None).await,
        None
    );
    let marker_sets = sdk
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .start_record_name("_failoverd-owner.h36.gslb.test.")
        .max_items(1)
        .send()
        .await
        .expect("list");
    assert!(
        marker_sets
            .resource_record_sets()
            .iter()
            .all(|s| s.name() != "_failoverd-owner.h36.gslb.test."),
        "no marker without its record"
    );
    assert!(
        support::moto::values(&sdk, &zone_id, "h37.gslb.test.", "A", None)
            .await
            .is_some()
    );
    // The next run retries only what failed, and converges once Route 53 accepts it.
    let retry = agent.plan(&health(&cfg), false).await.expect("plan");
    assert_eq!(summary(&retry), ["create h36.gslb.test. A"]);
    moto.fault("InvalidChangeBatch", 0, None);
    reconcile_converges(&agent, &health(&cfg), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_waited_for_until_insync() {
    let moto = require!(Moto::start());
    moto.hosted_zone(ZONE).await;
    let workspace = Workspace::new(ZONE, "a IN A 192.0.2.1\n");
    let (cfg, zones) = workspace.load(&config(&moto, true, ""));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    // The change and the first two GetChange polls report PENDING.
    moto.fault("PENDING", 3, None);
    let report = agent
        .reconcile(&health(&cfg), false)
        .await
        .expect("reconcile")
        .applied
        .expect("applied");
    assert!(report.not_in_sync.is_empty());
    assert!(report.propagation_ms >= 20, "{} ms", report.propagation_ms);
    assert_eq!(moto.injected("PENDING"), 3);
    assert!(
        agent
            .metrics()
            .render_prometheus()
            .contains("failoverd_route53_propagation_seconds_count 1")
    );
    // A change that never becomes INSYNC is reported once change_timeout passes.
    let (cfg, zones) = Workspace::new(ZONE, "a IN A 192.0.2.2\n").load(
        &config(&moto, true, "").replace("change_timeout = \"5s\"", "change_timeout = \"1s\""),
    );
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    moto.fault("PENDING", 1000, None);
    let report = agent
        .reconcile(&health(&cfg), false)
        .await
        .expect("reconcile")
        .applied
        .expect("applied");
    assert_eq!(report.not_in_sync.len(), 1);
    moto.fault("PENDING", 0, None);
}

#[test]
fn cli_plan_and_apply_against_moto() {
    let moto = require!(Moto::start());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        create_zone(&moto.sdk().await, ZONE).await;
    });
    let workspace = Workspace::new(ZONE, "static IN A 192.0.2.80\n");
    let path = workspace.write_config(&config(&moto, true, &base(EU, US, POOLS, 30)));
    let failoverd = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_failoverd"))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run failoverd");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let path = path.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = failoverd(&["route53", "plan", "--config", path]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("12 to create"), "{stdout}");
    assert!(stdout.contains("+ create  www.gslb.test."), "{stdout}");
    assert!(
        !stderr.contains("testing"),
        "credentials must never be logged"
    );
    let (code, stdout, _) = failoverd(&["route53", "plan", "--config", path, "--json"]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON plan");
    assert_eq!(json["health_checks"].as_array().map(Vec::len), Some(4));
    let (code, stdout, stderr) = failoverd(&["route53", "apply", "--config", path]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("applied 24 record changes"), "{stdout}");
    let (code, stdout, _) = failoverd(&["route53", "--config", path]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("No changes."), "{stdout}");
}

/// A stand-in for a failoverd server's admin API: answers `GET /v1/health` with
/// whatever JSON the test puts in `body`.
async fn health_server(body: Arc<std::sync::Mutex<String>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let ok = request.starts_with(b"GET /v1/health ");
                let text = body.lock().expect("body").clone();
                let response = if ok {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .into()
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

fn health_json(generation: u64, eu_state: &str) -> String {
    format!(
        r#"{{"generation": {generation}, "endpoints": [
            {{"endpoint": "eu/eu-1", "state": "{eu_state}"}},
            {{"endpoint": "eu/eu-2", "state": "{eu_state}"}},
            {{"endpoint": "us/us-1", "state": "up"}},
            {{"endpoint": "unknown/x", "state": "down"}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sync_follows_the_health_api_and_stops_on_sigterm() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    let body = Arc::new(std::sync::Mutex::new(health_json(1, "up")));
    let port = health_server(body.clone()).await;
    let text = config(
        &moto,
        false,
        &base(EU, US, POOLS, 30).replace(
            "policy = \"failover\"",
            "policy = \"failover\"\nroute53 = \"mirror\"",
        ),
    );
    let workspace = Workspace::new(ZONE, "");
    let path = workspace.write_config(&text);
    let mut child = route53_command(&["sync", "--config"])
        .arg(&path)
        .args(["--health-url", &format!("http://127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start failoverd route53 sync");
    let www = || {
        let sdk = sdk.clone();
        let zone_id = zone_id.clone();
        async move { support::moto::values(&sdk, &zone_id, "www.gslb.test.", "A", None).await }
    };
    let eu = Some(vec!["192.0.2.10".to_owned(), "192.0.2.11".to_owned()]);
    let us = Some(vec!["203.0.113.10".to_owned(), "203.0.113.11".to_owned()]);
    let reached_eu = eventually(Duration::from_secs(30), || async { www().await == eu }).await;
    if reached_eu {
        *body.lock().expect("body") = health_json(2, "down");
    }
    let reached_us =
        reached_eu && eventually(Duration::from_secs(30), || async { www().await == us }).await;
    // SIGTERM: the loop stops cleanly.
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(reached_eu, "initial sync from the health API");
    assert!(
        reached_us,
        "mirror update after the health API reported eu down"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exit on SIGTERM: {status:?}"
    );
}

/// Twelve mirror-mode failover records over eu → us: 12 owned record sets.
fn mirror_zone(eu: &str) -> String {
    mirror_zone_with(eu, 12, 30, 0)
}

/// `count` mirror-mode failover records `app0…` of TTL `ttl`, the first `swapped`
/// of them over us → eu, the others over eu → us.
fn mirror_zone_with(eu: &str, count: usize, ttl: u32, swapped: usize) -> String {
    let mut body = format!(
        r#"
[checks.web]
type = "http"
path = "/health"

[pools.eu]
check = "web"
endpoints = [ {eu} ]

[pools.us]
check = "web"
endpoints = [ {US} ]
"#
    );
    for i in 0..count {
        let pools = if i < swapped {
            r#"["us", "eu"]"#
        } else {
            r#"["eu", "us"]"#
        };
        body.push_str(&format!(
            "\n[[records]]\nname = \"app{i}.gslb.test.\"\ntype = \"A\"\nttl = {ttl}\npolicy = \"failover\"\npools = {pools}\nroute53 = \"mirror\"\n"
        ));
    }
    body
}

/// The TTL Route 53 holds for `name` A.
async fn ttl_of(sdk: &aws_sdk_route53::Client, zone_id: &str, name: &str) -> Option<i64> {
    support::moto::records(sdk, zone_id)
        .await
        .into_iter()
        .find(|r| r.name() == name && r.r#type().as_str() == "A")
        .and_then(|r| r.ttl())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_config_edits_are_guarded_whatever_values_they_keep() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    // 29 owned record sets: ns1 and 15 static hosts, and 13 mirror-mode records.
    let lines: String = (0..15)
        .map(|i| format!("host{i} IN A 198.51.100.{}\n", i + 1))
        .collect();
    let workspace = Workspace::new(ZONE, &lines);
    let load = |ttl: u32, swapped: usize| {
        workspace.load(&config(
            &moto,
            true,
            &mirror_zone_with(EU, 13, ttl, swapped),
        ))
    };
    let (cfg, zones) = load(25, 0);
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let first = agent
        .reconcile(&health(&cfg), false)
        .await
        .expect("first sync");
    assert_eq!(first.plan.zones[0].counts(), (29, 0, 0));
    assert_eq!(ttl_of(&sdk, &zone_id, "app3.gslb.test.").await, Some(25));
    let eu = Some(vec!["192.0.2.10".to_owned(), "192.0.2.11".to_owned()]);
    let us = Some(vec!["203.0.113.10".to_owned(), "203.0.113.11".to_owned()]);
    let refusal = |result: Result<failoverd::testing::sync::RunReport, AgentError>| match result {
        Err(AgentError::Apply(ApplyError::Refused(reason))) => reason,
        other => panic!("a configuration edit must be refused: {other:?}"),
    };

    // TTL 25 → 26 on the 13 mirror records (45 % of owned), same endpoints: refused.
    let (cfg, zones) = load(26, 0);
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let plan = agent.plan(&health(&cfg), false).await.expect("plan");
    assert_eq!(
        plan.zones[0].counts(),
        (0, 13, 0),
        "{}",
        plan.render_table()
    );
    assert!(plan.zones[0].health_driven.is_empty());
    let reason = refusal(agent.reconcile(&health(&cfg), false).await);
    assert!(
        reason.contains("13 of 29 owned record sets would be updated"),
        "{reason}"
    );
    assert_eq!(ttl_of(&sdk, &zone_id, "app3.gslb.test.").await, Some(25));
    // Applied with the force flag.
    reconcile_converges(&agent, &health(&cfg), true).await;
    assert_eq!(ttl_of(&sdk, &zone_id, "app3.gslb.test.").await, Some(26));

    // The pools' order swapped on 12 records (live traffic moves eu → us): refused.
    let (swapped_cfg, zones) = load(26, 12);
    let swapped = agent_with(swapped_cfg.clone(), zones, fast_options()).await;
    let reason = refusal(swapped.reconcile(&health(&swapped_cfg), false).await);
    assert!(
        reason.contains("12 of 29 owned record sets would be updated"),
        "{reason}"
    );
    assert_eq!(
        support::moto::values(&sdk, &zone_id, "app0.gslb.test.", "A", None).await,
        eu
    );

    // An outage under the applied configuration rewrites all 13 mirror sets (45 %):
    // health alone explains it, so it is written unforced; and so is the recovery.
    let outage = agent
        .reconcile(&eu_down(&health(&cfg)), false)
        .await
        .expect("the outage is written");
    assert_eq!(outage.plan.zones[0].counts(), (0, 13, 0));
    assert_eq!(outage.plan.zones[0].health_driven.len(), 13);
    assert_eq!(
        support::moto::values(&sdk, &zone_id, "app0.gslb.test.", "A", None).await,
        us
    );
    assert_eq!(ttl_of(&sdk, &zone_id, "app0.gslb.test.").await, Some(26));
    let back = agent
        .reconcile(&health(&cfg), false)
        .await
        .expect("the recovery is written");
    assert_eq!(back.plan.zones[0].counts(), (0, 13, 0));
    assert_eq!(
        support::moto::values(&sdk, &zone_id, "app0.gslb.test.", "A", None).await,
        eu
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_mode_writes_an_outage_that_rewrites_most_owned_sets_but_guards_config_edits() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    let workspace = Workspace::new(ZONE, "");
    let (cfg, zones) = workspace.load(&config(&moto, false, &mirror_zone(EU)));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let healthy = health(&cfg);
    agent.reconcile(&healthy, false).await.expect("first sync");
    // eu goes down: all 12 owned sets move to us — 100 % of them, in one run, unforced.
    let eu_down = eu_down(&healthy);
    let run = agent
        .reconcile(&eu_down, false)
        .await
        .expect("the outage is written");
    assert_eq!(
        run.plan.zones[0].counts(),
        (0, 12, 0),
        "{}",
        run.plan.render_table()
    );
    assert!(run.plan.refusals.is_empty(), "{:?}", run.plan.refusals);
    let values = support::moto::values(&sdk, &zone_id, "app7.gslb.test.", "A", None).await;
    assert_eq!(
        values,
        Some(vec!["203.0.113.10".to_owned(), "203.0.113.11".to_owned()])
    );
    // And back.
    let back = agent
        .reconcile(&healthy, false)
        .await
        .expect("recovery is written");
    assert_eq!(back.plan.zones[0].counts(), (0, 12, 0));
    // A config edit that rewrites as many sets (new eu addresses) stays guarded.
    let moved =
        r#"{ address = "192.0.2.20", name = "eu-1" }, { address = "192.0.2.21", name = "eu-2" }"#;
    let (cfg, zones) = workspace.load(&config(&moto, false, &mirror_zone(moved)));
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let refused = agent.reconcile(&health(&cfg), false).await;
    match refused {
        Err(AgentError::Apply(ApplyError::Refused(reason))) => {
            assert!(
                reason.contains("12 of 12 owned record sets would be updated"),
                "{reason}"
            );
            assert!(reason.contains("max_update_percent"), "{reason}");
        }
        other => panic!("a config edit rewriting every set must be refused: {other:?}"),
    }
    // The limit is configurable.
    let relaxed = config(&moto, false, &mirror_zone(moved)).replace(
        "sync_interval = \"1h\"",
        "sync_interval = \"1h\"\nmax_update_percent = 100",
    );
    let (cfg, zones) = workspace.load(&relaxed);
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    agent
        .reconcile(&health(&cfg), false)
        .await
        .expect("within max_update_percent = 100");
}

/// `failoverd route53 ARGS…` with moto's test credentials.
fn route53_command(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_failoverd"));
    command
        .arg("route53")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("RUST_LOG", "warn");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_restarted_mid_outage_writes_nothing_wrong_and_plan_needs_live_health() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    let text = config(&moto, false, &mirror_zone(EU));
    let workspace = Workspace::new(ZONE, "");
    let (cfg, zones) = workspace.load(&text);
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    // An outage in progress: Route 53 already answers us.
    let eu_down = eu_down(&health(&cfg));
    agent
        .reconcile(&eu_down, false)
        .await
        .expect("outage written");
    let us = Some(vec!["203.0.113.10".to_owned(), "203.0.113.11".to_owned()]);
    let app0 = || {
        let sdk = sdk.clone();
        let zone_id = zone_id.clone();
        async move { support::moto::values(&sdk, &zone_id, "app0.gslb.test.", "A", None).await }
    };
    assert_eq!(app0().await, us);
    let path = workspace.write_config(&text);

    // plan/apply without live health leave mirror sets as they are, and say why.
    let output = route53_command(&["apply", "--config"])
        .arg(&path)
        .output()
        .expect("apply");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("left as they are in Route 53: without live health"),
        "{stdout}"
    );
    assert_eq!(
        app0().await,
        us,
        "apply without live health did not undo the failover"
    );
    // sync refuses to run mirror records without live health.
    let output = route53_command(&["sync", "--config"])
        .arg(&path)
        .output()
        .expect("sync");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("mirror-mode records need live health")
    );

    // sync restarted during the outage, with live health still saying eu is down:
    // from its first run on, nothing but us is ever in Route 53.
    let body = Arc::new(std::sync::Mutex::new(health_json(1, "down")));
    let port = health_server(body).await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = route53_command(&["sync", "--config"])
        .arg(&path)
        .args(["--health-url", &format!("http://127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sync");
    let runs_ok = || async move {
        let Ok(response) = sync_metrics(metrics_port).await else {
            return 0.0;
        };
        response
            .lines()
            .find(|l| l.starts_with("failoverd_route53_runs_total{result=\"ok\"}"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut synced = false;
    while std::time::Instant::now() < deadline {
        assert_eq!(
            app0().await,
            us,
            "sync wrote config-derived health over the outage"
        );
        if runs_ok().await >= 1.0 {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(synced, "sync completed a run");
    assert_eq!(app0().await, us);
}

/// GET /metrics of the sync agent on `port`.
async fn sync_metrics(port: u16) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_endpoint_has_no_health_check_and_gets_one_back_when_undrained() {
    let moto = require!(Moto::start());
    let (sdk, _) = moto.hosted_zone(ZONE).await;
    let workspace = Workspace::new(ZONE, "");
    let run = |eu: String| {
        let (cfg, zones) = workspace.load(&config(&moto, false, &base(&eu, US, POOLS, 30)));
        async move {
            let agent = agent_with(cfg.clone(), zones, fast_options()).await;
            agent
                .reconcile(&health(&cfg), false)
                .await
                .expect("reconcile")
        }
    };
    let checks = || {
        let sdk = sdk.clone();
        async move {
            sdk.list_health_checks()
                .send()
                .await
                .expect("list")
                .health_checks()
                .len()
        }
    };
    run(EU.to_owned()).await;
    assert_eq!(checks().await, 4);
    // eu-2 drained (weight 0): its check goes, billed and probing for nothing.
    let drained = r#"{ address = "192.0.2.10", name = "eu-1" }, { address = "192.0.2.11", name = "eu-2", weight = 0 }"#;
    let report = run(drained.to_owned()).await;
    assert_eq!(
        check_summary(&report.plan),
        ["delete eu/eu-2"],
        "{}",
        report.plan.render_table()
    );
    assert_eq!(checks().await, 3);
    // Undrained: it comes back.
    let report = run(EU.to_owned()).await;
    assert_eq!(check_summary(&report.plan), ["create eu/eu-2"]);
    assert_eq!(checks().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_their_cause_and_fix_and_fail_fast_unless_transient() {
    let moto = require!(Moto::start());
    let workspace = Workspace::new(ZONE, "");
    let text = config(&moto, false, &base(EU, US, POOLS, 30));
    let path = workspace.write_config(&text);
    let plan = |envs: &[(&str, &str)], config: &std::path::Path| {
        let mut command = route53_command(&["plan", "--config"]);
        command.arg(config);
        for (k, v) in envs {
            command.env(k, v);
        }
        let started = std::time::Instant::now();
        let output = command.output().expect("plan");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            started.elapsed(),
        )
    };
    let mut figures = Vec::new();
    // Missing zone (nothing created in moto).
    let (ok, err, took) = plan(&[], &path);
    assert!(!ok && err.contains("no hosted zone named gslb.test. in this account: create it, or give its id as hosted_zone_id"), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    figures.push(format!("missing_zone_ms={}", took.as_millis()));
    eprintln!(
        "MESSAGE missing_zone: {}",
        err.trim().lines().last().unwrap_or_default()
    );
    // Rejected credentials: 403 InvalidClientTokenId, not retried.
    moto.hosted_zone(ZONE).await;
    moto.fault("InvalidClientTokenId", 100, None);
    let (ok, err, took) = plan(&[], &path);
    moto.fault("InvalidClientTokenId", 0, None);
    assert!(
        !ok && err.contains("Route 53 refused the credentials (InvalidClientTokenId"),
        "{err}"
    );
    assert!(err.contains("IAM policy"), "{err}");
    assert!(took < Duration::from_secs(5), "not retried: {took:?}");
    figures.push(format!("rejected_credentials_ms={}", took.as_millis()));
    eprintln!(
        "MESSAGE rejected_credentials: {}",
        err.trim().lines().last().unwrap_or_default()
    );
    // No credentials at all.
    let (ok, err, took) = plan(
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("HOME", "/nonexistent"),
        ],
        &path,
    );
    assert!(
        !ok && err.contains("no AWS credentials: tried the environment"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "not retried: {took:?}");
    figures.push(format!("no_credentials_ms={}", took.as_millis()));
    eprintln!(
        "MESSAGE no_credentials: {}",
        err.trim().lines().last().unwrap_or_default()
    );
    // Unreachable endpoint: retried within about 10 s, then reported with the cause.
    let unreachable = workspace.write_config(&text.replace(&moto.url(), "http://127.0.0.1:9"));
    let (ok, err, took) = plan(&[], &unreachable);
    assert!(
        !ok && err.contains("cannot reach the Route 53 API: Connection refused"),
        "{err}"
    );
    assert!(
        err.contains("tried ") && err.contains("check [route53] endpoint_url"),
        "{err}"
    );
    assert!(took < Duration::from_secs(12), "{took:?}");
    figures.push(format!("unreachable_ms={}", took.as_millis()));
    eprintln!(
        "MESSAGE unreachable: {}",
        err.trim().lines().last().unwrap_or_default()
    );
    eprintln!("FIGURES route53_errors {}", figures.join(" "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_drains_and_manual_failovers_reach_mirror_records() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    // No health checks: the operator alone decides here.
    let workspace = Workspace::new(ZONE, "");
    let (server, text) = Server::start(
        &workspace,
        &config(
            &moto,
            false,
            &mirror_zone(EU).replace("check = \"web\"\n", ""),
        ),
    )
    .await;
    let ctl = |args: &[&str]| server.ctl(args);
    let feed = &server.feed;
    let (cfg, zones) = workspace.load(&text);
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let sync = || async {
        let live = feed.fetch().await.expect("live health").snapshot(&cfg);
        agent.reconcile(&live, false).await.expect("reconcile")
    };
    let values = |name: &'static str| {
        let sdk = sdk.clone();
        let zone_id = zone_id.clone();
        async move { support::moto::values(&sdk, &zone_id, name, "A", None).await }
    };
    sync().await;
    let eu = Some(vec!["192.0.2.10".to_owned(), "192.0.2.11".to_owned()]);
    assert_eq!(values("app1.gslb.test.").await, eu);
    ctl(&["drain", "eu/eu-1", "--reason", "r53"]);
    ctl(&[
        "failover",
        "app0.gslb.test",
        "--to",
        "us",
        "--reason",
        "r53",
    ]);
    sync().await;
    assert_eq!(
        values("app1.gslb.test.").await,
        Some(vec!["192.0.2.11".to_owned()]),
        "drained"
    );
    assert_eq!(
        values("app0.gslb.test.").await,
        Some(vec!["203.0.113.10".to_owned(), "203.0.113.11".to_owned()]),
        "failed over to us"
    );
    // Released: the previous sets come back.
    ctl(&["undrain", "eu/eu-1"]);
    ctl(&["release", "app0.gslb.test"]);
    sync().await;
    assert_eq!(values("app1.gslb.test.").await, eu);
    assert_eq!(values("app0.gslb.test.").await, eu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_url_sends_a_token_to_a_server_with_read_tokens() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    let workspace = Workspace::new(ZONE, "");
    let dir = workspace.dir.path();
    let read = "read-token-0123456789abcdef";
    let operate = "operate-token-0123456789abcdef";
    std::fs::write(dir.join("read.token"), format!("{read}\n")).unwrap();
    std::fs::write(dir.join("operate.token"), format!("{operate}\n")).unwrap();
    std::fs::write(dir.join("wrong.token"), "not-a-token-of-this-server\n").unwrap();
    // Token files others may read are refused.
    for file in ["read.token", "operate.token", "wrong.token"] {
        std::fs::set_permissions(
            dir.join(file),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }
    let tokens = "[[admin.tokens]]\nname = \"route53\"\nrole = \"read\"\nfile = \"read.token\"\n\
                  [[admin.tokens]]\nname = \"oncall\"\nrole = \"operate\"\nfile = \"operate.token\"\n";
    // No health checks: endpoints are up unless an operator says otherwise.
    let body = mirror_zone(EU).replace("check = \"web\"\n", "");
    let (server, text) =
        Server::start_with(&workspace, &config(&moto, false, &body), tokens, Some(read)).await;
    let path = workspace.write_config(&text);
    let url = server.admin.clone();
    let run = |args: &[&str], token_env: Option<&str>| {
        let mut command = route53_command(args);
        command
            .arg("--config")
            .arg(&path)
            .args(["--health-url", &url]);
        command.env_remove("FAILOVERD_TOKEN");
        if let Some(token) = token_env {
            command.env("FAILOVERD_TOKEN", token);
        }
        let output = command.output().expect("route53");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let token_file = |name: &str| dir.join(name).display().to_string();

    // Without a token: 401, and the message says what to give.
    for action in ["plan", "apply", "sync"] {
        let (ok, _, stderr) = run(&[action], None);
        assert!(!ok, "{action} without a token");
        assert!(
            stderr.contains("HTTP 401: the server needs a bearer token of the read role")
                && stderr.contains("--token-file FILE"),
            "{action}: {stderr}"
        );
    }
    // A token the server does not know: refused, and said so.
    let (ok, _, stderr) = run(&["plan", "--token-file", &token_file("wrong.token")], None);
    assert!(!ok);
    assert!(stderr.contains("refused the token"), "{stderr}");

    // With the read token (file, then environment): mirror records planned from
    // live health, and applied.
    let (ok, stdout, stderr) = run(&["plan", "--token-file", &token_file("read.token")], None);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("12 to create"), "{stdout}");
    assert!(!stdout.contains("left as they are"), "{stdout}");
    let (ok, stdout, stderr) = run(&["apply"], Some(read));
    assert!(ok, "{stdout}{stderr}");
    let app1 = || support::moto::values(&sdk, &zone_id, "app1.gslb.test.", "A", None);
    assert_eq!(
        app1().await,
        Some(vec!["192.0.2.10".to_owned(), "192.0.2.11".to_owned()])
    );

    // sync follows the server's overrides with the read token.
    let ctl = std::process::Command::new(env!("CARGO_BIN_EXE_failoverd"))
        .args([
            "ctl",
            "--server",
            &url,
            "--token-file",
            &token_file("operate.token"),
        ])
        .args(["drain", "eu/eu-1", "--reason", "token test"])
        .output()
        .expect("ctl");
    assert!(
        ctl.status.success(),
        "{}",
        String::from_utf8_lossy(&ctl.stderr)
    );
    let mut child = route53_command(&["sync", "--config"])
        .arg(&path)
        .args([
            "--health-url",
            &url,
            "--token-file",
            &token_file("read.token"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sync");
    let drained = eventually(Duration::from_secs(30), || async {
        app1().await == Some(vec!["192.0.2.11".to_owned()])
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(drained, "sync wrote the drain it read with the token");
}

/// A `failoverd serve` with an admin API on a free port, for operator commands.
struct Server {
    child: std::process::Child,
    admin: String,
    feed: failoverd::testing::sync::health_feed::HealthFeed,
}

impl Server {
    /// Starts a server on `text` plus an `[admin]` section; returns it and the full
    /// config text once its admin API answers.
    async fn start(workspace: &Workspace, text: &str) -> (Self, String) {
        Self::start_with(workspace, text, "", None).await
    }

    /// As [`Server::start`], with `admin` appended to the `[admin]` section (tokens)
    /// and the health feed sending `token`.
    async fn start_with(
        workspace: &Workspace,
        text: &str,
        admin: &str,
        token: Option<&str>,
    ) -> (Self, String) {
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let text = format!("{text}\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{admin}");
        let path = workspace.write_config(&text);
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_failoverd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("failoverd serve");
        let admin = format!("http://127.0.0.1:{admin_port}");
        let feed = failoverd::testing::sync::health_feed::HealthFeed::new(&admin)
            .unwrap()
            .with_token(token.map(str::to_owned));
        assert!(
            eventually(Duration::from_secs(20), || async {
                feed.fetch().await.is_ok()
            })
            .await,
            "the server answers"
        );
        (Self { child, admin, feed }, text)
    }

    /// Runs `failoverd ctl` against the server; it must succeed.
    fn ctl(&self, args: &[&str]) {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_failoverd"))
            .args(["ctl", "--server", &self.admin])
            .args(args)
            .output()
            .expect("ctl");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every record set of the zone (markers left out) as "name type [set] routing →
/// alias target | values, check" lines, with check ids replaced by what they are.
async fn native_sets(
    sdk: &aws_sdk_route53::Client,
    zone_id: &str,
) -> (
    Vec<String>,
    BTreeMap<String, aws_sdk_route53::types::HealthCheckConfig>,
) {
    let checks: BTreeMap<String, aws_sdk_route53::types::HealthCheckConfig> = sdk
        .list_health_checks()
        .send()
        .await
        .expect("list checks")
        .health_checks()
        .iter()
        .filter_map(|c| Some((c.id().to_owned(), c.health_check_config()?.clone())))
        .collect();
    let sets = support::moto::records(sdk, zone_id)
        .await
        .into_iter()
        .filter(|r| !r.name().starts_with("_failoverd-owner") && r.set_identifier().is_some())
        .map(|r| {
            let routing = match (r.weight(), r.failover()) {
                (Some(w), _) => format!("weight {w}"),
                (_, Some(role)) => role.as_str().to_owned(),
                _ => "multivalue".to_owned(),
            };
            let target = match r.alias_target() {
                Some(alias) => format!("→ {}", alias.dns_name()),
                None => r
                    .resource_records()
                    .iter()
                    .map(|v| v.value().to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let check = match r.health_check_id().and_then(|id| checks.get(id)) {
                Some(c) if c.r#type() == &aws_sdk_route53::types::HealthCheckType::Calculated => {
                    format!(
                        " calculated {}/{}",
                        c.health_threshold().unwrap_or(0),
                        c.child_health_checks().len()
                    )
                }
                Some(c) => format!(
                    " check{}{}",
                    if c.disabled() == Some(true) {
                        " disabled"
                    } else {
                        ""
                    },
                    if c.inverted() == Some(true) {
                        " inverted"
                    } else {
                        ""
                    }
                ),
                None => String::new(),
            };
            format!(
                "{} [{}] {routing} {target}{check}",
                r.name(),
                r.set_identifier().unwrap_or_default()
            )
        })
        .collect();
    (sets, checks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_overrides_and_min_healthy_reach_native_records() {
    let moto = require!(Moto::start());
    let (sdk, zone_id) = moto.hosted_zone(ZONE).await;
    // Loopback endpoints (the server probes them; nothing listens there), eu needing
    // two healthy endpoints.
    let eu =
        r#"{ address = "127.0.0.21", name = "eu-1" }, { address = "127.0.0.22", name = "eu-2" }"#;
    let us = r#"{ address = "127.0.0.23", name = "us-1" }, { address = "127.0.0.24", name = "us-2", weight = 3 }"#;
    let body = base(eu, us, POOLS, 30).replace("[pools.eu]\n", "[pools.eu]\nmin_healthy = 2\n");
    let workspace = Workspace::new(ZONE, "");
    let (server, text) = Server::start(&workspace, &config(&moto, false, &body)).await;
    let (cfg, zones) = workspace.load(&text);
    let agent = agent_with(cfg.clone(), zones, fast_options()).await;
    let sync = || async {
        let live = server
            .feed
            .fetch()
            .await
            .expect("live health")
            .snapshot(&cfg);
        let run = agent.reconcile(&live, true).await.expect("reconcile");
        assert!(
            run.applied.as_ref().is_none_or(|a| a.is_complete()),
            "{}",
            run.applied.map(|a| a.summary()).unwrap_or_default()
        );
        native_sets(&sdk, &zone_id).await
    };
    let (initial, checks) = sync().await;
    let initial_desired = agent.desired(&server.feed.fetch().await.expect("live").snapshot(&cfg));
    let has = |sets: &[String], line: &str| sets.iter().any(|s| s == line);
    // min_healthy 2: the alias to eu carries a calculated check over eu's two checks,
    // and decides by it alone.
    assert!(
        has(
            &initial,
            "www.gslb.test. [www A primary] PRIMARY → _pool-eu.www.gslb.test. calculated 2/2"
        ),
        "{initial:#?}"
    );
    assert!(has(
        &initial,
        "www.gslb.test. [www A secondary] SECONDARY → _pool-us.www.gslb.test."
    ));
    assert_eq!(checks.len(), 5, "four endpoint checks and one calculated");

    server.ctl(&["drain", "eu/eu-1", "--reason", "native"]);
    server.ctl(&["force", "us/us-1", "down", "--reason", "native"]);
    server.ctl(&["force", "us/us-2", "up", "--reason", "native"]);
    let (overridden, checks) = sync().await;
    assert!(
        has(
            &overridden,
            "_pool-eu.api.gslb.test. [_pool-eu.api A eu/eu-1] weight 0 127.0.0.21"
        ),
        "drained: weight 0, no check: {overridden:#?}"
    );
    // The weighted record over a pool needing two: one weighted alias per pool.
    assert!(has(
        &overridden,
        "api.gslb.test. [api A eu] weight 1 → _pool-eu.api.gslb.test. calculated 1/1"
    ));
    assert!(has(
        &overridden,
        "_pool-us.api.gslb.test. [_pool-us.api A us/us-1] weight 1 127.0.0.23 check disabled inverted"
    ));
    assert!(has(
        &overridden,
        "_pool-us.api.gslb.test. [_pool-us.api A us/us-2] weight 3 127.0.0.24 check disabled"
    ));
    // eu-1's check is gone (drained); eu's calculated check is over eu-2 alone.
    assert_eq!(checks.len(), 4, "{checks:#?}");
    assert!(has(
        &overridden,
        "www.gslb.test. [www A primary] PRIMARY → _pool-eu.www.gslb.test. calculated 1/1"
    ));

    server.ctl(&[
        "failover",
        "www.gslb.test",
        "--to",
        "us",
        "--reason",
        "native",
    ]);
    server.ctl(&[
        "failover",
        "api.gslb.test",
        "--to",
        "eu",
        "--reason",
        "native",
    ]);
    let (failed_over, _) = sync().await;
    assert!(
        has(
            &failed_over,
            "www.gslb.test. [www A primary] PRIMARY → _pool-us.www.gslb.test."
        ),
        "{failed_over:#?}"
    );
    assert!(has(
        &failed_over,
        "api.gslb.test. [api A primary] PRIMARY → _pool-eu.api.gslb.test. calculated 1/1"
    ));
    assert!(has(
        &failed_over,
        "api.gslb.test. [api A secondary] SECONDARY → _pools.api.gslb.test."
    ));

    // Released: the agent wants exactly the sets and checks of the start again, and
    // plans to put back what the overrides changed. (Not applied here: moto refuses
    // to CREATE a record set identical to one it deleted earlier, see
    // ../shared/notes/route53-moto.md; the restore path itself is the same create and
    // delete as the steps above.)
    for target in [
        "eu/eu-1",
        "us/us-1",
        "us/us-2",
        "www.gslb.test",
        "api.gslb.test",
    ] {
        server.ctl(&["release", target]);
    }
    let live = server.feed.fetch().await.expect("live").snapshot(&cfg);
    assert_eq!(agent.desired(&live), initial_desired);
    let plan = agent.plan(&live, true).await.expect("plan");
    let recreated: Vec<String> = plan.zones[0]
        .changes
        .iter()
        .filter(|c| !c.is_marker())
        .filter_map(|c| match c {
            failoverd::testing::sync::plan::RecordChange::Create { new } => {
                Some(new.key.to_string())
            }
            _ => None,
        })
        .collect();
    assert!(
        recreated.contains(&"api.gslb.test. A [api A eu]".to_owned())
            && recreated.contains(&"_pool-eu.www.gslb.test. A [_pool-eu.www A eu/eu-1]".to_owned()),
        "{recreated:#?}"
    );
    let check_creates = plan
        .health_checks
        .iter()
        .filter(|c| matches!(c, HealthCheckChange::Create { key, .. } if key == "eu/eu-1"))
        .count();
    assert_eq!(check_creates, 1, "eu-1's check comes back");
}
