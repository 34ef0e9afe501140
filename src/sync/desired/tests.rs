use super::*;
use crate::config::ConfigSource;
use crate::health::EndpointHealth;

fn load(extra: &str) -> (Config, ZoneSet) {
    load_edited(extra, &[])
}

/// As [`load`], with each (from, to) replaced in the configuration text.
fn load_edited(extra: &str, edits: &[(&str, &str)]) -> (Config, ZoneSet) {
    let mut text = format!(
        r#"
version = 1
[zones]
directory = "{dir}/zones"

[regions.eu-west]
networks = ["198.51.100.0/25"]
[regions.us-east]
networks = ["198.51.100.128/25"]

[checks.web]
type = "http"
path = "/health"
host = "www.example.com"
route53 = {{ request_interval = 10, failure_threshold = 2, regions = ["us-east-1", "eu-west-1", "ap-southeast-1"] }}

[checks.tcp]
type = "tcp"
port = 443

[pools.eu]
region = "eu-west"
check = "web"
endpoints = [
  {{ address = "192.0.2.10", name = "eu-1" }},
  {{ address = "192.0.2.11", name = "eu-2", weight = 0 }},
]
[pools.us]
region = "us-east"
check = "tcp"
endpoints = [
  {{ address = "203.0.113.10", name = "us-1", weight = 1000 }},
  {{ address = "203.0.113.11", name = "us-2", weight = 3, force = "down" }},
]
[pools.ap]
endpoints = [ {{ address = "198.51.100.200", name = "ap-1", force = "up" }} ]

[route53]
owner_id = "unit"
zones = [ {{ zone = "gslb.example.com.", sync_static = true }} ]
{extra}
"#,
        dir = env!("CARGO_MANIFEST_DIR")
    );
    for (from, to) in edits {
        assert!(text.contains(from), "{from} not in the test configuration");
        text = text.replace(from, to);
    }
    let (config, _) = Config::load(ConfigSource::from_text(text, "."))
        .unwrap_or_else(|d| panic!("invalid test config:\n{d}"));
    let (zones, _) = crate::zone::load(&config).unwrap_or_else(|d| panic!("zones:\n{d}"));
    (config, zones)
}

const RECORDS: &str = r#"
[[records]]
name = "www.gslb.example.com."
type = "A"
ttl = 20
policy = "failover"
pools = ["eu", "us", "ap"]

[[records]]
name = "api.gslb.example.com."
type = "A"
policy = "weighted"
pools = ["eu", "us"]

[[records]]
name = "multi.gslb.example.com."
type = "A"
policy = "multivalue"
pools = ["eu", "us"]
"#;

fn keys(zone: &DesiredZone) -> Vec<String> {
    zone.records.keys().map(|k| k.to_string()).collect()
}

/// A configuration edit: what it is, replacements in the base text, the new `www`
/// line (TTL or pools; empty: none).
type Edit<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// The configuration fingerprint of each record, by name.
fn fingerprints_of(config: &Config) -> BTreeMap<String, String> {
    config
        .records
        .iter()
        .map(|r| (r.name.clone(), config_fingerprint(config, r)))
        .collect()
}

#[test]
fn the_configuration_fingerprint_changes_with_every_edit_and_only_then() {
    let mirror = RECORDS.replace(
        "policy = \"failover\"\n",
        "policy = \"failover\"\nroute53 = \"mirror\"\n",
    );
    for records in [RECORDS.to_owned(), mirror] {
        let (config, _) = load(&records);
        let base = fingerprints_of(&config);
        assert_eq!(base.len(), 3);
        assert!(base.values().all(|f| f.len() == 16));
        // Stable: the same configuration gives the same fingerprints.
        assert_eq!(fingerprints_of(&load(&records).0), base);
        let www = "www.gslb.example.com.";
        let edits: [Edit<'_>; 6] = [
            ("TTL 20 → 21", &[], "ttl = 21"),
            ("pools reordered", &[], "pools = [\"us\", \"eu\", \"ap\"]"),
            ("weight", &[("weight = 3", "weight = 4")], ""),
            (
                "endpoint added",
                &[(
                    "{ address = \"198.51.100.200\", name = \"ap-1\", force = \"up\" }",
                    "{ address = \"198.51.100.200\", name = \"ap-1\", force = \"up\" }, \
                     { address = \"198.51.100.201\", name = \"ap-2\" }",
                )],
                "",
            ),
            ("address", &[("192.0.2.10", "192.0.2.12")], ""),
            ("forced", &[(", force = \"down\"", "")], ""),
        ];
        for (what, base_edits, record_edit) in edits {
            let edited = if record_edit.is_empty() {
                records.clone()
            } else if record_edit.starts_with("ttl") {
                records.replacen("ttl = 20", record_edit, 1)
            } else {
                records.replacen("pools = [\"eu\", \"us\", \"ap\"]", record_edit, 1)
            };
            let (config, _) = load_edited(&edited, base_edits);
            let now = fingerprints_of(&config);
            assert_ne!(now[www], base[www], "{what} changes www's fingerprint");
            if record_edit.is_empty() {
                continue;
            }
            // An edit of one record leaves the others' fingerprints alone.
            for (name, fingerprint) in &base {
                if name != www {
                    assert_eq!(&now[name], fingerprint, "{what}: {name}");
                }
            }
        }
        // Probe settings that Route 53 never sees leave mirror fingerprints alone.
        let (config, _) = load_edited(&records, &[("port = 443", "port = 443\nrise = 5")]);
        let now = fingerprints_of(&config);
        assert_eq!(now[www], base[www]);
    }
}

#[test]
fn native_failover_chains_pools_through_hidden_names() {
    let (config, zones) = load(RECORDS);
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    assert!(state.unsupported.is_empty(), "{:?}", state.unsupported);
    let zone = &state.zones[0];
    let www: Vec<&RecordSet> = zone
        .records
        .values()
        .map(|d| &d.set)
        .filter(|s| s.key.name.ends_with("www.gslb.example.com."))
        .collect();
    let described: Vec<String> = www
        .iter()
        .map(|s| format!("{} {}", s.key, super::super::plan::describe_record(s)))
        .collect();
    let expected = [
        "_failover-1.www.gslb.example.com. A [_failover-1.www A primary] failover PRIMARY, alias → _pool-us.www.gslb.example.com.",
        "_failover-1.www.gslb.example.com. A [_failover-1.www A secondary] failover SECONDARY, alias → _pool-ap.www.gslb.example.com.",
        // Pools with max_answers > 1: multivalue sets, one per endpoint, each with its
        // check; the drained eu-2 is left out.
        "_pool-ap.www.gslb.example.com. A [_pool-ap.www A ap/ap-1] multivalue, ttl 20, 198.51.100.200",
        "_pool-eu.www.gslb.example.com. A [_pool-eu.www A eu/eu-1] multivalue, ttl 20, check (new check for eu/eu-1), 192.0.2.10",
        "_pool-us.www.gslb.example.com. A [_pool-us.www A us/us-1] multivalue, ttl 20, check (new check for us/us-1), 203.0.113.10",
        "_pool-us.www.gslb.example.com. A [_pool-us.www A us/us-2] multivalue, ttl 20, check (new check for us/us-2), 203.0.113.11",
        "www.gslb.example.com. A [www A primary] failover PRIMARY, alias → _pool-eu.www.gslb.example.com.",
        "www.gslb.example.com. A [www A secondary] failover SECONDARY, alias → _failover-1.www.gslb.example.com.",
    ];
    assert_eq!(described, expected);
}

#[test]
fn native_weighted_scales_weights_and_builds_checks() {
    let (config, zones) = load(RECORDS);
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    let api: Vec<(String, Routing)> = state.zones[0]
        .records
        .values()
        .filter(|d| d.set.key.name == "api.gslb.example.com.")
        .map(|d| (d.set.values[0].clone(), d.set.routing.clone()))
        .collect();
    let weight = |w| Routing::Weighted { weight: w };
    assert_eq!(
        api,
        vec![
            ("192.0.2.10".into(), weight(1)),
            ("192.0.2.11".into(), weight(0)),
            ("203.0.113.10".into(), weight(255)),
            ("203.0.113.11".into(), weight(1)),
        ]
    );
    let eu1 = &state.health_checks["eu/eu-1"];
    assert_eq!(eu1.protocol, HealthCheckProtocol::Http);
    assert_eq!(eu1.ip_address.as_deref(), Some("192.0.2.10"));
    assert_eq!(eu1.fqdn.as_deref(), Some("www.example.com"));
    assert_eq!(eu1.resource_path.as_deref(), Some("/health"));
    assert_eq!((eu1.request_interval, eu1.failure_threshold), (10, 2));
    assert_eq!(eu1.regions, ["ap-southeast-1", "eu-west-1", "us-east-1"]);
    let us2 = &state.health_checks["us/us-2"];
    assert_eq!(us2.protocol, HealthCheckProtocol::Tcp);
    assert_eq!(us2.port, Some(443));
    assert!(us2.disabled && us2.inverted, "forced down");
    // Forced up without a check: no check needed at all.
    assert!(!state.health_checks.contains_key("ap/ap-1"));
}

#[test]
fn geo_is_unsupported_natively_and_mirrors_the_default_list() {
    let geo = r#"
[[records]]
name = "edge.gslb.example.com."
type = "A"
policy = "geo"
[records.geo]
eu-west = ["eu"]
default = ["us", "eu"]
"#;
    let (config, zones) = load(geo);
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    assert_eq!(state.unsupported.len(), 1);
    assert!(state.unsupported[0].reason.contains("mirror"));
    let mirrored = geo.replace("policy = \"geo\"", "policy = \"geo\"\nroute53 = \"mirror\"");
    let (config, zones) = load(&mirrored);
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    assert!(state.unsupported.is_empty());
    let edge = state.zones[0]
        .records
        .values()
        .find(|d| d.set.key.name == "edge.gslb.example.com.")
        .unwrap();
    // Default list, failover: us is up (us-1), us-2 is forced down.
    assert_eq!(edge.set.values, ["203.0.113.10"]);
    assert_eq!(edge.set.routing, Routing::Simple);
    assert!(matches!(edge.source, RecordSource::Mirror { .. }));
}

#[test]
fn mirror_follows_health() {
    let records = RECORDS.replace(
        "pools = [\"eu\", \"us\", \"ap\"]",
        "pools = [\"eu\", \"us\", \"ap\"]\nroute53 = \"mirror\"\nall_down_ttl = 5",
    );
    let (config, zones) = load(&records);
    let healthy = HealthSnapshot::from_config(&config);
    let www = |state: &DesiredState| {
        state.zones[0]
            .records
            .values()
            .find(|d| d.set.key.name == "www.gslb.example.com.")
            .map(|d| (d.set.values.clone(), d.set.ttl))
    };
    let state = desired_state(&config, &zones, &healthy);
    assert_eq!(www(&state), Some((vec!["192.0.2.10".to_owned()], Some(20))));
    // eu-1 down: eu has no usable endpoint (eu-2 is drained), so us answers.
    let eu1 = crate::model::EndpointIndex(0);
    let down = EndpointHealth {
        state: HealthState::Down,
        source: crate::health::HealthSource::Observed,
    };
    let state = desired_state(&config, &zones, &healthy.with(eu1, down));
    assert_eq!(
        www(&state),
        Some((vec!["203.0.113.10".to_owned()], Some(20)))
    );
    // Mirror records need no health checks and no hidden names.
    assert!(
        state.zones[0]
            .records
            .keys()
            .all(|k| !k.name.starts_with("_pool"))
    );
}

#[test]
fn static_records_skip_apex_ns_and_soa() {
    let (config, zones) = load("");
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    let keys = keys(&state.zones[0]);
    assert!(
        !keys
            .iter()
            .any(|k| k == "gslb.example.com. NS" || k == "gslb.example.com. SOA")
    );
    let value = |name: &str, record_type: RecordType| {
        state.zones[0].records[&RecordKey::new(name, record_type, None)]
            .set
            .values
            .clone()
    };
    assert_eq!(
        value("gslb.example.com.", RecordType::Mx),
        ["10 mx1.gslb.example.com."]
    );
    assert_eq!(
        value("gslb.example.com.", RecordType::Txt),
        ["\"v=spf1 -all\""]
    );
    assert_eq!(
        value("*.wild.gslb.example.com.", RecordType::A),
        ["192.0.2.99"]
    );
    assert_eq!(
        value("lab.gslb.example.com.", RecordType::Ns),
        ["ns.lab.gslb.example.com."]
    );
    assert_eq!(
        value("static.gslb.example.com.", RecordType::Aaaa),
        ["2001:db8::80"]
    );
    assert_eq!(
        value("legacy.gslb.example.com.", RecordType::Cname),
        ["www.example.net."]
    );
}

#[test]
fn route53_values_of_other_types() {
    assert_eq!(
        route53_value(rtype::SRV, &[0, 1, 0, 2, 0, 80, 1, b'a', 0]).unwrap(),
        "1 2 80 a."
    );
    let caa = [
        0u8, 5, b'i', b's', b's', b'u', b'e', b'c', b'a', b'.', b'n', b'e', b't',
    ];
    assert_eq!(route53_value(257, &caa).unwrap(), "0 issue \"ca.net\"");
    assert!(route53_value(rtype::A, &[1, 2, 3]).is_err());
}

#[test]
fn example_configuration_is_valid_and_fully_supported() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/route53.toml");
    let (config, warnings) =
        Config::load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(warnings.warnings.is_empty(), "{warnings}");
    let (zones, _) = crate::zone::load(&config).unwrap_or_else(|d| panic!("{d}"));
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    assert!(state.unsupported.is_empty(), "{:?}", state.unsupported);
    assert_eq!(state.health_checks.len(), 4);
}

#[test]
fn section_mode_is_the_default_of_records() {
    let (config, _) = load(RECORDS);
    assert!(
        config
            .records
            .iter()
            .all(|r| r.route53 == Route53Mode::Native)
    );
    // `extra` lands inside [route53]: `mode = "mirror"` makes mirror the default.
    let (config, zones) = load(&format!("mode = \"mirror\"\n{RECORDS}"));
    assert!(
        config
            .records
            .iter()
            .all(|r| r.route53 == Route53Mode::Mirror)
    );
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    assert!(
        state.health_checks.is_empty(),
        "mirror mode creates no health checks"
    );
}

#[test]
fn a_name_too_long_for_its_marker_is_refused_not_written_unmarked() {
    // 4 labels of 55 and "gslb.example.com.": 241 characters, 242 octets — valid —
    // but "_failoverd-owner." makes the marker 259 octets.
    let label = "a".repeat(55);
    let name = format!("{label}.{label}.{label}.{label}.gslb.example.com.");
    assert!(name.len() < 255, "the name itself is valid");
    let extra = format!(
        "{RECORDS}\n[[records]]\nname = \"{name}\"\ntype = \"A\"\npolicy = \"failover\"\npools = [\"eu\"]\n"
    );
    let (config, zones) = load(&extra);
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    let refused: Vec<&Unsupported> = state
        .unsupported
        .iter()
        .filter(|u| u.reason.contains("ownership marker"))
        .collect();
    assert!(!refused.is_empty(), "{:?}", state.unsupported);
    assert!(
        refused[0].reason.contains("shorten the name by"),
        "{}",
        refused[0].reason
    );
    assert!(
        state.zones[0]
            .records
            .keys()
            .all(|k| !k.name.ends_with(&format!("{label}.b.gslb.example.com."))),
        "nothing of it is written"
    );
}

/// The sets at names ending in `suffix`, described as the plan shows them.
fn described(state: &DesiredState, suffix: &str) -> Vec<String> {
    state.zones[0]
        .records
        .values()
        .map(|d| &d.set)
        .filter(|s| s.key.name.ends_with(suffix))
        .map(|s| format!("{} {}", s.key, super::super::plan::describe_record(s)))
        .collect()
}

#[test]
fn native_records_follow_operator_drains_and_forced_states() {
    let (config, zones) = load(RECORDS);
    let eu1 = config.endpoint_by_label("eu/eu-1").expect("eu-1");
    let us1 = config.endpoint_by_label("us/us-1").expect("us-1");
    let us2 = config.endpoint_by_label("us/us-2").expect("us-2");
    let mut drained = vec![false; config.endpoints.len()];
    drained[eu1.0 as usize] = true;
    let forced = |state| EndpointHealth {
        state,
        source: crate::health::HealthSource::Forced,
    };
    let health = HealthSnapshot::from_config(&config)
        .with(us1, forced(HealthState::Down))
        // Released at run time: no longer forced down.
        .with(
            us2,
            EndpointHealth {
                state: HealthState::Up,
                source: crate::health::HealthSource::Observed,
            },
        )
        .with_overrides(drained, vec![None; config.records.len()]);
    let state = desired_state(&config, &zones, &health);
    // Drained: weight 0 in the weighted record, left out of multivalue, no check.
    let api = described(&state, "api.gslb.example.com.");
    assert!(
        api.iter().any(|s| s.contains("eu/eu-1] weight 0, ttl")),
        "{api:#?}"
    );
    assert!(
        !api.iter()
            .any(|s| s.contains("eu/eu-1") && s.contains("check"))
    );
    let multi = described(&state, "multi.gslb.example.com.");
    assert!(!multi.iter().any(|s| s.contains("eu/eu-1")), "{multi:#?}");
    assert!(!state.health_checks.contains_key("eu/eu-1"));
    // Forced down at run time: disabled and inverted; released: an ordinary check.
    let us1_check = &state.health_checks["us/us-1"];
    assert!(us1_check.disabled && us1_check.inverted);
    let us2_check = &state.health_checks["us/us-2"];
    assert!(!us2_check.disabled && !us2_check.inverted);
}

#[test]
fn a_manual_failover_reorders_the_chain_or_pins_the_pool_first() {
    let (config, zones) = load(RECORDS);
    let us = config.pool_by_name("us").expect("us");
    let pins = vec![Some(us); config.records.len()];
    let health = HealthSnapshot::from_config(&config)
        .with_overrides(vec![false; config.endpoints.len()], pins);
    let state = desired_state(&config, &zones, &health);
    let www = described(&state, "www.gslb.example.com.");
    assert!(
        www.contains(&"www.gslb.example.com. A [www A primary] failover PRIMARY, alias → _pool-us.www.gslb.example.com.".to_owned()),
        "{www:#?}"
    );
    assert!(www.contains(&"_failover-1.www.gslb.example.com. A [_failover-1.www A primary] failover PRIMARY, alias → _pool-eu.www.gslb.example.com.".to_owned()));
    // Weighted: PRIMARY the pinned pool alone, SECONDARY every pool.
    let api = described(&state, "api.gslb.example.com.");
    assert!(
        api.contains(&"api.gslb.example.com. A [api A primary] failover PRIMARY, alias → _pool-us.api.gslb.example.com.".to_owned()),
        "{api:#?}"
    );
    assert!(api.contains(&"api.gslb.example.com. A [api A secondary] failover SECONDARY, alias → _pools.api.gslb.example.com.".to_owned()));
    assert!(
        api.iter()
            .any(|s| s.starts_with("_pools.api.gslb.example.com. A [_pools.api A eu/eu-1]"))
    );
    assert!(
        !api.iter()
            .any(|s| s.starts_with("_pool-us.api.gslb.example.com. A [_pool-us.api A eu/"))
    );
    // The guard does not count what the failover changes (the new aliases and the
    // sets they replace): every set keeps its record's configuration fingerprint.
    let released = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    let fingerprints = |state: &DesiredState| -> BTreeSet<String> {
        state.zones[0]
            .records
            .values()
            .filter(|r| r.set.key.name.ends_with("api.gslb.example.com."))
            .filter_map(|r| r.source.config_fingerprint().map(str::to_owned))
            .collect()
    };
    assert_eq!(fingerprints(&state).len(), 1);
    assert_eq!(fingerprints(&state), fingerprints(&released));
    // Released: back to the sets of the configuration.
    assert!(
        !described(&released, "api.gslb.example.com.")
            .iter()
            .any(|s| s.contains("_pools"))
    );
}

#[test]
fn min_healthy_above_one_becomes_a_calculated_check_on_the_pool_alias() {
    let extra = format!(
        "{RECORDS}\n[pools.big]\nmin_healthy = 2\ncheck = \"tcp\"\nendpoints = [\n  \
         {{ address = \"192.0.2.20\", name = \"b1\" }},\n  {{ address = \"192.0.2.21\", name = \"b2\" }},\n  \
         {{ address = \"192.0.2.22\", name = \"b3\" }},\n]\n\n[[records]]\nname = \"db.gslb.example.com.\"\n\
         type = \"A\"\npolicy = \"failover\"\npools = [\"big\", \"us\"]\n"
    );
    let (config, zones) = load(&extra);
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    let calc = &state.health_checks["pool:big"];
    assert!(calc.is_calculated());
    assert_eq!(calc.health_threshold, Some(2));
    assert_eq!(
        calc.children,
        ["big/b1", "big/b2", "big/b3"].map(|k| HealthCheckRef::Key(k.into()))
    );
    let db = described(&state, "db.gslb.example.com.");
    let primary = db
        .iter()
        .find(|s| s.starts_with("db.gslb.example.com. A [db A primary]"))
        .expect("primary");
    assert!(
        primary.contains("check (new check for pool:big)"),
        "{primary}"
    );
    let alias = state.zones[0]
        .records
        .values()
        .find(|d| d.set.key.set_identifier.as_deref() == Some("db A primary"))
        .and_then(|d| d.set.alias.clone())
        .expect("alias");
    assert!(
        !alias.evaluate_target_health,
        "the calculated check decides"
    );
    // Draining one endpoint leaves two children, still needing two.
    let b3 = config.endpoint_by_label("big/b3").expect("b3");
    let mut drained = vec![false; config.endpoints.len()];
    drained[b3.0 as usize] = true;
    let health = HealthSnapshot::from_config(&config)
        .with_overrides(drained, vec![None; config.records.len()]);
    let state = desired_state(&config, &zones, &health);
    assert_eq!(state.health_checks["pool:big"].children.len(), 2);
    // A pool that needs one healthy endpoint gets no calculated check.
    assert!(!state.health_checks.contains_key("pool:us"));
}

#[test]
fn dials_become_weights_of_weighted_records_and_refuse_the_others() {
    let extra = r#"
[pools.d1]
check = "tcp"
endpoints = [ { address = "192.0.2.31", name = "a" } ]
[pools.d2]
check = "tcp"
endpoints = [ { address = "192.0.2.32", name = "b" } ]
[[records]]
name = "dial.gslb.example.com."
type = "A"
policy = "weighted"
pools = ["d1", "d2"]
[[records]]
name = "dialf.gslb.example.com."
type = "A"
policy = "failover"
pools = ["d1", "d2"]
[[records]]
name = "dialm.gslb.example.com."
type = "A"
policy = "multivalue"
pools = ["d1", "d2"]
"#;
    let (config, zones) = load(extra);
    let d1 = config.pool_by_name("d1").expect("d1");
    let mut dials = vec![None; config.pools.len()];
    dials[d1.0 as usize] = crate::health::overrides::Percent::new(25).ok();
    let health = HealthSnapshot::from_config(&config).with_dials(dials);
    let state = desired_state(&config, &zones, &health);
    // Weighted 50/50, d1 at 25 %: d1 12.5 %, d2 87.5 % → weights 37 : 255.
    let weighted = described(&state, "dial.gslb.example.com.");
    assert!(
        weighted.iter().any(|s| s.contains("d1/a] weight 37, ttl")),
        "{weighted:#?}"
    );
    assert!(
        weighted.iter().any(|s| s.contains("d2/b] weight 255, ttl")),
        "{weighted:#?}"
    );
    // Failover over two pools and multivalue: refused at plan time, with the fix.
    let refused: Vec<&Unsupported> = state.unsupported.iter().collect();
    for (record, why) in [
        (
            "dialf.gslb.example.com. A",
            "a Route 53 failover record answers one pool at a time",
        ),
        (
            "dialm.gslb.example.com. A",
            "Route 53 multivalue answers cannot",
        ),
    ] {
        let found = refused
            .iter()
            .find(|u| u.record == record)
            .unwrap_or_else(|| panic!("{record} not refused: {refused:#?}"));
        assert!(
            found.reason.contains("pool d1 is dialled to 25%")
                && found.reason.contains(why)
                && found.reason.contains("failoverd ctl release d1"),
            "{}",
            found.reason
        );
    }
    // Without the dial: equal weights, nothing refused.
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    assert!(state.unsupported.is_empty(), "{:#?}", state.unsupported);
}

#[test]
fn degraded_is_not_expressible_natively_and_mirror_writes_the_scaled_weights() {
    let slow = [(
        "path = \"/health\"\n",
        "path = \"/health\"\ndegraded_latency = \"300ms\"\n",
    )];
    let (config, zones) = load_edited(RECORDS, &slow);
    let state = desired_state(&config, &zones, &HealthSnapshot::from_config(&config));
    assert!(
        state
            .warnings
            .iter()
            .any(|w| w.contains("check \"web\": degraded endpoints cannot be expressed")),
        "{:?}",
        state.warnings
    );
    // Mirror: eu-1 (weight 1) degraded at 0.25 against us-1 (weight 1): 64 to 255.
    let mirrored = RECORDS.replace(
        "policy = \"weighted\"",
        "policy = \"weighted\"\nroute53 = \"mirror\"",
    );
    let edits = [slow[0], ("weight = 1000", "weight = 1")];
    let (config, zones) = load_edited(&mirrored, &edits);
    let eu1 = crate::model::EndpointIndex(0);
    let health = HealthSnapshot::from_config(&config).with_degraded(
        (0..config.endpoints.len())
            .map(|i| (i == eu1.0 as usize).then_some(250))
            .collect(),
    );
    let state = desired_state(&config, &zones, &health);
    let api: Vec<(String, Routing)> = state.zones[0]
        .records
        .values()
        .filter(|d| d.set.key.name == "api.gslb.example.com.")
        .map(|d| (d.set.values[0].clone(), d.set.routing.clone()))
        .collect();
    assert_eq!(
        api,
        [
            ("192.0.2.10".to_owned(), Routing::Weighted { weight: 64 }),
            ("203.0.113.10".to_owned(), Routing::Weighted { weight: 255 }),
        ]
    );
}
