//! The status page in a real headless browser (Debian's chromium and chromium-driver,
//! driven by selenium; `.ci/run` installs them), at 1400 px and at 390 px, with only
//! `status` public (tokens configured): it loads without a token, shows the records
//! and the events, reflects a drain and a manual failover (header included) within
//! its refresh period, shows times as ISO 8601 with the zone's offset, fail-open in
//! red and an operator's failover in purple, and on the phone labels every value
//! with its own column. With `FAILOVERD_SCREENSHOTS=DIR` it saves
//! `status-page.png` (1400 px) and `status-page-phone.png` (390 px) there (docs/).

use std::process::Command;
use std::time::Duration;

use crate::support::require::{Missing, Need, install_hint, python_modules};
use crate::support::{TestServer, http, integration_config, require, wait_until, write_secret};

const TOKEN: &str = "operate-token-of-the-browser-test";

/// chromium and its driver where the selenium script finds them, and selenium.
fn browser() -> Need {
    for (program, path) in [
        ("chromium", "/usr/bin/chromium"),
        ("chromedriver", "/usr/bin/chromedriver"),
    ] {
        if !std::path::Path::new(path).exists() {
            return Err(Missing::new(path, install_hint(program)));
        }
    }
    python_modules(&["selenium"], "python3 -m pip install 'selenium==4.*'")
}

/// The integration config, a record whose only pool is down (fail-open), tokens, and
/// only `status` public.
fn page_config(dir: &std::path::Path) -> String {
    write_secret(dir.join("operate.token"), TOKEN);
    format!(
        r#"{}
[checks.closed]
type = "tcp"
port = 1
interval = "200ms"
timeout = "100ms"
rise = 1
fall = 1
[pools.legacy]
check = "closed"
endpoints = [{{ address = "127.0.0.5", name = "old-1" }}, {{ address = "127.0.0.6", name = "old-2" }}]
[[records]]
name = "legacy.example.test"
type = "A"
ttl = 30
policy = "failover"
pools = ["legacy"]
[health]
state_file = "{dir}/state.json"
[admin]
public = ["healthz", "readyz", "status"]
[[admin.tokens]]
name = "oncall"
role = "operate"
file = "{dir}/operate.token"
"#,
        integration_config(),
        dir = dir.display()
    )
}

#[test]
fn the_status_page_works_with_only_status_public_on_a_wide_screen_and_a_phone() {
    require!(browser());
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = TestServer::with_admin(&page_config(dir.path()));
    let (status, page) = http(admin, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>failoverd status</title>")
            && !page.contains("http://")
            && !page.contains("https://"),
        "one file, no external assets"
    );
    // Events follow status's public rule; overrides do not.
    assert_eq!(http(admin, "GET", "/v1/events", &[], b"").0, 200);
    assert_eq!(http(admin, "GET", "/v1/overrides", &[], b"").0, 401);
    // The dead pool is down before the page is opened (its record fails open).
    assert!(wait_until(Duration::from_secs(5), || {
        let status = server.service().status();
        status
            .records
            .iter()
            .any(|r| r.name == "legacy.example.test." && r.answers[0].outcome == "fail-open")
    }));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/status_page.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(admin.to_string())
        .args(["eu/eu-1", "app.example.test", "us", TOKEN]);
    if let Some(dir) = std::env::var_os("FAILOVERD_SCREENSHOTS") {
        command.arg(dir);
    }
    let output = command.output().expect("run the browser script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: serde_json::Value = serde_json::from_str(stdout.trim()).expect("figures");
    eprintln!(
        "FIGURES status_page loaded_ms={} change_seen_ms={} iso_times={} wide_overflow={} phone_overflow={} inner_width={}",
        figures["loaded_ms"],
        figures["change_seen_ms"],
        figures["iso_times"],
        figures["wide_overflow"],
        figures["phone_overflow"],
        figures["inner_width"]
    );
    let text = |key: &str| figures[key].as_str().unwrap_or_default().to_owned();
    let records = text("records");
    for name in [
        "app.example.test.",
        "weighted.example.test.",
        "geo.example.test.",
        "legacy.example.test.",
    ] {
        assert!(records.contains(name), "{name} not on the page:\n{records}");
    }
    assert!(records.contains("failover (operator)"), "{records}");
    assert!(records.contains("fail-open"), "{records}");
    // The header says what is wrong, worst first: fail-open is critical.
    let banner = text("banner");
    assert!(
        banner.starts_with("CRITICAL") && banner.contains("fail-open"),
        "{banner}"
    );
    assert!(
        banner.contains("failover (operator): app.example.test. A → us"),
        "{banner}"
    );
    assert!(banner.contains("3 overrides in force"), "{banner}");
    assert_eq!(text("head_class"), "level-critical");
    // Drains and forces show as such, with who and why.
    let overrides = text("overrides");
    assert!(
        overrides.contains("drained") && overrides.contains("browser test"),
        "{overrides}"
    );
    assert!(
        overrides.contains("dialled to 50%") && overrides.contains("browser test dial"),
        "{overrides}"
    );
    // A dialled pool says so.
    let pools = text("pools");
    assert!(
        pools.contains("dialled to 50% of the answers it would get, by an operator"),
        "{pools}"
    );
    let endpoints = text("endpoints");
    assert!(endpoints.contains("down since"), "{endpoints}");
    // ISO 8601 with the zone (Europe/Paris in December: +01:00).
    let updated = text("updated");
    assert!(updated.contains("+01:00 (Europe/Paris)"), "{updated}");
    assert!(figures["iso_times"].as_u64().unwrap() >= 5);
    assert_eq!(text("fail_open_colour"), "rgb(207, 34, 46)");
    assert_eq!(text("operator_colour"), "rgb(130, 80, 223)");
    assert!(
        figures["change_seen_ms"].as_u64().unwrap() < 5_500,
        "within the refresh period"
    );
    // The phone: nothing wider than the screen, every value beside its own column.
    assert_eq!(figures["inner_width"], 390);
    assert!(figures["wide_overflow"].as_i64().unwrap() <= 0);
    assert!(figures["phone_overflow"].as_i64().unwrap() <= 0);
    assert_eq!(figures["phone_thead"], "none");
    assert_eq!(figures["mislabelled"], serde_json::json!([]));
    let card = text("phone_endpoint_card");
    assert!(
        card.contains("eu/eu-1") && card.contains("drained"),
        "{card}"
    );
    // The drain is real: the API agrees.
    assert!(wait_until(Duration::from_secs(1), || server
        .service()
        .status()
        .endpoints[0]
        .drained));
}
