//! What is shown is true: an operator's failover shows as such in status, explain,
//! metrics and alerts.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use failoverd::service::StartOptions;

use crate::support::{TestServer, ctl_with, http, integration_config, wait_until};

fn json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http(admin, "GET", path, &[], b"");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn post(admin: SocketAddr, path: &str, body: &str) -> (u16, String) {
    http(
        admin,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

/// A metric line's value.
fn value(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn start_admin(config: &str) -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(
        config,
        StartOptions {
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..StartOptions::default()
        },
    );
    let admin = server.service().admin_address().unwrap();
    (server, admin)
}

#[test]
fn a_manual_failover_shows_as_operator_in_status_explain_metrics_and_alerts() {
    let config = format!(
        "{}\n[health]\noverride_warn_after = \"1s\"\n",
        integration_config()
    );
    let (_server, admin) = start_admin(&config);
    let metrics = http(admin, "GET", "/metrics", &[], b"").1;
    let operator =
        "failoverd_record_failed_over{record=\"app.example.test.\",type=\"A\",cause=\"operator\"}";
    let health =
        "failoverd_record_failed_over{record=\"app.example.test.\",type=\"A\",cause=\"health\"}";
    assert_eq!(value(&metrics, operator), Some(0.0), "{metrics}");
    assert_eq!(value(&metrics, health), Some(0.0));

    let (code, body) = post(
        admin,
        "/v1/overrides",
        r#"{"target": {"record": {"name": "app.example.test", "type": "A"}}, "action": {"failover": "us"}, "reason": "dr drill"}"#,
    );
    assert_eq!(code, 200, "{body}");
    // Confirmed means status shows it too: no waiting.
    let answer_now = || {
        let status = json(admin, "/v1/status");
        let answer = status["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "app.example.test." && r["type"] == "A")
            .map(|r| r["answers"][0].clone())
            .unwrap();
        (status, answer)
    };
    let (status, answer) = answer_now();
    assert_eq!(answer["outcome"], "failover", "{answer:#}");
    assert_eq!(answer["cause"], "operator");
    assert_eq!(answer["pool"], "us");
    assert_eq!(answer["pinned"], "us");
    let kinds: Vec<&str> = status["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"failover_operator"), "{kinds:?}");
    let explained = json(admin, "/v1/explain?name=app.example.test&type=A");
    let record = &explained["records"][0];
    assert_eq!(record["outcome"], "failover");
    assert_eq!(record["cause"], "operator");

    let metrics = http(admin, "GET", "/metrics", &[], b"").1;
    assert_eq!(value(&metrics, operator), Some(1.0), "{metrics}");
    assert_eq!(value(&metrics, health), Some(0.0));
    let age_line = "failoverd_override_age_seconds{kind=\"record\",target=\"app.example.test.\",type=\"A\",action=\"failover\"}";
    assert!(value(&metrics, age_line).is_some(), "{metrics}");
    assert_eq!(
        value(&metrics, "failoverd_override_warn_after_seconds"),
        Some(1.0)
    );
    crate::observability::promtool_check_metrics(&metrics);

    // Past override_warn_after, status calls it out (without any other change).
    assert!(wait_until(Duration::from_secs(5), || {
        json(admin, "/v1/status")["attention"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "override_old" && n["level"] == "warning")
    }));

    // What was scraped fires both alerts (promtool, the shipped rules).
    let metrics = http(admin, "GET", "/metrics", &[], b"").1;
    let age = value(&metrics, age_line).unwrap();
    assert!(age > 1.0, "{age}");
    let Some(promtool) = crate::observability::promtool() else {
        return;
    };
    let age = age.ceil() as u64;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    let series = |line: &str| line.replacen('{', "{instance=\"s1\",", 1);
    let test = format!(
        r#"rule_files: [alerts.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: '{failed_over}'
        values: '1 1'
      - series: '{age_series}'
        values: '{age} {age}'
      - series: 'failoverd_override_warn_after_seconds{{instance="s1"}}'
        values: '1 1'
    alert_rule_test:
      - eval_time: 15s
        alertname: FailoverdFailoverInEffect
        exp_alerts:
          - exp_labels: {{severity: warning, instance: s1, record: app.example.test., type: A, cause: operator}}
            exp_annotations:
              summary: "app.example.test. A is answered by a standby pool (or degraded) on s1; cause: operator"
              runbook: "failoverd runbook app.example.test.; failoverd ctl explain app.example.test.; failoverd ctl overrides"
      - eval_time: 15s
        alertname: FailoverdOverrideLeftInForce
        exp_alerts:
          - exp_labels: {{severity: warning, instance: s1, kind: record, target: app.example.test., type: A, action: failover}}
            exp_annotations:
              summary: "failover on record app.example.test. A has been in force for {age}s on s1, longer than its [health] override_warn_after"
              runbook: "failoverd ctl overrides (who made it, why, until when); once it is no longer needed: failoverd ctl release app.example.test. --type a --reason done"
"#,
        failed_over = series(operator),
        age_series = series(age_line),
    );
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
    // The runbook's command runs as printed (against this server).
    let (ok, out) = ctl_with(
        &[format!("http://{admin}")],
        None,
        &[
            "release",
            "app.example.test.",
            "--type",
            "a",
            "--reason",
            "done",
        ],
    );
    assert!(ok && out.contains(": ok released"), "{out}");
    let metrics = http(admin, "GET", "/metrics", &[], b"").1;
    assert_eq!(value(&metrics, operator), Some(0.0), "{metrics}");
    assert!(value(&metrics, age_line).is_none());
}
