use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::sync::desired::{DesiredRecord, DesiredZone};
use crate::sync::model::{AliasTarget, FailoverRole, HealthCheckProtocol, Routing, ZoneState};
use crate::sync::owner::caller_reference;
use crate::sync::simulate::apply_plan;

const ZONE: &str = "example.com.";
const OWNER: &str = "test-owner";

fn simple(name: &str, ttl: u32, values: &[&str]) -> RecordSet {
    RecordSet::simple(
        name,
        RecordType::A,
        ttl,
        values.iter().map(|v| (*v).to_owned()).collect(),
    )
}

fn weighted(name: &str, set: &str, weight: u8, value: &str, check: Option<&str>) -> RecordSet {
    RecordSet {
        key: RecordKey::new(name, RecordType::A, Some(set.to_owned())),
        ttl: Some(30),
        values: vec![value.to_owned()],
        alias: None,
        routing: Routing::Weighted { weight },
        health_check: check.map(|k| HealthCheckRef::Key(k.to_owned())),
    }
}

fn alias(name: &str, set: &str, role: FailoverRole, target: &str) -> RecordSet {
    RecordSet {
        key: RecordKey::new(name, RecordType::A, Some(set.to_owned())),
        ttl: None,
        values: Vec::new(),
        alias: Some(AliasTarget {
            hosted_zone_id: String::new(),
            dns_name: target.to_owned(),
            evaluate_target_health: true,
        }),
        routing: Routing::Failover { role },
        health_check: None,
    }
}

fn desired_of(records: Vec<RecordSet>) -> DesiredState {
    DesiredState {
        zones: vec![DesiredZone {
            zone: ZONE.into(),
            hosted_zone_id: None,
            records: records
                .into_iter()
                .map(|set| {
                    (
                        set.key.clone(),
                        DesiredRecord {
                            set,
                            source: RecordSource::Static,
                        },
                    )
                })
                .collect(),
        }],
        ..DesiredState::default()
    }
}

fn current_of(records: Vec<RecordSet>) -> CurrentState {
    CurrentState {
        zones: vec![ZoneState {
            zone: ZONE.into(),
            hosted_zone_id: "Z1".into(),
            records,
        }],
        health_checks: Vec::new(),
    }
}

/// Current state holding `records` as owned (with their markers).
fn owned(records: Vec<RecordSet>) -> Vec<RecordSet> {
    let mut out = Vec::new();
    for record in records {
        out.push(marker_for(&record.key, ZONE, OWNER, None));
        out.push(record);
    }
    out
}

fn options() -> PlanOptions {
    PlanOptions::new(OWNER, false)
}

fn run(current: &CurrentState, desired: &DesiredState) -> Plan {
    plan(current, desired, &options()).unwrap()
}

/// Plans, applies with Route 53 semantics, re-plans: the second plan must be empty.
fn converges(current: &CurrentState, desired: &DesiredState) -> CurrentState {
    let first = run(current, desired);
    let after = apply_plan(current, &first, usize::MAX).unwrap();
    let second = run(&after, desired);
    assert!(
        second.is_empty(),
        "second plan not empty:\n{}",
        second.render_table()
    );
    after
}

fn http_check(interval: u8, threshold: u8) -> HealthCheckSpec {
    HealthCheckSpec {
        protocol: HealthCheckProtocol::Http,
        ip_address: Some("192.0.2.1".into()),
        port: Some(80),
        resource_path: Some("/health".into()),
        fqdn: None,
        search_string: None,
        request_interval: interval,
        failure_threshold: threshold,
        ..HealthCheckSpec::default()
    }
}

#[test]
fn creates_records_with_markers_and_converges() {
    let desired = desired_of(vec![
        simple("a.example.com.", 60, &["192.0.2.1"]),
        weighted("w.example.com.", "w A one", 1, "192.0.2.2", None),
    ]);
    let current = current_of(Vec::new());
    let plan = run(&current, &desired);
    let zone = &plan.zones[0];
    assert_eq!(zone.counts(), (2, 0, 0));
    assert_eq!(zone.changes.iter().filter(|c| c.is_marker()).count(), 2);
    assert!(plan.refusals.is_empty() && plan.may_apply());
    let after = converges(&current, &desired);
    // Markers make the records ours on the next read.
    assert_eq!(after.zones[0].records.len(), 4);
}

#[test]
fn updates_owned_records_and_deletes_with_current_values() {
    let stale = simple("old.example.com.", 300, &["198.51.100.7", "198.51.100.8"]);
    let current = current_of(owned(vec![
        simple("a.example.com.", 60, &["192.0.2.1"]),
        stale.clone(),
    ]));
    // The config now wants a different TTL for a and no "old" at all.
    let desired = desired_of(vec![simple("a.example.com.", 30, &["192.0.2.1"])]);
    let plan = run(&current, &desired);
    let zone = &plan.zones[0];
    assert_eq!(zone.counts(), (0, 1, 1));
    let deletes: Vec<&RecordSet> = zone
        .changes
        .iter()
        .filter_map(|c| match c {
            RecordChange::Delete { old } => Some(old),
            _ => None,
        })
        .collect();
    assert!(
        deletes.contains(&&stale),
        "DELETE must carry the values read"
    );
    converges(&current, &desired);
}

#[test]
fn foreign_records_are_conflicts_and_never_touched() {
    let foreign_same_key = simple("a.example.com.", 60, &["203.0.113.1"]);
    let foreign_same_type = weighted("w.example.com.", "theirs", 5, "203.0.113.2", None);
    let foreign_cname = RecordSet::simple(
        "c.example.com.",
        RecordType::Cname,
        60,
        vec!["elsewhere.example.net.".into()],
    );
    let foreign_unrelated = simple("z.example.com.", 60, &["203.0.113.9"]);
    let current = current_of(vec![
        foreign_same_key.clone(),
        foreign_same_type.clone(),
        foreign_cname.clone(),
        foreign_unrelated.clone(),
    ]);
    let desired = desired_of(vec![
        simple("a.example.com.", 60, &["192.0.2.1"]),
        weighted("w.example.com.", "ours", 1, "192.0.2.2", None),
        simple("c.example.com.", 60, &["192.0.2.3"]),
        simple("free.example.com.", 60, &["192.0.2.4"]),
    ]);
    let plan = run(&current, &desired);
    let zone = &plan.zones[0];
    assert_eq!(zone.conflicts.len(), 3, "{:#?}", zone.conflicts);
    assert_eq!(zone.counts(), (1, 0, 0));
    let after = converges(&current, &desired);
    for foreign in [
        foreign_same_key,
        foreign_same_type,
        foreign_cname,
        foreign_unrelated,
    ] {
        assert!(
            after.zones[0].records.contains(&foreign),
            "{foreign:?} changed"
        );
    }
    assert!(plan.render_table().contains("conflict a.example.com. A"));
}

#[test]
fn markers_of_other_owners_are_foreign() {
    let theirs = simple("a.example.com.", 60, &["203.0.113.1"]);
    let mut records = vec![theirs.clone()];
    records.push(marker_for(&theirs.key, ZONE, "someone-else", None));
    let current = current_of(records);
    let plan = run(&current, &desired_of(Vec::new()));
    assert!(plan.is_empty(), "must not delete another owner's records");
    let plan = run(
        &current,
        &desired_of(vec![simple("a.example.com.", 60, &["192.0.2.1"])]),
    );
    assert_eq!(plan.zones[0].conflicts.len(), 1);
}

#[test]
fn guard_refuses_large_share_of_changes_unless_forced() {
    let records: Vec<RecordSet> = (0..10)
        .map(|i| simple(&format!("r{i}.example.com."), 60, &["192.0.2.1"]))
        .collect();
    let current = current_of(owned(records.clone()));
    // Deleting 3 of 10 (30 %) is allowed.
    let plan = run(&current, &desired_of(records[3..].to_vec()));
    assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
    // Deleting 4 of 10 is refused.
    let plan = run(&current, &desired_of(records[4..].to_vec()));
    assert_eq!(
        plan.refusals,
        vec![Refusal::TooMuchChange {
            zone: ZONE.into(),
            owned: 10,
            action: "delete".into(),
            changing: 4,
            limit_percent: 30,
        }]
    );
    assert!(!plan.may_apply());
    assert!(plan.render_table().contains("--force"));
    let forced = super::plan(
        &current,
        &desired_of(records[4..].to_vec()),
        &PlanOptions {
            force: true,
            ..options()
        },
    )
    .unwrap();
    assert!(forced.may_apply());
    // Fewer than 10 owned records: no share check.
    let small = current_of(owned(records[..9].to_vec()));
    assert!(run(&small, &desired_of(Vec::new())).refusals.is_empty());
    // Creates never count.
    let plan = run(&current_of(Vec::new()), &desired_of(records));
    assert!(plan.refusals.is_empty());
}

/// Current state holding `records` as owned, each written from the configuration
/// fingerprint `fingerprint(i)` (None: a marker without one).
fn owned_from(
    records: &[RecordSet],
    fingerprint: impl Fn(usize) -> Option<String>,
) -> Vec<RecordSet> {
    let mut out = Vec::new();
    for (i, record) in records.iter().enumerate() {
        out.push(marker_for(
            &record.key,
            ZONE,
            OWNER,
            fingerprint(i).as_deref(),
        ));
        out.push(record.clone());
    }
    out
}

/// A desired state of mirror-mode sets, each from the record configuration
/// `fingerprint(i)`.
fn mirror_of(records: &[RecordSet], fingerprint: impl Fn(usize) -> String) -> DesiredState {
    let mut desired = desired_of(Vec::new());
    for (i, set) in records.iter().enumerate() {
        desired.zones[0].records.insert(
            set.key.clone(),
            DesiredRecord {
                set: set.clone(),
                source: RecordSource::Mirror {
                    record: set.key.name.clone(),
                    config: fingerprint(i),
                },
            },
        );
    }
    desired
}

#[test]
fn guard_counts_configuration_edits_and_not_what_health_alone_explains() {
    let fp = |i: usize| format!("{i:016x}");
    let edited = |i: usize| format!("{:016x}", i + 100);
    let sets = |ttl: u32, value: &str| -> Vec<RecordSet> {
        (0..12)
            .map(|i| simple(&format!("r{i}.example.com."), ttl, &[value]))
            .collect()
    };
    let current = current_of(owned_from(&sets(25, "192.0.2.1"), |i| Some(fp(i))));
    // An outage: every set gets new values, the configuration is the same.
    let outage = run(&current, &mirror_of(&sets(25, "198.51.100.1"), fp));
    assert_eq!(outage.zones[0].counts(), (0, 12, 0));
    assert_eq!(outage.zones[0].health_driven.len(), 12);
    assert!(outage.refusals.is_empty(), "{:?}", outage.refusals);
    let table = outage.render_table();
    assert!(
        table.contains("(12 of the updates and deletes are health or overrides alone")
            && table.contains("~h update"),
        "{table}"
    );
    // A TTL edit 25 → 26 on the same endpoints: a configuration edit, counted.
    let ttl_edit = run(&current, &mirror_of(&sets(26, "192.0.2.1"), edited));
    assert_eq!(ttl_edit.zones[0].counts(), (0, 12, 0));
    assert!(ttl_edit.zones[0].health_driven.is_empty());
    assert_eq!(
        ttl_edit.refusals,
        vec![Refusal::TooMuchChange {
            zone: ZONE.into(),
            owned: 12,
            action: "update".into(),
            changing: 12,
            limit_percent: 30,
        }]
    );
    // A configuration edit that changes no set (yet) rewrites only the markers,
    // which the guard does not count; applied, the markers carry the new fingerprint,
    // and the health change that follows is not counted either.
    let quiet = mirror_of(&sets(25, "192.0.2.1"), edited);
    let plan = run(&current, &quiet);
    assert_eq!(plan.zones[0].counts(), (0, 0, 0));
    assert_eq!(plan.zones[0].changes.len(), 12, "12 marker updates");
    assert!(plan.refusals.is_empty());
    let after = converges(&current, &quiet);
    let outage = run(&after, &mirror_of(&sets(25, "198.51.100.1"), edited));
    assert_eq!(outage.zones[0].health_driven.len(), 12);
    assert!(outage.refusals.is_empty(), "{:?}", outage.refusals);
    // Markers written before fingerprints existed explain nothing: counted.
    let legacy = current_of(owned_from(&sets(25, "192.0.2.1"), |_| None));
    let plan = run(&legacy, &mirror_of(&sets(25, "198.51.100.1"), fp));
    assert!(plan.zones[0].health_driven.is_empty());
    assert_eq!(plan.refusals.len(), 1);
    // Deletes: a set whose record is still desired with the same configuration (an
    // endpoint that left the answers) is health; a removed record is an edit.
    let weighted_sets: Vec<RecordSet> = (0..12)
        .map(|i| weighted("w.example.com.", &format!("w A {i}"), 1, "192.0.2.1", None))
        .collect();
    let current = current_of(owned_from(&weighted_sets, |_| Some(fp(0))));
    let plan = run(&current, &mirror_of(&weighted_sets[..2], |_| fp(0)));
    assert_eq!(plan.zones[0].counts(), (0, 0, 10));
    assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
    let plan = run(&current, &mirror_of(&weighted_sets[..2], |_| fp(1)));
    assert_eq!(plan.refusals.len(), 1, "{:?}", plan.refusals);
    let plan = run(&current, &desired_of(Vec::new()));
    assert_eq!(plan.refusals.len(), 1, "{:?}", plan.refusals);
}

#[test]
fn apex_ns_and_soa_changes_are_refused() {
    let ns = RecordSet::simple(
        ZONE,
        RecordType::Ns,
        172_800,
        vec!["ns-1.awsdns.example.".into()],
    );
    // Normally never ours; a hand-made marker claiming it must still not let a plan
    // change it silently.
    let current = current_of(owned(vec![ns]));
    let plan = run(&current, &desired_of(Vec::new()));
    assert!(matches!(plan.refusals[0], Refusal::ApexChange { .. }));
    assert!(!plan.may_apply());
}

#[test]
fn health_checks_are_created_kept_updated_replaced_and_deleted() {
    let mut desired = desired_of(vec![
        weighted("w.example.com.", "w A a", 1, "192.0.2.1", Some("p/a")),
        weighted("w.example.com.", "w A b", 1, "192.0.2.2", Some("p/b")),
        weighted("w.example.com.", "w A c", 1, "192.0.2.3", Some("p/c")),
        weighted("w.example.com.", "w A d", 1, "192.0.2.4", Some("p/d")),
    ]);
    desired.health_checks = BTreeMap::from([
        ("p/a".into(), http_check(30, 3)),
        ("p/b".into(), http_check(30, 2)),
        ("p/c".into(), http_check(10, 3)),
        ("p/d".into(), http_check(30, 3)),
    ]);
    let existing = |id: &str, key: &str, spec: HealthCheckSpec, owner: &str| ExistingHealthCheck {
        id: id.into(),
        caller_reference: "x".into(),
        version: 4,
        spec,
        tags: health_check_tags(owner, key),
    };
    let mut current = current_of(Vec::new());
    current.health_checks = vec![
        existing("id-a", "p/a", http_check(30, 3), OWNER), // kept
        existing("id-b", "p/b", http_check(30, 3), OWNER), // threshold updated
        existing("id-c", "p/c", http_check(30, 3), OWNER), // interval: replaced
        existing("id-gone", "p/gone", http_check(30, 3), OWNER), // deleted
        existing("id-foreign", "p/d", http_check(30, 3), "other"), // untouched
        ExistingHealthCheck {
            id: "id-orphan".into(),
            caller_reference: caller_reference(OWNER, "p/x", 1),
            version: 1,
            spec: http_check(30, 3),
            tags: BTreeMap::new(),
        },
    ];
    let plan = run(&current, &desired);
    let summary: Vec<(String, &str)> = plan
        .health_checks
        .iter()
        .map(|c| match c {
            HealthCheckChange::Create { key, .. } => (key.clone(), "create"),
            HealthCheckChange::Update { key, .. } => (key.clone(), "update"),
            HealthCheckChange::Delete { id, .. } => (id.clone(), "delete"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("p/b".into(), "update"),
            ("p/c".into(), "create"),
            ("p/d".into(), "create"),
            ("id-orphan".into(), "delete"),
            ("id-c".into(), "delete"),
            ("id-gone".into(), "delete"),
        ]
    );
    // Records point at kept checks by id, at new ones by key until applied.
    let checks: BTreeMap<String, Option<HealthCheckRef>> = plan.zones[0]
        .changes
        .iter()
        .filter(|c| !c.is_marker())
        .map(|c| match c {
            RecordChange::Create { new } => (
                new.key.set_identifier.clone().unwrap_or_default(),
                new.health_check.clone(),
            ),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(checks["w A a"], Some(HealthCheckRef::Id("id-a".into())));
    assert_eq!(checks["w A c"], Some(HealthCheckRef::Key("p/c".into())));
    let after = converges(&current, &desired);
    assert!(after.health_checks.iter().any(|c| c.id == "id-foreign"));
    assert!(
        !after
            .health_checks
            .iter()
            .any(|c| c.id == "id-gone" || c.id == "id-orphan")
    );
}

#[test]
fn plans_are_deterministic_whatever_the_read_order() {
    let records = owned(vec![
        simple("b.example.com.", 60, &["192.0.2.2"]),
        simple("a.example.com.", 60, &["192.0.2.1"]),
        weighted("c.example.com.", "c A x", 3, "192.0.2.3", None),
    ]);
    let desired = desired_of(vec![
        simple("a.example.com.", 30, &["192.0.2.1"]),
        simple("d.example.com.", 30, &["192.0.2.4"]),
        alias(
            "e.example.com.",
            "e A primary",
            FailoverRole::Primary,
            "d.example.com.",
        ),
    ]);
    let mut reversed = records.clone();
    reversed.reverse();
    let one = run(&current_of(records), &desired);
    let two = run(&current_of(reversed), &desired);
    assert_eq!(one, two);
    assert_eq!(one.to_json(), two.to_json());
    let keys: Vec<&RecordKey> = one.zones[0].changes.iter().map(|c| c.key()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn renders_table_and_json() {
    let current = current_of(owned(vec![simple("a.example.com.", 60, &["192.0.2.1"])]));
    let desired = desired_of(vec![simple("a.example.com.", 30, &["192.0.2.1"])]);
    let plan = run(&current, &desired);
    let table = plan.render_table();
    assert!(table.contains("ACTION"), "{table}");
    assert!(table.contains("~ update  a.example.com.  A"), "{table}");
    assert!(table.contains("ttl 60 → 30"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(json["zones"][0]["changes"][0]["action"], "update");
    assert_eq!(json["zones"][0]["changes"][0]["new"]["ttl"], 30);
    assert_eq!(json["zones"][0]["changes"][0]["new"]["key"]["type"], "A");
}

// ---- properties -------------------------------------------------------------------

fn arb_value() -> impl Strategy<Value = String> {
    (1u8..6).prop_map(|i| format!("192.0.2.{i}"))
}

fn arb_record() -> impl Strategy<Value = RecordSet> {
    let name = (0u8..5).prop_map(|i| format!("n{i}.example.com."));
    (
        name,
        0u8..3,
        prop::collection::btree_set(arb_value(), 1..3),
        1u32..3,
    )
        .prop_map(|(name, kind, values, ttl)| {
            let values: Vec<String> = values.into_iter().collect();
            match kind {
                0 => RecordSet::simple(&name, RecordType::A, ttl * 30, values),
                1 => RecordSet::simple(
                    &name,
                    RecordType::Txt,
                    ttl * 30,
                    values.iter().map(|v| format!("\"{v}\"")).collect(),
                ),
                _ => RecordSet {
                    key: RecordKey::new(
                        &name,
                        RecordType::Aaaa,
                        Some(format!("{name} {}", values[0])),
                    ),
                    ttl: Some(ttl * 30),
                    values: vec![format!("2001:db8::{}", values.len())],
                    alias: None,
                    routing: Routing::Weighted { weight: ttl as u8 },
                    health_check: None,
                },
            }
        })
}

fn arb_records() -> impl Strategy<Value = Vec<RecordSet>> {
    prop::collection::vec(arb_record(), 0..12).prop_map(|records| {
        // One record set per key.
        let map: BTreeMap<RecordKey, RecordSet> =
            records.into_iter().map(|r| (r.key.clone(), r)).collect();
        map.into_values().collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// plan(apply(plan)) is empty, foreign records survive, DELETEs carry the values
    /// read, and every batch is within the limits (checked by the simulator).
    #[test]
    fn plan_then_apply_converges(
        ours in arb_records(),
        foreign in arb_records(),
        wanted in arb_records(),
    ) {
        let ours: Vec<RecordSet> = ours
            .into_iter()
            .filter(|r| !foreign.iter().any(|f| f.key.name == r.key.name))
            .collect();
        let mut records = owned(ours);
        records.extend(foreign.iter().cloned());
        let current = current_of(records.clone());
        let desired = desired_of(wanted);
        let first = run(&current, &desired);
        for change in &first.zones[0].changes {
            if let RecordChange::Delete { old } = change {
                prop_assert!(records.contains(old), "DELETE of {} not as read", old.key);
            }
        }
        let after = apply_plan(&current, &first, usize::MAX).map_err(TestCaseError::fail)?;
        for f in &foreign {
            prop_assert!(after.zones[0].records.contains(f), "foreign {} changed", f.key);
        }
        let second = run(&after, &desired);
        prop_assert!(second.is_empty(), "not converged:\n{}", second.render_table());
    }

    /// A run that stopped after any number of batches still converges on the next.
    #[test]
    fn interrupted_apply_converges(
        ours in arb_records(),
        wanted in arb_records(),
        stop_after in 0usize..3,
    ) {
        let current = current_of(owned(ours));
        let desired = desired_of(wanted);
        let first = run(&current, &desired);
        let partial = apply_plan(&current, &first, stop_after).map_err(TestCaseError::fail)?;
        let second = run(&partial, &desired);
        let done = apply_plan(&partial, &second, usize::MAX).map_err(TestCaseError::fail)?;
        let third = run(&done, &desired);
        prop_assert!(third.is_empty(), "not converged:\n{}", third.render_table());
    }
}

#[test]
fn a_removed_ip_address_or_search_string_replaces_the_check() {
    // UpdateHealthCheck cannot reset IPAddress or SearchString (a field left out keeps
    // its value), so removing either needs a new check; removing a host name or path
    // is an update with ResetElements.
    let by_name = HealthCheckSpec {
        ip_address: None,
        fqdn: Some("www.example.net".into()),
        ..http_check(30, 3)
    };
    let with_fqdn = HealthCheckSpec {
        fqdn: Some("www.example.net".into()),
        ..http_check(30, 3)
    };
    let matching = HealthCheckSpec {
        search_string: Some("ok".into()),
        ..http_check(30, 3)
    };
    assert!(!by_name.updatable_from(&with_fqdn));
    assert_eq!(
        by_name.replacement_reason(&with_fqdn),
        "its IP address was removed"
    );
    assert!(!http_check(30, 3).updatable_from(&matching));
    assert!(http_check(30, 3).updatable_from(&with_fqdn), "fqdn resets");
    assert!(
        matching.updatable_from(&http_check(30, 3)),
        "adding is fine"
    );

    let mut desired = desired_of(vec![weighted(
        "w.example.com.",
        "w A a",
        1,
        "192.0.2.1",
        Some("p/a"),
    )]);
    desired.health_checks = BTreeMap::from([("p/a".into(), by_name)]);
    let mut current = current_of(Vec::new());
    current.health_checks = vec![ExistingHealthCheck {
        id: "id-a".into(),
        caller_reference: "x".into(),
        version: 1,
        spec: with_fqdn,
        tags: health_check_tags(OWNER, "p/a"),
    }];
    let plan = run(&current, &desired);
    let kinds: Vec<&str> = plan
        .health_checks
        .iter()
        .map(|c| match c {
            HealthCheckChange::Create { .. } => "create",
            HealthCheckChange::Update { .. } => "update",
            HealthCheckChange::Delete { .. } => "delete",
        })
        .collect();
    assert_eq!(kinds, ["create", "delete"]);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("its IP address was removed")),
        "{:?}",
        plan.warnings
    );
}
