//! Metrics and alerts: `/metrics` passes `promtool check metrics`; the alert rules
//! pass `promtool check rules` and their unit tests (`promtool test rules`); every
//! metric the alerts and the Grafana dashboard name exists on a server's `/metrics`
//! (or the Route 53 agent's).

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use failoverd::testing::service::StartOptions;

use crate::support::require::tool;
use crate::support::{Need, TestServer, http, integration_config, require};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// promtool, for [`require!`].
pub(crate) fn promtool() -> Need<&'static str> {
    tool("promtool").map(|()| "promtool")
}

/// Runs `promtool check metrics` on a `/metrics` text (`require!`s promtool).
pub(crate) fn promtool_check_metrics(text: &str) {
    let promtool = require!(promtool());
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn metrics_text() -> String {
    let server = TestServer::start_with(
        &integration_config(),
        StartOptions {
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..StartOptions::default()
        },
    );
    let admin = server.service().admin_address().unwrap();
    // A reload first, so the reload metrics are there too.
    server.reload(&integration_config()).unwrap();
    let (status, body) = http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    body
}

/// Metric names exposed: every sample's, and every declared one's (a labelled metric
/// with no series yet, and a histogram's `_bucket`, `_sum`, `_count`).
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// `failoverd_…` names in a file.
fn named_in(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("failoverd_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn metrics_pass_promtool_and_every_metric_the_alerts_and_dashboard_name_exists() {
    let text = metrics_text();
    let mut names = exposed(&text);
    names.extend(exposed(
        &failoverd::testing::sync::metrics::SyncMetrics::default().render_prometheus(),
    ));
    for file in ["prometheus/alerts.yml", "grafana/failoverd.json"] {
        for name in named_in(&format!("{DEPLOY}/{file}")) {
            assert!(
                names.contains(&name),
                "{file} names {name}, which no /metrics has"
            );
        }
    }
    // Endpoints carry pool and endpoint as separate labels.
    assert!(
        text.contains("failoverd_endpoint_up{pool=\"eu\",endpoint=\"eu-1\"} 1"),
        "{text}"
    );
    assert!(text.contains("failoverd_build_info{version=\""));
    assert!(text.contains("# TYPE failoverd_decision_latency_seconds histogram"));
    promtool_check_metrics(&text);
}

/// The Route 53 agent's metrics pass `promtool check metrics` too, with every
/// counter counted.
#[test]
fn route53_agent_metrics_pass_promtool() {
    let metrics = failoverd::testing::sync::metrics::SyncMetrics::default();
    metrics.api_call("ChangeResourceRecordSets");
    metrics.throttled(true);
    metrics.changes_applied("update", 2);
    metrics.run("ok", 1_700_000_000);
    metrics.propagation(std::time::Duration::from_millis(1250));
    let text = metrics.render_prometheus();
    assert!(
        text.contains("failoverd_route53_propagation_seconds_count 1\n"),
        "{text}"
    );
    promtool_check_metrics(&text);
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = require!(promtool());
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let output = Command::new(promtool)
            .args(args)
            .current_dir(format!("{DEPLOY}/prometheus"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A split brain on a real server (two database nodes forced up, so both claim
/// primary) shows in its metrics, and those scraped values fire the alert under
/// `promtool test rules`.
#[test]
fn a_primary_conflict_on_a_server_fires_the_split_brain_alert() {
    let config = format!(
        r#"{}
[pools.db]
endpoints = [{{ address = "192.0.2.61", name = "a", force = "up" }}, {{ address = "192.0.2.62", name = "b", force = "up" }}]
[[records]]
name = "db.example.test"
type = "A"
policy = "primary"
pools = ["db"]
"#,
        crate::support::SERVER_HEAD
    );
    let server = TestServer::start_with(
        &config,
        StartOptions {
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..StartOptions::default()
        },
    );
    let admin = server.service().admin_address().unwrap();
    let gauge = "failoverd_record_primary_conflict{record=\"db.example.test.\",type=\"A\"} 1";
    let mut text = String::new();
    assert!(
        crate::support::wait_until(std::time::Duration::from_secs(5), || {
            text = http(admin, "GET", "/metrics", &[], b"").1;
            text.contains(gauge)
        }),
        "{text}"
    );
    // Never both: nothing agreed before the conflict, so NODATA.
    assert!(crate::support::dns::sorted_addresses(server.addr, "db.example.test").is_empty());
    let promtool = require!(promtool());
    let value = text
        .lines()
        .find(|l| l.starts_with("failoverd_record_primary_conflict{"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap();
    let test = format!(
        r#"rule_files: [alerts.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'failoverd_record_primary_conflict{{instance="s1",record="db.example.test.",type="A"}}'
        values: '{value} {value}'
    alert_rule_test:
      - eval_time: 15s
        alertname: FailoverdPrimaryConflict
        exp_alerts:
          - exp_labels: {{severity: critical, instance: s1, record: db.example.test., type: A}}
            exp_annotations:
              summary: "split brain: two or more nodes claim primary for db.example.test. A on s1; failoverd holds the last agreed primary (or answers nothing) and never both"
              runbook: "fence the node that must not be primary; failoverd ctl explain db.example.test.; failoverd ctl events"
"#
    );
    promtool_test_scraped(promtool, &test);
}

/// Runs `promtool test rules` on `test` (a rule test file naming `alerts.yml`) beside
/// a copy of the shipped rules; fails the test with promtool's output if it fails.
pub(crate) fn promtool_test_scraped(promtool: &str, test: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{DEPLOY}/prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("scraped_test.yml"), test).unwrap();
    let output = Command::new(promtool)
        .args(["test", "rules", "scraped_test.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool test rules (scraped):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
