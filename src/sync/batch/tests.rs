use proptest::prelude::*;

use super::*;
use crate::sync::model::{AliasTarget, FailoverRole, RecordKey};
use crate::sync::owner::marker_for;

const ZONE: &str = "example.com.";

fn a_record(name: &str, values: usize) -> RecordSet {
    RecordSet::simple(
        name,
        RecordType::A,
        60,
        (0..values)
            .map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
            .collect(),
    )
}

fn txt_record(name: &str, chars: usize) -> RecordSet {
    RecordSet::simple(
        name,
        RecordType::Txt,
        60,
        vec![format!("\"{}\"", "x".repeat(chars))],
    )
}

fn create(record: RecordSet) -> RecordChange {
    RecordChange::Create { new: record }
}

fn zone_plan(changes: Vec<RecordChange>) -> ZonePlan {
    ZonePlan {
        zone: ZONE.into(),
        hosted_zone_id: "Z1".into(),
        changes,
        conflicts: Vec::new(),
        owned_records: 0,
        mirror_keys: Default::default(),
        health_driven: Default::default(),
    }
}

fn alias_to(name: &str, role: FailoverRole, target: &str) -> RecordSet {
    RecordSet {
        key: RecordKey::new(
            name,
            RecordType::A,
            Some(format!("{name} {}", role.as_str())),
        ),
        ttl: None,
        values: Vec::new(),
        alias: Some(AliasTarget {
            hosted_zone_id: "Z1".into(),
            dns_name: target.into(),
            evaluate_target_health: true,
        }),
        routing: Routing::Failover { role },
        health_check: None,
    }
}

#[test]
fn splits_at_1000_resource_records() {
    let changes: Vec<RecordChange> = (0..2500)
        .map(|i| create(a_record(&format!("r{i}.example.com."), 1)))
        .collect();
    let (batches, rejected) = batches(&zone_plan(changes));
    assert!(rejected.is_empty());
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].cost().0, 1000);
    assert!(batches.iter().all(Batch::within_limits));
    assert_eq!(
        batches.iter().map(|b| b.changes().count()).sum::<usize>(),
        2500
    );
}

#[test]
fn upsert_counts_twice() {
    let changes: Vec<RecordChange> = (0..600)
        .map(|i| {
            let record = a_record(&format!("r{i}.example.com."), 1);
            RecordChange::Update {
                old: record.clone(),
                new: record,
            }
        })
        .collect();
    let (batches, _) = batches(&zone_plan(changes));
    // 600 UPSERTs = 1200 counted records: two requests.
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].changes().count(), 500);
    assert!(batches.iter().all(Batch::within_limits));
}

#[test]
fn splits_at_32000_value_characters() {
    // 12 values of 3000 characters: 36,000 > 32,000 although only 12 records.
    let changes: Vec<RecordChange> = (0..12)
        .map(|i| create(txt_record(&format!("t{i}.example.com."), 250)))
        .chain((0..12).map(|i| {
            let mut record = RecordSet::simple(
                &format!("big{i}.example.com."),
                RecordType::Txt,
                60,
                vec![
                    std::iter::repeat_n(format!("\"{}\"", "y".repeat(250)), 11)
                        .collect::<Vec<_>>()
                        .join(" "),
                ],
            );
            record.values.sort();
            create(record)
        }))
        .collect();
    let (batches, rejected) = batches(&zone_plan(changes));
    assert!(rejected.is_empty(), "{rejected:?}");
    assert!(batches.len() >= 2);
    for batch in &batches {
        assert!(batch.cost().1 <= MAX_VALUE_CHARS, "{:?}", batch.cost());
    }
}

#[test]
fn local_rules_reject_what_route53_would() {
    let too_long_value = RecordSet::simple(
        "t.example.com.",
        RecordType::Txt,
        60,
        vec![
            std::iter::repeat_n("\"a\"", 1500)
                .collect::<Vec<_>>()
                .join(" "),
        ],
    );
    let long_txt_string = txt_record("s.example.com.", 256);
    let not_an_ip = RecordSet::simple(
        "n.example.com.",
        RecordType::A,
        60,
        vec!["not-an-ip".into()],
    );
    let mut missing_set_id = a_record("m.example.com.", 1);
    missing_set_id.routing = Routing::Weighted { weight: 1 };
    let ok = a_record("ok.example.com.", 1);
    let (batches, rejected) = batches(&zone_plan(vec![
        create(too_long_value),
        create(long_txt_string),
        create(not_an_ip),
        create(missing_set_id),
        create(ok),
    ]));
    let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(rejected.len(), 4, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("4000")));
    assert!(reasons.iter().any(|r| r.contains("255")));
    assert!(reasons.iter().any(|r| r.contains("IPv4")));
    assert!(reasons.iter().any(|r| r.contains("set identifier")));
    assert_eq!(
        batches.iter().map(|b| b.changes().count()).sum::<usize>(),
        1
    );
}

#[test]
fn markers_travel_with_their_records_and_aliases_follow_targets() {
    let pool = RecordSet {
        key: RecordKey::new(
            "_pool-eu.www.example.com.",
            RecordType::A,
            Some("eu-1".into()),
        ),
        ttl: Some(30),
        values: vec!["192.0.2.1".into()],
        alias: None,
        routing: Routing::Weighted { weight: 1 },
        health_check: None,
    };
    let primary = alias_to(
        "www.example.com.",
        FailoverRole::Primary,
        "_pool-eu.www.example.com.",
    );
    let old = a_record("gone.example.com.", 1);
    let old_alias = alias_to(
        "www2.example.com.",
        FailoverRole::Primary,
        "gone.example.com.",
    );
    let mut changes = vec![
        create(primary.clone()),
        create(marker_for(&primary.key, ZONE, "o", None)),
        create(pool.clone()),
        create(marker_for(&pool.key, ZONE, "o", None)),
        RecordChange::Delete { old: old.clone() },
        RecordChange::Delete {
            old: marker_for(&old.key, ZONE, "o", None),
        },
        RecordChange::Delete {
            old: old_alias.clone(),
        },
    ];
    changes.sort_by(|a, b| a.key().cmp(b.key()));
    let (batches, _) = batches(&zone_plan(changes));
    assert_eq!(batches.len(), 1);
    let order: Vec<(Action, String)> = batches[0]
        .changes()
        .map(|c| (c.action, c.record.key.name.clone()))
        .collect();
    let position = |action: Action, name: &str| {
        order
            .iter()
            .position(|(a, n)| *a == action && n == name)
            .unwrap()
    };
    // Target before alias; marker before its record on create, after on delete;
    // deletes last, alias before its target.
    assert!(
        position(Action::Create, "_pool-eu.www.example.com.")
            < position(Action::Create, "www.example.com.")
    );
    assert!(
        position(Action::Create, "_failoverd-owner._pool-eu.www.example.com.")
            < position(Action::Create, "_pool-eu.www.example.com.")
    );
    assert!(
        position(Action::Delete, "gone.example.com.")
            < position(Action::Delete, "_failoverd-owner.gone.example.com.")
    );
    assert!(
        position(Action::Delete, "www2.example.com.")
            < position(Action::Delete, "gone.example.com.")
    );
    assert!(
        position(Action::Create, "www.example.com.")
            < position(Action::Delete, "www2.example.com.")
    );
}

#[test]
fn replacement_at_one_name_is_one_atomic_group() {
    let old = a_record("www.example.com.", 2);
    let new = RecordSet {
        key: RecordKey::new("www.example.com.", RecordType::A, Some("www A x".into())),
        ttl: Some(30),
        values: vec!["192.0.2.9".into()],
        alias: None,
        routing: Routing::Weighted { weight: 1 },
        health_check: None,
    };
    let (batches, _) = batches(&zone_plan(vec![create(new), RecordChange::Delete { old }]));
    let group = &batches[0].groups[0];
    assert!(group.atomic);
    assert_eq!(
        group.changes[0].action,
        Action::Delete,
        "DELETE before CREATE"
    );
}

#[test]
fn oversized_group_is_split_with_markers_first() {
    // 700 weighted endpoints at one name + 700 markers: 1400 records, two requests.
    let mut changes = Vec::new();
    for i in 0..700 {
        let record = RecordSet {
            key: RecordKey::new(
                "big.example.com.",
                RecordType::A,
                Some(format!("big A e{i}")),
            ),
            ttl: Some(30),
            values: vec![format!("10.0.{}.{}", i / 256, i % 256)],
            alias: None,
            routing: Routing::Weighted { weight: 1 },
            health_check: None,
        };
        changes.push(create(marker_for(&record.key, ZONE, "o", None)));
        changes.push(create(record));
    }
    let (batches, _) = batches(&zone_plan(changes));
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(Batch::within_limits));
    // Every marker is sent no later than its record.
    let sequence: Vec<&Change> = batches.iter().flat_map(Batch::changes).collect();
    for (i, change) in sequence.iter().enumerate() {
        if !change.is_marker() {
            let marker = marker_for(&change.record.key, ZONE, "o", None);
            let at = sequence.iter().position(|c| c.record == marker).unwrap();
            assert!(at < i);
        }
    }
}

fn arb_change() -> impl Strategy<Value = RecordChange> {
    (0u16..400, 1usize..6, 0u8..3, 0usize..300).prop_map(|(n, values, action, txt)| {
        let record = if txt > 0 && n % 3 == 0 {
            txt_record(&format!("t{n}.example.com."), txt.min(255))
        } else {
            a_record(&format!("r{n}.example.com."), values)
        };
        match action {
            0 => RecordChange::Create { new: record },
            1 => RecordChange::Update {
                old: record.clone(),
                new: record,
            },
            _ => RecordChange::Delete { old: record },
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Every batch is within the limits, nothing is lost or duplicated, and creates
    /// and updates come before pure deletes.
    #[test]
    fn batches_are_within_limits_and_complete(changes in prop::collection::vec(arb_change(), 0..1500)) {
        let mut unique: std::collections::BTreeMap<RecordKey, RecordChange> = Default::default();
        for change in changes {
            unique.insert(change.key().clone(), change);
        }
        let changes: Vec<RecordChange> = unique.into_values().collect();
        let (batches, rejected) = batches(&zone_plan(changes.clone()));
        prop_assert!(rejected.is_empty());
        for batch in &batches {
            prop_assert!(batch.within_limits(), "{:?}", batch.cost());
        }
        let sent: Vec<&Change> = batches.iter().flat_map(Batch::changes).collect();
        prop_assert_eq!(sent.len(), changes.len());
        let first_delete = sent.iter().position(|c| c.action == Action::Delete).unwrap_or(sent.len());
        prop_assert!(sent[first_delete..].iter().all(|c| c.action == Action::Delete));
        for planned in &changes {
            let expected = Change::from_planned(planned);
            prop_assert!(sent.contains(&&expected));
        }
    }
}

fn weighted_at(name: &str, i: usize) -> RecordSet {
    RecordSet {
        key: RecordKey::new(name, RecordType::A, Some(format!("e{i}"))),
        ttl: Some(30),
        values: vec![format!("10.0.{}.{}", i / 256, i % 256)],
        alias: None,
        routing: Routing::Weighted { weight: 1 },
        health_check: None,
    }
}

/// Every record set's change travels with its marker's change.
fn assert_units_whole(parts: &[&ChangeGroup]) {
    for part in parts {
        for change in part.changes.iter().filter(|c| !c.is_marker()) {
            let marker = marker_for(&change.record.key, ZONE, "o", None);
            assert!(
                part.changes.iter().any(|c| c.record == marker),
                "{} sent without its marker",
                change.record.key
            );
        }
    }
}

#[test]
fn bisection_never_separates_a_record_from_its_marker() {
    let mut changes = Vec::new();
    for i in 0..7 {
        let record = weighted_at("w.example.com.", i);
        changes.push(create(marker_for(&record.key, ZONE, "o", None)));
        changes.push(create(record));
    }
    let (batches, _) = batches(&zone_plan(changes));
    assert_eq!(batches.len(), 1);
    // Bisect down to single units, as apply does for a rejected batch.
    let mut queue = vec![batches[0].groups.clone()];
    let mut leaves = Vec::new();
    while let Some(groups) = queue.pop() {
        match bisect(groups.clone()) {
            Some((left, right)) => {
                assert_units_whole(&left.iter().chain(right.iter()).collect::<Vec<_>>());
                queue.push(left);
                queue.push(right);
            }
            None => leaves.push(groups),
        }
    }
    assert_eq!(leaves.len(), 7, "one leaf per record set");
    for leaf in &leaves {
        assert_eq!(leaf[0].changes.len(), 2, "a record set and its marker");
        assert_eq!(leaf[0].changes[0].phase(), 0, "marker first");
    }
}

#[test]
fn an_atomic_replacement_is_not_bisected() {
    let old = a_record("r.example.com.", 1);
    let new = weighted_at("r.example.com.", 1);
    let plan = zone_plan(vec![
        create(marker_for(&new.key, ZONE, "o", None)),
        create(new),
        RecordChange::Delete {
            old: marker_for(&old.key, ZONE, "o", None),
        },
        RecordChange::Delete { old },
    ]);
    let (batches, _) = batches(&plan);
    assert!(batches[0].groups[0].atomic);
    assert_eq!(bisect(batches[0].groups.clone()), None);
}

#[test]
fn an_unresolved_health_check_drops_the_marker_too() {
    let mut checked = weighted_at("c.example.com.", 1);
    checked.health_check = Some(HealthCheckRef::Key("pool/e1".into()));
    let plain = weighted_at("c.example.com.", 2);
    let plan = zone_plan(vec![
        create(marker_for(&checked.key, ZONE, "o", None)),
        create(checked.clone()),
        create(marker_for(&plain.key, ZONE, "o", None)),
        create(plain.clone()),
    ]);
    let (batches, _) = batches(&plan);
    let (kept, dropped) = drop_unresolved(batches);
    assert_eq!(dropped.len(), 2);
    assert!(dropped.iter().any(|c| c.record == checked));
    assert!(
        dropped
            .iter()
            .any(|c| c.record == marker_for(&checked.key, ZONE, "o", None))
    );
    let sent: Vec<&Change> = kept.iter().flat_map(Batch::changes).collect();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().any(|c| c.record == plain));
}

#[test]
fn an_oversized_group_splits_along_units() {
    let mut changes = Vec::new();
    for i in 0..700 {
        let record = weighted_at("big.example.com.", i);
        changes.push(create(marker_for(&record.key, ZONE, "o", None)));
        changes.push(create(record));
    }
    let (batches, _) = batches(&zone_plan(changes));
    assert_eq!(batches.len(), 2);
    let parts: Vec<&ChangeGroup> = batches.iter().flat_map(|b| b.groups.iter()).collect();
    assert_units_whole(&parts);
}
