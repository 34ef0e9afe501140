//! Each rejected configuration gets a clear error at its key path, all errors at once.

use failoverd::config::{ConfigSource, Diagnostics};
use failoverd::service;

use crate::support::{data_dir, run_binary};

/// A valid base: one zone (tests/data/zones/example.test.zone and deep), one pool.
const BASE: &str = r#"
version = 1
[zones]
directory = "../zones"
[pools.web]
endpoints = [{ address = "192.0.2.1" }, { address = "192.0.2.2" }]
"#;

fn errors(extra: &str) -> Diagnostics {
    let text = format!("{BASE}\n{extra}");
    match service::load(ConfigSource::from_text(text, data_dir().join("configs"))) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(diagnostics) => diagnostics,
    }
}

/// Asserts one error mentions `path` and `text` (and has a line number).
fn assert_error(diagnostics: &Diagnostics, path: &str, text: &str) {
    let found = diagnostics.errors.iter().find(|e| {
        e.path.as_ref().is_some_and(|p| p.to_string() == path) && e.message.contains(text)
    });
    let Some(error) = found else {
        panic!("no error at {path} containing {text:?}; got:\n{diagnostics}");
    };
    assert!(error.line.is_some(), "error without a line: {error}");
}

fn record(name: &str, rtype: &str, extra: &str) -> String {
    format!(
        "[[records]]\nname = \"{name}\"\ntype = \"{rtype}\"\npolicy = \"failover\"\npools = [\"web\"]\n{extra}\n"
    )
}

#[test]
fn base_config_is_valid() {
    let text = format!("{BASE}\n{}", record("app.example.test", "A", ""));
    service::load(ConfigSource::from_text(text, data_dir().join("configs"))).expect("valid");
}

#[test]
fn dynamic_name_outside_every_zone() {
    let d = errors(&record("www.elsewhere.test", "A", ""));
    assert_error(&d, "records[0].name", "outside every zone");
}

#[test]
fn clash_with_a_static_record() {
    let d = errors(&record("www.example.test", "A", ""));
    assert_error(&d, "records[0].name", "clashes with the static A");
}

#[test]
fn cname_beside_other_data() {
    // A dynamic CNAME where the zone has data, a dynamic A where the zone has a CNAME,
    // and two dynamic records at one name, one a CNAME.
    let pools = "[pools.hosts]\nendpoints = [{ address = \"a.example.net\" }]\n";
    let text = format!(
        "{pools}{}{}{}{}",
        "[[records]]\nname = \"www.example.test\"\ntype = \"CNAME\"\npolicy = \"failover\"\npools = [\"hosts\"]\n",
        record("alias1.example.test", "A", ""),
        record("new.example.test", "A", ""),
        "[[records]]\nname = \"new.example.test\"\ntype = \"CNAME\"\npolicy = \"failover\"\npools = [\"hosts\"]\n",
    );
    let d = errors(&text);
    assert_error(&d, "records[0].name", "CNAME cannot share its name");
    assert_error(&d, "records[1].name", "CNAME at this name");
    assert_error(&d, "records[3].type", "CNAME cannot share a name");
}

#[test]
fn unknown_pool() {
    let d = errors(
        "[[records]]\nname = \"app.example.test\"\ntype = \"A\"\npolicy = \"failover\"\npools = [\"web\", \"nope\"]\n",
    );
    assert_error(&d, "records[0].pools[1]", "unknown pool \"nope\"");
}

#[test]
fn duplicate_endpoints() {
    let d = errors(
        "[pools.dup]\nendpoints = [{ address = \"192.0.2.9\" }, { address = \"192.0.2.9\" }]\n",
    );
    assert_error(&d, "pools.dup.endpoints[1].address", "duplicate endpoint");
}

#[test]
fn negative_weight() {
    let d = errors("[pools.neg]\nendpoints = [{ address = \"192.0.2.9\", weight = -1 }]\n");
    assert_error(
        &d,
        "pools.neg.endpoints[0].weight",
        "negative; use 0 to drain",
    );
}

#[test]
fn ttl_out_of_range() {
    let d = errors(&format!(
        "{}{}",
        record("a.example.test", "A", "ttl = 0"),
        record("b.example.test", "A", "ttl = 100000")
    ));
    assert_error(&d, "records[0].ttl", "out of range 1..=86400");
    assert_error(&d, "records[1].ttl", "out of range 1..=86400");
}

#[test]
fn unknown_keys_and_types_are_reported_with_their_path() {
    let d = errors(
        "[pools.typo]\nendpoints = [{ address = \"192.0.2.9\", wieght = 2 }]\n[server]\nlisten = 53\n",
    );
    assert_error(
        &d,
        "pools.typo.endpoints[0].wieght",
        "unknown field `wieght`",
    );
    assert_error(&d, "server.listen", "invalid type");
}

#[test]
fn rrl_and_tcp_limits_are_checked_at_their_key_paths() {
    let d = errors(
        "[server]\ntcp_max_connections = 10\ntcp_max_connections_per_source = 11\n\
         [server.rrl]\nrate = 0\nslip = -1\nipv4_prefix = 33\nipv6_prefix = 129\n\
         table_size = 12\nwhitelist = [\"10.0.0.1/8\", \"nope\"]\nburst = 3\n",
    );
    assert_error(&d, "server.rrl.burst", "unknown field `burst`");
    let d = errors(
        "[server]\ntcp_max_connections = 10\ntcp_max_connections_per_source = 11\n\
         [server.rrl]\nrate = 0\nslip = -1\nipv4_prefix = 33\nipv6_prefix = 129\n\
         table_size = 12\nwhitelist = [\"10.0.0.1/8\", \"nope\"]\n",
    );
    assert_error(
        &d,
        "server.tcp_max_connections_per_source",
        "out of range 1..=10",
    );
    assert_error(&d, "server.rrl.rate", "out of range 1..=1000000");
    assert_error(&d, "server.rrl.slip", "out of range 0..=100");
    assert_error(&d, "server.rrl.ipv4_prefix", "out of range 8..=32");
    assert_error(&d, "server.rrl.ipv6_prefix", "out of range 16..=128");
    assert_error(&d, "server.rrl.table_size", "out of range 1024..=16777216");
    assert_error(&d, "server.rrl.whitelist[0]", "host bits set");
    assert_error(&d, "server.rrl.whitelist[1]", "not a network in CIDR form");
}

#[test]
fn dnstap_and_udp_io_are_checked_at_their_key_paths() {
    let d = errors(
        "[server]\nudp_io = \"fast\"\n[dnstap]\nqueue = 0\nlog_queries = false\nlog_responses = false\n",
    );
    assert_error(&d, "server.udp_io", "is not \"batched\"");
    assert_error(&d, "dnstap.socket", "missing");
    assert_error(&d, "dnstap.queue", "out of range 1–1048576");
    assert_error(&d, "dnstap.log_queries", "remove [dnstap] to turn it off");
    let d = errors("[dnstap]\nsocket = \"tap.sock\"\nformat = \"json\"\n");
    assert_error(&d, "dnstap.format", "unknown field `format`");
    let d = errors("[server]\nlisten = [\"0.0.0.0:53\", \"[::]:53\"]\nudp_io = \"xdp\"\n");
    assert_error(&d, "server.udp_io", "0.0.0.0:53 names none");
}

#[test]
fn rrl_is_off_by_default_and_an_empty_table_turns_it_on_with_defaults() {
    let load = |extra: &str| {
        let text = format!("{BASE}\n{extra}");
        service::load(ConfigSource::from_text(text, data_dir().join("configs")))
            .expect("valid")
            .config
    };
    let off = load("");
    assert!(off.server.rrl.is_none());
    assert_eq!(off.server.tcp_max_connections, 1024);
    assert_eq!(off.server.tcp_max_connections_per_source, 32);
    let on = load("[server.rrl]\n");
    assert_eq!(on.server.rrl, Some(failoverd::config::RrlConfig::DEFAULT));
    let tuned = load(
        "[server.rrl]\nrate = 5\nslip = 0\ntable_size = 3000\nwhitelist = [\"192.0.2.0/24\"]\n",
    );
    let rrl = tuned.server.rrl.clone().expect("on");
    assert_eq!((rrl.rate, rrl.slip, rrl.table_size), (5, 0, 4096));
    assert_eq!(rrl.whitelist, vec!["192.0.2.0/24".parse().unwrap()]);
}

#[test]
fn every_error_is_reported_at_once() {
    let d = errors(&format!(
        "{}{}{}[pools.bad]\nmin_healthy = 5\nendpoints = [{{ address = \"not an address\" }}]\n",
        record("www.elsewhere.test", "A", ""),
        record("x.example.test", "A", "ttl = -5\nall_down = \"maybe\""),
        "[[records]]\nname = \"y.example.test\"\ntype = \"MX\"\npolicy = \"random\"\n",
    ));
    assert!(d.errors.len() >= 6, "{d}");
    assert_error(&d, "records[0].name", "outside every zone");
    assert_error(&d, "records[1].ttl", "out of range");
    assert_error(&d, "records[1].all_down", "not one of");
    assert_error(&d, "records[2].type", "not a dynamic record type");
    assert_error(&d, "records[2].policy", "not one of");
    assert_error(
        &d,
        "pools.bad.endpoints[0].address",
        "neither an IP address nor a host name",
    );
}

#[test]
fn address_family_must_match_the_record_type() {
    let d = errors(&record("app.example.test", "AAAA", ""));
    assert_error(&d, "records[0].pools", "needs IPv6 addresses");
}

#[test]
fn check_config_prints_every_error_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    let zones = data_dir().join("zones");
    let text = format!(
        "version = 1\n[zones]\ndirectory = {:?}\n[pools.web]\nendpoints = [{{ address = \"192.0.2.1\", weight = -3 }}]\n{}{}",
        zones.display().to_string(),
        record("www.example.test", "A", ""),
        record("q.example.test", "A", "pools = [\"nope\"]").replace("pools = [\"web\"]\n", ""),
    );
    std::fs::write(&path, text).unwrap();
    let (ok, stderr) = run_binary(&["check-config", path.to_str().unwrap()]);
    assert!(!ok, "exit status must be non-zero");
    assert!(stderr.contains("pools.web.endpoints[0].weight"), "{stderr}");
    assert!(
        stderr.contains("records[1].pools[0]: unknown pool"),
        "{stderr}"
    );
    assert!(stderr.contains("broken.toml:"), "file and line: {stderr}");
    // The record clashing with static data is reported too.
    assert!(stderr.contains("records[0].name"), "{stderr}");
}

#[test]
fn deny_warnings_turns_warnings_into_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warn.toml");
    let zones = data_dir().join("zones");
    // An unused pool is a warning.
    std::fs::write(
        &path,
        format!("version = 1\n[zones]\ndirectory = {:?}\n[pools.idle]\nendpoints = [{{ address = \"192.0.2.1\" }}]\n", zones.display().to_string()),
    )
    .unwrap();
    let (ok, stderr) = run_binary(&["check-config", path.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("pool is not used"),
        "{stderr}"
    );
    let (ok, _) = run_binary(&["check-config", "--deny-warnings", path.to_str().unwrap()]);
    assert!(!ok);
}

#[test]
fn zone_file_errors_carry_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.test.zone"),
        "$ORIGIN bad.test.\n$TTL 60\n@ IN SOA ns. host. 1 2 3 4 5\nok IN A 192.0.2.1\noops IN A 999.0.0.1\n",
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "version = 1\n[zones]\ndirectory = \".\"\n").unwrap();
    let (ok, stderr) = run_binary(&["check-config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("bad.test.zone:5"), "{stderr}");
}

#[test]
fn paths_stay_right_after_invalid_entries() {
    // records[0] is invalid; the clash in records[1] must still be reported as
    // records[1], and a duplicate after an invalid endpoint is still caught.
    let d = errors(&format!(
        "{}{}[pools.dup]\nendpoints = [{{ address = \"192.0.2.7\", weight = -1 }}, {{ address = \"192.0.2.7\" }}]\n",
        "[[records]]\nname = \"x.example.test\"\ntype = \"TXT\"\npolicy = \"failover\"\npools = [\"web\"]\n",
        record("www.example.test", "A", ""),
    ));
    assert_error(&d, "records[0].type", "not a dynamic record type");
    assert_error(&d, "records[1].name", "clashes with the static A");
    assert_error(&d, "pools.dup.endpoints[0].weight", "negative");
    assert_error(&d, "pools.dup.endpoints[1].address", "duplicate endpoint");
}

#[test]
fn damping_and_isolation_are_checked() {
    let d = errors(
        "[checks.c]\ntype = \"tcp\"\nport = 80\n[checks.c.damping]\nreuse = 2000\nsuppress = 1500\nhalf_life = \"1m\"\nmax_suppress = \"10s\"\npenalty = -1\n[health]\nisolation = \"lonely\"\n",
    );
    assert_error(&d, "checks.c.damping.reuse", "below suppress");
    assert_error(&d, "checks.c.damping.max_suppress", "at least half_life");
    assert_error(&d, "checks.c.damping.penalty", "above 0");
    assert_error(&d, "health.isolation", "\"hold\" or \"local\"");
    let d = errors("[checks.c]\ntype = \"tcp\"\nport = 80\ndamping = { half_lfe = \"5s\" }\n");
    assert!(d.to_string().contains("half_lfe"), "{d}");
}

#[test]
fn at_most_64_vantage_points() {
    let vantages: String = (0..65)
        .map(|i| format!("[vantages.v{i}]\nsecret = \"a-secret-of-vantage-{i:02}-0123456\"\n"))
        .collect();
    let d = errors(&format!(
        "{}\n{vantages}",
        record("app.example.test", "A", "")
    ));
    assert_error(&d, "vantages", "65 vantage points; at most 64");
}

#[test]
fn database_keys_are_checked_with_their_paths() {
    let d = errors(
        r#"
[checks.pg]
type = "postgres"
role = "leader"
max_lag = "soon"
sslmode = "maybe"
password_env = "FAILOVERD_TEST_UNSET_PASSWORD_VAR"
[checks.pgp]
type = "postgres"
role = "primary"
max_lag = "5s"
password_file = "no-such-password-file"
[checks.pga]
type = "postgres"
[checks.web]
type = "http"
role = "primary"
[pools.db]
check = "pga"
endpoints = [{ address = "192.0.2.9" }]
[pools.gate]
check = "pgp"
endpoints = [{ address = "192.0.2.8" }]
[[records]]
name = "db.example.test"
type = "A"
policy = "primary"
pools = ["db"]
on_conflict = "maybe"
max_answers = 2
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["web"]
on_conflict = "hold"
gates = { db = "gate", web = "nope" }
[[records]]
name = "multi.example.test"
type = "A"
policy = "multivalue"
pools = ["web"]
gates = { web = "gate" }
"#,
    );
    assert_error(
        &d,
        "checks.pg.role",
        "\"leader\" is not one of \"primary\", \"replica\", \"any\"",
    );
    assert_error(&d, "checks.pg.max_lag", "invalid duration");
    assert_error(
        &d,
        "checks.pg.sslmode",
        "not one of \"disable\", \"require\", \"verify-full\"",
    );
    assert_error(
        &d,
        "checks.pg.password_env",
        "FAILOVERD_TEST_UNSET_PASSWORD_VAR is not set",
    );
    assert_error(&d, "checks.pgp.max_lag", "applies to replicas");
    assert_error(
        &d,
        "checks.pgp.password_file",
        "/no-such-password-file: No such file or directory",
    );
    assert_error(&d, "checks.web", "do not apply to http checks");
    assert_error(
        &d,
        "records[0].pools",
        "needs checks that pass only on the primary",
    );
    assert_error(&d, "records[0].on_conflict", "is not \"hold\" or \"none\"");
    assert_error(&d, "records[0].max_answers", "exactly one endpoint");
    assert_error(
        &d,
        "records[1].on_conflict",
        "only used with policy = \"primary\"",
    );
    assert_error(&d, "records[1].gates.db", "not one of the record's pools");
    assert_error(&d, "records[1].gates.web", "unknown gate pool \"nope\"");
    assert_error(&d, "records[2].gates", "gates apply to failover records");
}

#[test]
fn the_patroni_example_needs_no_database_credentials() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/patroni.toml");
    let (ok, out) = run_binary(&["check-config", path, "--deny-warnings"]);
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(path).unwrap();
    let (config, _) = failoverd::config::Config::load(
        ConfigSource::from_file(std::path::Path::new(path)).unwrap(),
    )
    .unwrap();
    assert!(
        !text.contains("password"),
        "Patroni users need no DB credentials"
    );
    assert!(
        config
            .checks
            .iter()
            .all(|c| matches!(c.kind, failoverd::config::CheckKind::Http(_))),
        "every check is an http check of Patroni's (or the app's) REST API"
    );
    let db = &config.records[0];
    assert_eq!(db.selection, failoverd::config::Selection::Primary);
    let www = &config.records[1];
    assert_eq!(www.gates.len(), 1);
    let gate = config.pool(www.gates[0].gate);
    let failoverd::config::CheckKind::Http(check) = &config.check(gate.check.unwrap()).kind else {
        unreachable!()
    };
    assert_eq!(check.path, "/read-only?lag=10MB");
}

#[test]
fn the_tsig_window_is_between_a_second_and_the_largest_fudge() {
    for (value, text) in [
        ("\"0s\"", "must be between 1s and 65535s"),
        ("\"19h\"", "must be between 1s and 65535s"),
        ("\"soon\"", "invalid duration"),
    ] {
        let d = errors(&format!(
            "{}[transfer]\ntsig_window = {value}\n",
            record("app.example.test", "A", "")
        ));
        assert_error(&d, "transfer.tsig_window", text);
    }
    let text = format!(
        "{BASE}\n{}[transfer]\ntsig_window = \"2m\"\n",
        record("app.example.test", "A", "")
    );
    let (config, _) =
        failoverd::config::Config::load(ConfigSource::from_text(text, data_dir().join("configs")))
            .expect("valid");
    assert_eq!(config.transfer.tsig_window.as_secs(), 120);
}

#[test]
fn exec_checks_take_placeholders_only_as_whole_arguments() {
    let d = errors(concat!(
        "[checks.spliced]\ntype = \"exec\"\n",
        "command = [\"sh\", \"-c\", \"curl {address}\", \"{endpoint}\", \"--host={endpoint}\"]\n",
        "[checks.program]\ntype = \"exec\"\ncommand = [\"{address}\"]\n",
    ));
    assert_error(
        &d,
        "checks.spliced.command[2]",
        "splices {address} into a larger argument",
    );
    assert_error(&d, "checks.spliced.command[2]", "\"$FAILOVERD_ADDRESS\"");
    assert_error(&d, "checks.spliced.command[4]", "\"$FAILOVERD_ENDPOINT\"");
    assert_error(&d, "checks.program.command[0]", "the program cannot be");
    let at = |path: &str| {
        d.errors
            .iter()
            .filter(|e| e.path.as_ref().is_some_and(|p| p.to_string() == path))
            .count()
    };
    // A whole-argument placeholder is fine.
    assert_eq!(at("checks.spliced.command[3]"), 0, "{d}");
}

#[test]
fn exec_env_names_variables_and_port_is_optional() {
    let d = errors(concat!(
        "[checks.bad]\ntype = \"exec\"\ncommand = [\"true\"]\nport = 70000\n",
        "env = [\"OK_NAME\", \"1BAD\", \"A-B\", \"FAILOVERD_ADDRESS\"]\n",
        "[checks.web]\ntype = \"http\"\nenv = [\"HOME\"]\n",
    ));
    assert_error(&d, "checks.bad.port", "out of range");
    assert_error(&d, "checks.bad.env[1]", "not a variable name");
    assert_error(&d, "checks.bad.env[2]", "not a variable name");
    assert_error(
        &d,
        "checks.bad.env[3]",
        "set by failoverd for every exec check",
    );
    assert_error(&d, "checks.web.env", "does not apply to http checks");
    // A valid exec check with a port and env loads; a vantage secret passed on warns.
    let text = format!(
        "{BASE}\n{}\n{}",
        "[checks.db]\ntype = \"exec\"\ncommand = [\"true\"]\nport = 5432\nenv = [\"PGPASSFILE\", \"FAILOVERD_TEST_VANTAGE_SECRET\"]\n[pools.db]\ncheck = \"db\"\nendpoints = [{ address = \"192.0.2.3\" }]\n",
        "[vantages.v1]\nsecret = \"0123456789abcdef0123\"\n[vantages.v2]\nsecret_env = \"FAILOVERD_TEST_VANTAGE_SECRET\"\n[health]\nvantage = \"v1\"\n",
    );
    let source = ConfigSource::from_text(text, data_dir().join("configs"));
    let diagnostics = service::load(source.read_by(service::Reader::Agent {
        vantage: Some("v1".into()),
    }))
    .unwrap_or_else(|d| panic!("invalid:\n{d}"))
    .warnings;
    let warning = diagnostics.warnings.iter().find(|w| {
        w.path
            .as_ref()
            .is_some_and(|p| p.to_string() == "checks.db.env[1]")
    });
    assert!(
        warning.is_some_and(|w| w.message.contains("vantage point v2's secret")),
        "{diagnostics}"
    );
}

#[test]
fn endpoint_host_names_are_host_names() {
    let d = errors(concat!(
        "[pools.hosts]\nendpoints = [{ address = \"-oproxycommand.x\", name = \"a\" }, ",
        "{ address = \"web_1.example.net\", name = \"b\" }, { address = \"a.b-.example\", name = \"c\" }, ",
        "{ address = \"ok-1.example.net\", name = \"d\" }]\n",
    ));
    assert_error(
        &d,
        "pools.hosts.endpoints[0].address",
        "label \"-oproxycommand\" starts with '-'",
    );
    assert_error(&d, "pools.hosts.endpoints[1].address", "contains '_'");
    assert_error(
        &d,
        "pools.hosts.endpoints[2].address",
        "\"b-\" ends with '-'",
    );
    assert!(
        !d.errors.iter().any(|e| e
            .path
            .as_ref()
            .is_some_and(|p| p.to_string() == "pools.hosts.endpoints[3].address")),
        "{d}"
    );
}

#[test]
fn check_config_refuses_an_option_shaped_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.toml");
    let zones = data_dir().join("zones");
    std::fs::write(
        &path,
        format!(
            "version = 1\n[zones]\ndirectory = {:?}\n[pools.hosts]\nendpoints = [{{ address = \"-oproxycommand.x\" }}]\n",
            zones.display().to_string()
        ),
    )
    .unwrap();
    let (ok, stderr) = run_binary(&["check-config", path.to_str().unwrap()]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("pools.hosts.endpoints[0].address: \"-oproxycommand.x\" is neither an IP address nor a host name"),
        "{stderr}"
    );
}

/// Writes `text` as a config in a fresh directory (with `zone_files` beside it) and
/// runs check-config on it: (exit success, stderr, stdout).
fn check_config(text: &str, zone_files: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, zone) in zone_files {
        std::fs::write(dir.path().join(name), zone).unwrap();
    }
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new(crate::support::binary())
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn a_zone_that_does_not_load_is_one_error_not_one_per_record() {
    let zones = data_dir().join("zones");
    let records = format!(
        "{}{}",
        record("app.example.test", "A", ""),
        record("api.example.test", "A", "")
    );
    // A typo in a zone file's name: the file error alone.
    let (ok, stderr, stdout) = check_config(
        &format!(
            "version = 1\n[zones]\ndirectory = {:?}\nfiles = [\"exmple.test.zone\"]\n[pools.web]\nendpoints = [{{ address = \"192.0.2.1\" }}]\n{records}",
            zones.display().to_string()
        ),
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("zones.files[0]: cannot read zone file"),
        "{stderr}"
    );
    assert!(!stderr.contains("outside every zone"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
    assert!(stdout.ends_with(": 1 error, 0 warnings\n"), "{stdout}");
    // A typo inside a zone file: its line, and nothing about the records in it.
    let (ok, stderr, _) = check_config(
        &format!(
            "version = 1\n[zones]\ndirectory = \".\"\n[pools.web]\nendpoints = [{{ address = \"192.0.2.1\" }}]\n{records}"
        ),
        &[(
            "example.test.zone",
            "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns. host. 1 2 3 4 5\nns IN AA 192.0.2.1\n",
        )],
    );
    assert!(!ok);
    assert!(
        stderr.contains("example.test.zone:4: record type string unknown: AA"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_bad_endpoint_address_is_blamed_on_the_endpoint() {
    let d = errors(&format!(
        "[pools.typo]\nendpoints = [{{ address = \"192.0.2.300\" }}]\n{}",
        record("app.example.test", "A", "").replace("[\"web\"]", "[\"typo\"]")
    ));
    assert_error(
        &d,
        "pools.typo.endpoints[0].address",
        "\"192.0.2.300\" is not a valid IP address (IPv4: four numbers from 0 to 255)",
    );
    assert_eq!(d.errors.len(), 1, "{d}");
    let d = errors("[pools.v6]\nendpoints = [{ address = \"2001:db8::g\" }]\n");
    assert_error(
        &d,
        "pools.v6.endpoints[0].address",
        "not a valid IP address (IPv6",
    );
}

#[test]
fn ttls_take_a_unit_like_every_other_duration() {
    let text = format!(
        "{BASE}\n{}",
        record(
            "app.example.test",
            "A",
            "ttl = \"1m\"\nall_down_ttl = \"10s\"\nmin_ttl = 2"
        )
    );
    let loaded =
        service::load(ConfigSource::from_text(text, data_dir().join("configs"))).expect("valid");
    let www = &loaded.config.records[0];
    assert_eq!((www.ttl.0, www.all_down_ttl.0, www.min_ttl.0), (60, 10, 2));
    let d = errors(&record("app.example.test", "A", "ttl = \"1500ms\""));
    assert_error(&d, "records[0].ttl", "a TTL is whole seconds");
    let d = errors(&record("app.example.test", "A", "ttl = \"soon\""));
    assert_error(&d, "records[0].ttl", "invalid duration");
    // A record that does not parse leaves its pool alone: no "not used" warning.
    let d = errors(&record("app.example.test", "A", "ttl = 1.5"));
    assert_error(&d, "records[0].ttl", "a TTL: seconds (30) or a duration");
    assert!(d.warnings.is_empty(), "{d}");
}

#[test]
fn check_config_says_ok_on_stdout_and_a_missing_file_once() {
    let zones = data_dir().join("zones");
    let (ok, stderr, stdout) = check_config(
        &format!(
            "version = 1\n[zones]\ndirectory = {:?}\n[pools.web]\nendpoints = [{{ address = \"192.0.2.1\" }}]\n{}",
            zones.display().to_string(),
            record("app.example.test", "A", "")
        ),
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(stdout.contains(": OK ("), "{stdout}");
    assert!(
        stdout.contains(" 1 dynamic record, 1 pool; 0 warnings)"),
        "{stdout}"
    );
    let (ok, stderr) = run_binary(&["check-config", "/nonexistent/failoverd.toml"]);
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        "failoverd: cannot read /nonexistent/failoverd.toml: No such file or directory (os error 2)"
    );
}

#[test]
fn notify_source_must_be_an_address_of_this_host() {
    let secondary = "[[transfer.secondaries]]\nname = \"s\"\nnotify = [\"127.0.0.1:53\"]\n";
    for (value, text) in [
        (
            "192.0.2.1:53",
            "is not an IP address (write it without a port",
        ),
        ("0.0.0.0", "is not an address of this host"),
    ] {
        let d = errors(&format!(
            "[transfer]\nnotify_source = \"{value}\"\n{secondary}"
        ));
        assert_error(&d, "transfer.notify_source", text);
    }
    // An address this host does not have: a warning (every NOTIFY would fail).
    let text = format!("{BASE}\n[transfer]\nnotify_source = \"192.0.2.1\"\n{secondary}");
    let loaded =
        service::load(ConfigSource::from_text(text, data_dir().join("configs"))).expect("valid");
    let warning = loaded
        .warnings
        .warnings
        .iter()
        .find(|w| {
            w.path
                .as_ref()
                .is_some_and(|p| p.to_string() == "transfer.notify_source")
        })
        .unwrap_or_else(|| panic!("a warning; got:\n{}", loaded.warnings));
    assert!(warning.message.contains("NOTIFYs will fail"), "{warning}");
    // One of its own: accepted without a word.
    let text = format!("{BASE}\n[transfer]\nnotify_source = \"127.0.0.1\"\n{secondary}");
    let loaded =
        service::load(ConfigSource::from_text(text, data_dir().join("configs"))).expect("valid");
    assert!(
        !loaded.warnings.to_string().contains("notify_source"),
        "{}",
        loaded.warnings
    );
}

#[test]
fn spill_and_trickle_are_checked_and_route53_native_refuses_them() {
    let pools = "[pools.b]\ncapacity = 10\nendpoints = [{ address = \"192.0.2.3\" }]\n";
    let route53 = "[route53]\nowner_id = \"it\"\nzones = [{ zone = \"example.test.\" }]\n";
    let diagnostics = errors(&format!(
        "{pools}{route53}[[records]]\nname = \"app.example.test\"\ntype = \"A\"\npolicy = \"failover\"\n\
         pools = [\"web\", \"b\"]\nspill = true\ntrickle = 0.01\n\
         [[records]]\nname = \"t.example.test\"\ntype = \"A\"\npolicy = \"failover\"\n\
         pools = [\"b\"]\ntrickle = 0.01\n"
    ));
    assert_error(
        &diagnostics,
        "records[0].spill",
        "spill needs a capacity for every pool of the record; set [pools.web] capacity",
    );
    assert_error(
        &diagnostics,
        "records[0].spill",
        "Route 53 cannot shift shares by headroom or trickle answers itself; use route53 = \"mirror\"",
    );
    assert_error(
        &diagnostics,
        "records[1].trickle",
        "Route 53 cannot shift shares by headroom or trickle answers itself",
    );
    // Mirror mode takes them (it writes what the servers answer).
    let text = format!(
        "{BASE}\n{pools}{route53}[[records]]\nname = \"t.example.test\"\ntype = \"A\"\n\
         policy = \"failover\"\npools = [\"web\", \"b\"]\ntrickle = 0.01\nroute53 = \"mirror\"\n"
    );
    service::load(ConfigSource::from_text(text, data_dir().join("configs"))).expect("valid");
}

#[test]
fn latency_keys_are_checked_and_route53_native_refuses_latency_records() {
    let pools = "[pools.b]\nendpoints = [{ address = \"192.0.2.3\" }]\n";
    let route53 = "[route53]\nowner_id = \"it\"\nzones = [{ zone = \"example.test.\" }]\n";
    let diagnostics = errors(&format!(
        "{pools}{route53}[[records]]\nname = \"app.example.test\"\ntype = \"A\"\npolicy = \"latency\"\n\
         pools = [\"web\", \"b\"]\nmin_gain_percent = 150\n\
         [[records]]\nname = \"f.example.test\"\ntype = \"A\"\npolicy = \"failover\"\n\
         pools = [\"b\"]\nhold = \"30s\"\nroute53 = \"off\"\n"
    ));
    assert_error(
        &diagnostics,
        "records[0].min_gain_percent",
        "150 is out of range: a percentage of the current pool's RTT, 0 <= min_gain_percent <= 100",
    );
    assert_error(
        &diagnostics,
        "records[0].policy",
        "Route 53 native mode does not write latency records",
    );
    assert_error(
        &diagnostics,
        "records[1].hold",
        "hold is only used with policy = \"latency\" or select = \"latency\"; remove it",
    );
    // Mirror mode takes them (it writes what the servers answer).
    let text = format!(
        "{BASE}\n{pools}{route53}[[records]]\nname = \"t.example.test\"\ntype = \"A\"\n\
         policy = \"latency\"\npools = [\"web\", \"b\"]\nhold = \"5s\"\nroute53 = \"mirror\"\n"
    );
    service::load(ConfigSource::from_text(text, data_dir().join("configs"))).expect("valid");
}
