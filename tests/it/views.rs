//! What is shown is true: an operator's failover shows as such in status, explain,
//! metrics and alerts; every endpoint's history (last change, changes, downs, time
//! down) and the event journal survive a SIGKILL and restart; `ctl events --since`
//! takes durations and times; `ctl status` against several servers prints one line
//! per endpoint with its state on each and flags where they disagree.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::support::backend::{Backend, Mode};
use crate::support::{
    BACKEND_A, BACKEND_B, TestServer, ctl_with, http, integration_config, require, serve_config,
    two_backend_config, wait_until,
};

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

/// Pool `web` (a, b) checked by HTTP on `port` every 300 ms (rise 1, fall 1), with a
/// state file in `dir`.
fn backend_config(port: u16, dir: &Path) -> String {
    format!(
        "{}[health]\nstate_file = \"{}\"\n",
        two_backend_config(
            port,
            "interval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1"
        ),
        dir.join("state.json").display()
    )
}

#[test]
fn a_manual_failover_shows_as_operator_in_status_explain_metrics_and_alerts() {
    let config = format!(
        "{}\n[health]\noverride_warn_after = \"1s\"\n",
        integration_config()
    );
    let (_server, admin) = TestServer::with_admin(&config);
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
    let promtool = require!(crate::observability::promtool());
    let age = age.ceil() as u64;
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
    crate::observability::promtool_test_scraped(promtool, &test);
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

/// The decided history of `endpoint` in a server's status.
fn history(admin: SocketAddr, endpoint: &str) -> serde_json::Value {
    json(admin, "/v1/status")["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == endpoint)
        .map(|e| e["history"].clone())
        .unwrap_or(serde_json::Value::Null)
}

fn state_of(admin: SocketAddr, endpoint: &str) -> String {
    json(admin, "/v1/status")["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == endpoint)
        .map(|e| e["state"].as_str().unwrap().to_owned())
        .unwrap()
}

fn journal_holds(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

#[test]
fn history_and_the_event_journal_survive_a_kill_and_restart() {
    let a = Backend::start(BACKEND_A.parse().unwrap(), 0, None);
    let _b = Backend::start(BACKEND_B.parse().unwrap(), a.addr.port(), None);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let text = backend_config(a.addr.port(), dir.path());
    let (mut server, mut admin) = serve_config(dir.path(), &text, &[]);
    // Decided up by its probes (status says up before the first decision too).
    assert!(wait_until(Duration::from_secs(5), || {
        state_of(admin, "web/a") == "up" && !history(admin, "web/a").is_null()
    }));
    // Down, up, down: three changes, two outages.
    for (mode, want) in [
        (Mode::Status(500), "down"),
        (Mode::Healthy, "up"),
        (Mode::Status(500), "down"),
    ] {
        a.set(mode);
        assert!(
            wait_until(Duration::from_secs(5), || state_of(admin, "web/a") == want),
            "web/a never {want}"
        );
    }
    // Up, down, up, down: three changes, two outages (a probe lost to a loaded
    // machine would add a flap: at least these).
    let before = history(admin, "web/a");
    assert!(before["changes"].as_u64().unwrap() >= 3, "{before:#}");
    assert!(before["downs"].as_u64().unwrap() >= 2, "{before:#}");
    assert!(before["down_ms"].as_u64().unwrap() > 0);
    let events: Vec<serde_json::Value> = json(admin, "/v1/events").as_array().unwrap().clone();
    let last_seq = events.last().unwrap()["seq"].as_u64().unwrap();
    let first_at = events[0]["at_ms"].as_u64().unwrap();
    // On disk before the kill: the state file's save is spaced out, the journal's
    // line follows the event at once.
    let journal = dir.path().join("state.json.events.jsonl");
    let saved = |path: &Path| {
        let Some(file) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            return false;
        };
        let a = &file["endpoints"]["web/a"];
        ["changes", "downs", "down_ms", "changed_at_ms"]
            .iter()
            .all(|k| a[*k] == before[*k])
    };
    assert!(wait_until(Duration::from_secs(5), || saved(&state)
        && journal_holds(&journal, &format!("\"seq\":{last_seq},"))));

    drop(server.kill());
    let (restarted, restarted_admin) = serve_config(dir.path(), &text, &[]);
    (server, admin) = (restarted, restarted_admin);
    // History as it was: same last change, same counts (still down).
    let after = history(admin, "web/a");
    assert_eq!(after, before, "history across the restart");
    // The events from before the restart, numbered as they were; new ones after.
    let events_after: Vec<serde_json::Value> =
        json(admin, "/v1/events").as_array().unwrap().clone();
    assert_eq!(
        events_after[..events.len()],
        events[..],
        "the ring is refilled from the journal"
    );
    let (code, _) = post(
        admin,
        "/v1/overrides",
        // web/a is down: draining web/b empties the pool, which the safety check
        // refuses unless asked for.
        r#"{"target": {"endpoint": "web/b"}, "action": "drain", "reason": "after the restart", "allow_empty": true}"#,
    );
    assert_eq!(code, 200);
    let newest = json(admin, "/v1/events");
    let newest_seq = newest.as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert!(newest_seq > last_seq, "{newest_seq} after {last_seq}");

    // ctl events --since: a duration, a time (RFC 3339), a sequence number.
    let url = [format!("http://{admin}")];
    let (ok, out) = ctl_with(&url, None, &["events", "--since", "10m", "--limit", "1000"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("endpoint state changed") && out.contains("reason=after the restart"),
        "{out}"
    );
    assert!(out.contains(" #1 "), "from the first event on: {out}");
    let at = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(first_at - 1_000),
    )
    .to_string();
    let (ok, by_time) = ctl_with(&url, None, &["events", "--since", &at, "--limit", "1000"]);
    assert!(ok, "{by_time}");
    assert_eq!(
        by_time.lines().filter(|l| l.contains(" #")).count(),
        newest.as_array().unwrap().len(),
        "{by_time}"
    );
    let (ok, by_seq) = ctl_with(&url, None, &["events", "--since", &last_seq.to_string()]);
    assert!(ok, "{by_seq}");
    assert!(!by_seq.contains(&format!(" #{last_seq} ")), "{by_seq}");
    assert!(by_seq.contains("reason=after the restart"), "{by_seq}");
    let (ok, out) = ctl_with(&url, None, &["events", "--since", "yesterday"]);
    assert!(!ok && out.contains("expected a sequence number (1200), a time ago (2h, 30m) or a time (2026-12-07T10:00:00Z)"), "{out}");
    // The API takes RFC 3339 and Unix milliseconds.
    let (code, body) = http(
        admin,
        "GET",
        &format!("/v1/events?since_time={first_at}&limit=2"),
        &[],
        b"",
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (code, body) = http(admin, "GET", "/v1/events?since_time=soon", &[], b"");
    assert_eq!(code, 400, "{body}");
    drop(server);
}

/// Two servers that do not exchange overrides (no `[health] servers`), so one can
/// hold a drain the other does not.
#[test]
fn ctl_status_merges_several_servers_and_flags_disagreement() {
    let (_one, first) = TestServer::with_admin(&integration_config());
    let (_two, second) = TestServer::with_admin(&integration_config());
    let urls = [format!("http://{first}"), format!("http://{second}")];
    let (ok, out) = ctl_with(
        &urls[..1],
        None,
        &["drain", "eu/eu-1", "--reason", "kernel", "--expires", "2h"],
    );
    assert!(ok, "{out}");
    let (ok, out) = ctl_with(
        &urls,
        None,
        &[
            "failover",
            "app.example.test",
            "--to",
            "us",
            "--reason",
            "drill",
            "--expires",
            "4h",
        ],
    );
    assert!(ok, "{out}");
    // The expiry as it was asked for, not a minute short.
    let (ok, out) = ctl_with(&urls[..1], None, &["overrides"]);
    assert!(ok, "{out}");
    assert!(out.contains("  2h  ") && out.contains("  4h  "), "{out}");

    let (ok, out) = ctl_with(&urls, None, &["status"]);
    assert!(ok, "{out}");
    eprintln!("{out}");
    assert_eq!(out.matches("== http://").count(), 2, "{out}");
    // A line with its columns' padding squeezed to one space.
    let line = |start: &str| {
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{out}"))
    };
    // One line per endpoint, its state on each server, DISAGREE where they differ.
    assert!(
        line("eu/eu-1 ").starts_with("eu/eu-1 up drained up ")
            && line("eu/eu-1 ").ends_with("DISAGREE"),
        "{out}"
    );
    assert!(!line("eu/eu-2 ").contains("DISAGREE"), "{out}");
    // One line per record answer: the operator's failover on both, agreed.
    let record = line("app.example.test. A -");
    assert_eq!(
        record, "app.example.test. A - failover (operator) us failover (operator) us",
        "{out}"
    );
    let drain = line("override: drain endpoint eu/eu-1");
    assert!(
        // "by" is the token's name and the user ctl runs as.
        drain.starts_with("override: drain endpoint eu/eu-1 by anonymous (")
            && drain.contains("): \"kernel\", expires in 2h, in force for")
            && drain.contains("— DISAGREE: not on 127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("! warning: failover (operator): app.example.test. A → us"),
        "{out}"
    );
    // The detail behind --per-server: each server's endpoints with their history.
    let (ok, detail) = ctl_with(&urls, None, &["status", "--per-server"]);
    assert!(ok, "{detail}");
    let headers = detail
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| l.starts_with("ENDPOINT TARGET STATE FOR SINCE CHANGES DOWNS"))
        .count();
    assert_eq!(headers, 2, "{detail}");
    // --json: every server's whole status.
    let (ok, text) = ctl_with(&urls, None, &["--json", "status"]);
    assert!(ok, "{text}");
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    for server in all.as_array().unwrap() {
        assert!(server["answer"]["records"].as_array().unwrap().len() > 3);
        assert!(server["answer"]["attention"].is_array());
    }
    // A server that does not answer: said, and the exit status says so.
    let gone = "http://127.0.0.1:1".to_owned();
    let (ok, out) = ctl_with(&[urls[0].clone(), gone], None, &["status"]);
    assert!(
        !ok && out.contains("== http://127.0.0.1:1: FAILED"),
        "{out}"
    );
}

/// An operator's force hides the probes' verdict from the answers, not from the
/// endpoint's history: status shows the decided state's changes behind the force,
/// and the state file keeps them.
#[test]
fn a_forced_endpoint_keeps_its_own_history() {
    let a = Backend::start(BACKEND_A.parse().unwrap(), 0, None);
    let _b = Backend::start(BACKEND_B.parse().unwrap(), a.addr.port(), None);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let text = backend_config(a.addr.port(), dir.path());
    let (_server, admin) = TestServer::with_admin(&text);
    assert!(wait_until(Duration::from_secs(5), || !history(
        admin, "web/a"
    )
    .is_null()));
    let (code, body) = post(
        admin,
        "/v1/overrides",
        r#"{"target": {"endpoint": "web/a"}, "action": "force_up", "reason": "keep it"}"#,
    );
    assert_eq!(code, 200, "{body}");
    a.set(Mode::Status(500));
    assert!(
        wait_until(Duration::from_secs(5), || history(admin, "web/a")["downs"]
            == 1),
        "{}",
        history(admin, "web/a")
    );
    let endpoint = json(admin, "/v1/status")["endpoints"][0].clone();
    assert_eq!(endpoint["state"], "up", "{endpoint:#}");
    assert_eq!(endpoint["forced_by_operator"], true);
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|s| s["endpoints"]["web/a"]["downs"] == 1)
    }));
}

#[test]
fn draining_the_primary_pool_is_a_failover_by_the_operator() {
    let (_server, admin) = TestServer::with_admin(&integration_config());
    let (code, body) = post(
        admin,
        "/v1/overrides",
        r#"{"target": {"pool": "eu"}, "action": "drain", "reason": "evacuate eu"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let status = json(admin, "/v1/status");
    let answer = status["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "app.example.test." && r["type"] == "A")
        .map(|r| r["answers"][0].clone())
        .unwrap();
    assert_eq!(answer["outcome"], "failover", "{answer:#}");
    assert_eq!(answer["cause"], "operator", "{answer:#}");
    assert_eq!(answer["pool"], "us");
    let explained = json(admin, "/v1/explain?name=app.example.test&type=A");
    assert_eq!(explained["records"][0]["cause"], "operator");
    let metrics = http(admin, "GET", "/metrics", &[], b"").1;
    let operator =
        "failoverd_record_failed_over{record=\"app.example.test.\",type=\"A\",cause=\"operator\"}";
    assert_eq!(value(&metrics, operator), Some(1.0), "{metrics}");
}
