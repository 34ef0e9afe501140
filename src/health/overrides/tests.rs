//! Overrides: checks against the config, effects, expiry, and convergence of merges.

use proptest::prelude::*;

use super::*;
use crate::config::ConfigSource;

fn config() -> Config {
    let text = r#"
version = 1
[pools.eu]
endpoints = [{ address = "192.0.2.1", name = "a" }, { address = "192.0.2.2", name = "b" }]
[pools.us]
endpoints = [{ address = "198.51.100.1", name = "a" }]
[pools.v6]
endpoints = [{ address = "2001:db8::1" }]
[[records]]
name = "www.example."
type = "A"
policy = "failover"
pools = ["eu", "us"]
[[records]]
name = "www.example."
type = "AAAA"
policy = "failover"
pools = ["v6"]
"#;
    match Config::load(ConfigSource::from_text(text.to_owned(), ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}"),
    }
}

fn change(target: Target, action: Option<Action>) -> Change {
    Change {
        target,
        action,
        by: "test".into(),
        reason: "because".into(),
        expires_in_ms: None,
        allow_empty: false,
    }
}

#[test]
fn effects_follow_the_overrides_in_force() {
    let config = config();
    let mut set = OverrideSet::default();
    let ep = Target::Endpoint("eu/a".into());
    set.apply(
        change(ep.clone(), Some(Action::ForceDown)),
        &config,
        "s1",
        10,
    )
    .unwrap();
    set.apply(
        change(Target::Pool("us".into()), Some(Action::Drain)),
        &config,
        "s1",
        11,
    )
    .unwrap();
    let www = Target::record("WWW.example", None);
    set.apply(
        change(www.clone(), Some(Action::Failover("us".into()))),
        &config,
        "s1",
        12,
    )
    .unwrap();
    let effects = set.effects(&config, 20);
    assert_eq!(effects.forced, [Some(HealthState::Down), None, None, None]);
    assert_eq!(effects.drained, [false, false, true, false]);
    // Only the A record lists pool us; the AAAA record of the name is untouched.
    assert_eq!(effects.pins, [config.pool_by_name("us"), None]);
    // A release wins over the override it releases.
    set.apply(change(ep, None), &config, "s1", 30).unwrap();
    assert_eq!(set.effects(&config, 31).forced, [None; 4]);
    assert_eq!(set.active(31).count(), 2);
}

#[test]
fn changes_that_do_not_fit_the_config_are_refused() {
    let config = config();
    let mut set = OverrideSet::default();
    let refused = |set: &mut OverrideSet, target, action| {
        set.apply(change(target, Some(action)), &config, "s1", 1)
            .unwrap_err()
            .to_string()
    };
    assert!(
        refused(&mut set, Target::Endpoint("eu/z".into()), Action::Drain)
            .contains("no endpoint eu/z")
    );
    assert!(
        refused(&mut set, Target::Pool("eu".into()), Action::ForceDown)
            .contains("does not apply to a pool")
    );
    assert!(
        refused(
            &mut set,
            Target::record("www.example.", Some(DynamicType::A)),
            Action::Failover("v6".into())
        )
        .contains("its pools: eu, us")
    );
    assert!(
        refused(
            &mut set,
            Target::record("nope.example.", None),
            Action::Failover("eu".into())
        )
        .contains("no record nope.example.")
    );
    assert_eq!(set.entries().count(), 0, "nothing refused is kept");
}

#[test]
fn expiry_releases_and_old_tombstones_are_forgotten() {
    let config = config();
    let mut set = OverrideSet::default();
    let mut c = change(Target::Endpoint("eu/b".into()), Some(Action::Drain));
    c.expires_in_ms = Some(1_000);
    set.apply(c, &config, "s1", 5_000).unwrap();
    assert_eq!(set.next_expiry(5_000), Some(6_000));
    assert!(set.effects(&config, 5_999).drained[1]);
    assert!(!set.effects(&config, 6_000).drained[1]);
    assert_eq!(set.next_expiry(6_000), None);
    set.collect_garbage(6_000 + TOMBSTONE_KEEP_MS - 1);
    assert_eq!(
        set.entries().count(),
        1,
        "kept while a stale copy could return"
    );
    set.collect_garbage(6_000 + TOMBSTONE_KEEP_MS);
    assert_eq!(set.entries().count(), 0);
}

#[test]
fn stamps_move_forward_past_every_stamp_seen() {
    let config = config();
    let (mut a, mut b) = (OverrideSet::default(), OverrideSet::default());
    let target = Target::Endpoint("eu/a".into());
    // b's clock is far ahead; a has seen its entry, so a's next stamp is later still,
    // although a's own wall clock is behind.
    let from_b = b
        .apply(
            change(target.clone(), Some(Action::Drain)),
            &config,
            "b",
            9_000,
        )
        .unwrap()
        .remove(0);
    a.merge([from_b.clone()]);
    let from_a = a
        .apply(change(target.clone(), None), &config, "a", 1_000)
        .unwrap()
        .remove(0);
    assert!(from_a.stamp > from_b.stamp);
    assert_eq!(b.merge([from_a.clone()]), std::slice::from_ref(&from_a));
    assert_eq!(a, b, "both hold the release");
    assert!(
        a.merge([from_b]).is_empty(),
        "the older entry changes nothing"
    );
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    let targets = prop_oneof![
        Just(Target::Endpoint("eu/a".into())),
        Just(Target::Endpoint("eu/b".into())),
        Just(Target::Pool("us".into())),
    ];
    let actions = prop_oneof![
        Just(None),
        Just(Some(Action::Drain)),
        Just(Some(Action::ForceDown)),
        Just(Some(Action::ForceUp)),
    ];
    (
        targets,
        actions,
        0u64..20,
        0u32..3,
        prop_oneof![Just("s1"), Just("s2"), Just("s3")],
    )
        .prop_map(|(target, action, ms, counter, origin)| Entry {
            target,
            action,
            by: format!("{origin}-user"),
            reason: String::new(),
            at_ms: ms,
            expires_at_ms: None,
            stamp: Stamp {
                ms,
                counter,
                origin: origin.into(),
            },
        })
}

proptest! {
    /// Servers that received the same entries in any order, in any grouping, hold the
    /// same set and the same effects.
    #[test]
    fn merges_converge_whatever_the_order(
        entries in proptest::collection::vec(arb_entry(), 0..24),
        seed in any::<u64>(),
        split in 0usize..24,
    ) {
        let config = config();
        let in_order = OverrideSet::from_entries(entries.clone());
        let mut shuffled = entries.clone();
        let mut rng = crate::model::SplitMix64::new(seed);
        for i in (1..shuffled.len()).rev() {
            let j = (crate::model::RandomSource::next_u64(&mut rng) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        // Two halves merged separately, then each other's, twice (idempotent).
        let split = split.min(shuffled.len());
        let mut a = OverrideSet::from_entries(shuffled[..split].to_vec());
        let b = OverrideSet::from_entries(shuffled[split..].to_vec());
        a.merge(b.entries().cloned().collect::<Vec<_>>());
        a.merge(b.entries().cloned().collect::<Vec<_>>());
        prop_assert_eq!(
            a.entries().collect::<Vec<_>>(),
            in_order.entries().collect::<Vec<_>>()
        );
        prop_assert_eq!(a.effects(&config, 100), in_order.effects(&config, 100));
    }
}

/// Every policy, and pools in every role: answered, fallback, gate, unused.
fn policies() -> Config {
    let text = r#"
version = 1
[checks.pg]
type = "tcp"
port = 5432
[pools.eu]
endpoints = [
  { address = "192.0.2.1", name = "a" },
  { address = "192.0.2.2", name = "idle", weight = 0 },
  { address = "192.0.2.3", name = "pinned", force = "up" },
  { address = "192.0.2.4", name = "off", force = "down" },
]
[pools.us]
endpoints = [{ address = "198.51.100.1", name = "a" }]
[pools.gated]
endpoints = [{ address = "198.51.100.2", name = "a" }]
[pools.standby]
endpoints = [{ address = "198.51.100.3", name = "a" }]
[pools.spare]
endpoints = [{ address = "198.51.100.4", name = "a" }, { address = "198.51.100.6", name = "b" }]
[pools.unused]
endpoints = [{ address = "198.51.100.5", name = "a" }]
[pools.db]
check = "pg"
endpoints = [{ address = "203.0.113.1", name = "p" }, { address = "203.0.113.2", name = "r" }]
[pools.dbspare]
endpoints = [{ address = "203.0.113.3", name = "a" }]
[[records]]
name = "www.example."
type = "A"
policy = "failover"
pools = ["eu", "us"]
all_down = "fallback"
fallback_pool = "spare"
[[records]]
name = "gated.example."
type = "A"
policy = "failover"
pools = ["gated", "us"]
gates = { gated = "standby" }
[[records]]
name = "api.example."
type = "A"
policy = "weighted"
pools = ["eu", "us"]
[[records]]
name = "solo.example."
type = "A"
policy = "multivalue"
pools = ["us"]
[[records]]
name = "db.example."
type = "A"
policy = "primary"
pools = ["db"]
all_down = "fallback"
fallback_pool = "dbspare"
"#;
    match Config::load(ConfigSource::from_text(text.to_owned(), ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn overrides_that_change_nothing_are_refused_with_the_reason() {
    let config = policies();
    let mut set = OverrideSet::default();
    let mut try_change = |target: Target, action: Action| {
        set.apply(change(target, Some(action)), &config, "s1", 1)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let record = |name: &str| Target::record(name, None);
    let endpoint = |label: &str| Target::Endpoint(label.into());
    let failover = |pool: &str| Action::Failover(pool.into());
    let refused = |result: Result<(), String>, expected: &str| {
        let error = result.expect_err(expected);
        assert!(error.contains("changes nothing"), "{error}");
        assert!(error.contains(expected), "{error}");
    };
    // Manual failover of a primary record (README: it does not apply there).
    refused(
        try_change(record("db.example"), failover("db")),
        "is a primary record: it answers the one endpoint whose check claims primary",
    );
    // A failover record: its first pool (no gate) is answered first already; another
    // pool moves traffic; a gated first pool is moved past its gate.
    refused(
        try_change(record("www.example"), failover("eu")),
        "pool eu is already the first pool of www.example. A, and no gate holds it",
    );
    assert_eq!(try_change(record("www.example"), failover("us")), Ok(()));
    assert_eq!(
        try_change(record("gated.example"), failover("gated")),
        Ok(())
    );
    // Weighted and multivalue: a pool of several narrows the answers; the only pool
    // does not.
    assert_eq!(try_change(record("api.example"), failover("eu")), Ok(()));
    refused(
        try_change(record("solo.example"), failover("us")),
        "pool us is the only pool solo.example. A answers from",
    );
    // Endpoints: what the configuration does already, and pools no answer uses.
    refused(
        try_change(endpoint("eu/idle"), Action::Drain),
        "eu/idle is drained by the configuration already (weight = 0)",
    );
    refused(
        try_change(endpoint("eu/pinned"), Action::ForceUp),
        "forced up by the configuration already",
    );
    refused(
        try_change(endpoint("eu/off"), Action::ForceDown),
        "forced down by the configuration already",
    );
    assert_eq!(try_change(endpoint("eu/off"), Action::ForceUp), Ok(()));
    assert_eq!(try_change(endpoint("eu/pinned"), Action::Drain), Ok(()));
    for action in [Action::Drain, Action::ForceUp, Action::ForceDown] {
        refused(
            try_change(endpoint("unused/a"), action),
            "no record answers from pool unused, falls back to it or is gated by it",
        );
    }
    refused(
        try_change(Target::Pool("unused".into()), Action::Drain),
        "no record answers from pool unused",
    );
    // A fallback pool is answered whatever its health: forcing it up changes nothing,
    // forcing it down or draining it does (a primary record's fallback ignores drains).
    refused(
        try_change(endpoint("spare/a"), Action::ForceUp),
        "pool spare is only a fallback",
    );
    assert_eq!(try_change(endpoint("spare/a"), Action::Drain), Ok(()));
    assert_eq!(try_change(endpoint("spare/b"), Action::ForceDown), Ok(()));
    refused(
        try_change(endpoint("dbspare/a"), Action::Drain),
        "by primary records, drained or not",
    );
    // A gate's endpoints decide whether traffic may move: every action counts.
    for action in [Action::Drain, Action::ForceUp, Action::ForceDown] {
        assert_eq!(try_change(endpoint("standby/a"), action), Ok(()));
    }
    // A primary record's endpoints: drains and forces change who may claim primary.
    for action in [Action::Drain, Action::ForceUp, Action::ForceDown] {
        assert_eq!(try_change(endpoint("db/r"), action), Ok(()));
    }
    // A change that replaces a different override in force on its target changes
    // something (it ends that one): forcing up a fallback endpoint forced down.
    assert_eq!(try_change(endpoint("spare/b"), Action::ForceUp), Ok(()));
    refused(
        try_change(endpoint("spare/b"), Action::ForceUp),
        "pool spare is only a fallback",
    );
    // A peer's entry is merged even when it changes nothing here (it was made under
    // the peer's configuration; refusing it would split the cluster's sets).
    let entry = Entry {
        target: record("db.example"),
        action: Some(failover("db")),
        by: "peer".into(),
        reason: "made under another configuration".into(),
        at_ms: 1,
        expires_at_ms: None,
        stamp: Stamp {
            ms: 1,
            counter: 0,
            origin: "s2".into(),
        },
    };
    assert_eq!(check_entry(&entry, Some(&config), 1), Ok(()));
}

#[test]
fn globs_match_within_a_label_path() {
    for (pattern, text, want) in [
        ("web-eu/*", "web-eu/eu-1", true),
        ("web-eu/*", "web-us/us-1", false),
        ("*/eu-1", "web-eu/eu-1", true),
        ("*", "web-eu/eu-1", false),
        ("*/*", "web-eu/eu-1", true),
        ("web-*", "web-eu", true),
        ("web-?u", "web-eu", true),
        ("web-?", "web-eu", false),
        ("*.example.", "www.example.", true),
        ("*.example.", "a.b.example.", true),
        ("WWW.*", "www.example.", true),
        ("eu*a", "eu-b-a", true),
        ("eu*a", "eu-b-b", false),
    ] {
        assert_eq!(glob_match(pattern, text), want, "{pattern} vs {text}");
    }
}

fn release(target: Target) -> Change {
    change(target, None)
}

#[test]
fn a_release_that_ends_nothing_is_refused_naming_what_is_in_force() {
    let config = config();
    let mut set = OverrideSet::default();
    // Nothing at all.
    let error = set
        .apply(release(Target::Endpoint("eu/a".into())), &config, "s1", 1)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "endpoint eu/a has nothing in force, nor has any related target; nothing to release"
    );
    // A typo is still an unknown target.
    assert_eq!(
        set.apply(release(Target::Endpoint("eu/zz".into())), &config, "s1", 1),
        Err(OverrideError::UnknownTarget(Target::Endpoint(
            "eu/zz".into()
        )))
    );
    // An untyped failover in force: a typed release ends nothing and says so.
    let www = Target::record("www.example", None);
    set.apply(
        change(www.clone(), Some(Action::Failover("us".into()))),
        &config,
        "s1",
        2,
    )
    .unwrap();
    let error = set
        .apply(
            release(Target::record("www.example", Some(DynamicType::A))),
            &config,
            "s1",
            3,
        )
        .unwrap_err();
    assert!(matches!(error, OverrideError::NothingInForce { .. }));
    assert_eq!(
        error.to_string(),
        "record www.example. A has nothing in force; in force: failover to us on record \
         www.example. (untyped: it covers every type of the name; release it without --type)"
    );
    // A pool drain in force: releasing one of its endpoints names it.
    set.apply(
        change(Target::Pool("eu".into()), Some(Action::Drain)),
        &config,
        "s1",
        4,
    )
    .unwrap();
    let error = set
        .apply(release(Target::Endpoint("eu/b".into())), &config, "s1", 5)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("in force: drain on pool eu (the whole pool: undrain eu)"),
        "{error}"
    );
    // An expired override: said so.
    let mut expiring = change(Target::Endpoint("us/a".into()), Some(Action::ForceDown));
    expiring.expires_in_ms = Some(10);
    set.apply(expiring, &config, "s1", 6).unwrap();
    let error = set
        .apply(
            release(Target::Endpoint("us/a".into())),
            &config,
            "s1",
            1_000,
        )
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("(its force down expired at 1970-01-01T00:00:00Z)"),
        "{error}"
    );
}

#[test]
fn an_untyped_change_covers_the_typed_ones() {
    let config = config();
    let mut set = OverrideSet::default();
    let typed = Target::record("www.example", Some(DynamicType::A));
    let untyped = Target::record("www.example", None);
    set.apply(
        change(typed.clone(), Some(Action::Failover("us".into()))),
        &config,
        "s1",
        1,
    )
    .unwrap();
    // An untyped release ends the typed failover (it has nothing of its own).
    let made = set
        .apply(release(untyped.clone()), &config, "s1", 2)
        .unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].target, typed);
    assert_eq!(made[0].action, None);
    assert_eq!(set.effects(&config, 3).pins, [None, None]);
    // An untyped failover replaces a typed one: the typed entry is ended with it.
    set.apply(
        change(typed.clone(), Some(Action::Failover("us".into()))),
        &config,
        "s1",
        4,
    )
    .unwrap();
    let made = set
        .apply(
            change(untyped.clone(), Some(Action::Failover("us".into()))),
            &config,
            "s1",
            5,
        )
        .unwrap();
    let targets: Vec<(&Target, bool)> = made
        .iter()
        .map(|e| (&e.target, e.action.is_some()))
        .collect();
    assert_eq!(targets, [(&untyped, true), (&typed, false)]);
    assert_eq!(set.active(6).count(), 1);
    // A typed failover on top refines its type; a typed release ends only it.
    set.apply(
        change(typed.clone(), Some(Action::Failover("eu".into()))),
        &config,
        "s1",
        7,
    )
    .unwrap_err(); // eu is already first: changes nothing by itself
    let made = set
        .apply(release(untyped.clone()), &config, "s1", 8)
        .unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(set.active(9).count(), 0);
}

#[test]
fn patterns_and_regions_expand_all_or_nothing() {
    let text = r#"
version = 1
[regions.emea]
networks = ["192.0.2.0/24"]
[pools.eu]
region = "emea"
endpoints = [{ address = "192.0.2.1", name = "a" }, { address = "192.0.2.2", name = "b" }, { address = "192.0.2.3", name = "c", weight = 0 }]
[pools.eu2]
region = "emea"
endpoints = [{ address = "192.0.2.9", name = "a" }]
[pools.us]
endpoints = [{ address = "198.51.100.1", name = "a" }]
[[records]]
name = "www.example."
type = "A"
policy = "failover"
pools = ["eu", "eu2", "us"]
"#;
    let config = Config::load(ConfigSource::from_text(text, "."))
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut set = OverrideSet::default();
    // A pattern matching nothing names what there is.
    let error = set
        .apply(
            change(Target::Endpoint("ap/*".into()), Some(Action::Drain)),
            &config,
            "s1",
            1,
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "endpoint ap/* matches nothing in the configuration (there are: eu/a, eu/b, eu/c, eu2/a, us/a)"
    );
    // One target refused (eu/c is drained by the configuration): none is changed.
    let error = set
        .apply(
            change(Target::Endpoint("eu/*".into()), Some(Action::Drain)),
            &config,
            "s1",
            2,
        )
        .unwrap_err();
    assert!(
        matches!(&error, OverrideError::Expanded { count: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().starts_with("endpoint eu/* matches 3 targets; none was changed: endpoint eu/c: drain of endpoint eu/c changes nothing"), "{error}");
    assert!(matches!(error.root(), OverrideError::NoEffect { .. }));
    assert_eq!(set.entries().count(), 0);
    // `?`: every endpoint of eu forced down (a force of a drained one is a change).
    let made = set
        .apply(
            change(Target::Endpoint("eu/?".into()), Some(Action::ForceDown)),
            &config,
            "s1",
            3,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(made.len(), 3);
    // A region: its pools drained, one entry each.
    let made = set
        .apply(
            change(Target::Region("emea".into()), Some(Action::Drain)),
            &config,
            "s1",
            4,
        )
        .unwrap();
    let targets: Vec<String> = made.iter().map(|e| e.target.to_string()).collect();
    assert_eq!(targets, ["pool eu", "pool eu2"]);
    // Releasing the region ends what is in force on its pools and their endpoints.
    let made = set
        .apply(release(Target::Region("emea".into())), &config, "s1", 5)
        .unwrap();
    assert_eq!(made.len(), 5);
    assert_eq!(set.active(6).count(), 0);
    // An unknown region; a region of no pool; a failover of a region.
    assert!(matches!(
        set.apply(
            change(Target::Region("mars".into()), Some(Action::Drain)),
            &config,
            "s1",
            7
        ),
        Err(OverrideError::NoMatch { .. })
    ));
    assert!(matches!(
        set.apply(
            change(
                Target::Region("emea".into()),
                Some(Action::Failover("us".into()))
            ),
            &config,
            "s1",
            7
        ),
        Err(OverrideError::Mismatch { .. })
    ));
    // A peer never sends a pattern or region: refused as unknown.
    let entry = Entry {
        target: Target::Region("emea".into()),
        action: Some(Action::Drain),
        by: "x".into(),
        reason: "x".into(),
        at_ms: 1,
        expires_at_ms: None,
        stamp: Stamp {
            ms: 1,
            counter: 0,
            origin: "s2".into(),
        },
    };
    assert!(check_entry(&entry, Some(&config), 10).is_err());
}

#[test]
fn a_dial_is_a_pool_override_checked_like_the_others() {
    let config = config();
    let mut set = OverrideSet::default();
    let eu = Target::Pool("eu".into());
    let dial = |p: i64| Some(Action::Dial(Percent::new(p).unwrap()));
    // 100 % with nothing in force changes nothing; on an endpoint or a record it is
    // a mismatch.
    let refused = set.apply(change(eu.clone(), dial(100)), &config, "s1", 1);
    assert!(
        matches!(refused, Err(OverrideError::NoEffect { .. })),
        "{refused:?}"
    );
    for target in [
        Target::Endpoint("eu/a".into()),
        Target::record("www.example", None),
    ] {
        let refused = set.apply(change(target, dial(50)), &config, "s1", 1);
        assert!(
            matches!(refused, Err(OverrideError::Mismatch { .. })),
            "{refused:?}"
        );
    }
    // 10, then 50 (replaces it), then 100 (replaces 50), expiring.
    set.apply(change(eu.clone(), dial(10)), &config, "s1", 2)
        .unwrap();
    assert_eq!(set.effects(&config, 3).dials[0], Percent::new(10).ok());
    set.apply(change(eu.clone(), dial(50)), &config, "s1", 4)
        .unwrap();
    let mut expiring = change(eu.clone(), dial(100));
    expiring.expires_in_ms = Some(1_000);
    set.apply(expiring, &config, "s1", 5).unwrap();
    assert_eq!(
        set.effects(&config, 6).dials,
        [Percent::new(100).ok(), None, None]
    );
    assert_eq!(set.effects(&config, 1_005).dials, [None, None, None]);
    // A release ends one, and a peer's copy merges and checks like any entry.
    set.apply(change(eu.clone(), dial(0)), &config, "s1", 2_000)
        .unwrap();
    let entry = set.get(&eu).unwrap().clone();
    assert_eq!(check_entry(&entry, Some(&config), 2_001), Ok(()));
    let mut peer = OverrideSet::default();
    peer.merge([entry]);
    assert_eq!(peer.effects(&config, 2_001).dials[0], Percent::new(0).ok());
    set.apply(change(eu.clone(), None), &config, "s1", 2_002)
        .unwrap();
    assert_eq!(set.effects(&config, 2_003).dials, [None, None, None]);
}

#[test]
fn a_dial_percent_is_a_whole_number_from_0_to_100() {
    let action: Action = serde_json::from_str(r#"{"dial": 50}"#).unwrap();
    assert_eq!(action, Action::Dial(Percent::new(50).unwrap()));
    assert_eq!(serde_json::to_string(&action).unwrap(), r#"{"dial":50}"#);
    for bad in [
        r#"{"dial": -1}"#,
        r#"{"dial": 101}"#,
        r#"{"dial": "abc"}"#,
        r#"{"dial": 2.5}"#,
    ] {
        let error = serde_json::from_str::<Action>(bad).unwrap_err().to_string();
        assert!(
            error.contains("action.dial") && error.contains("0 to 100"),
            "{bad}: {error}"
        );
    }
    assert_eq!("10%".parse::<Percent>(), Percent::new(10));
    assert!("abc".parse::<Percent>().is_err());
    assert!("101".parse::<Percent>().is_err());
}
