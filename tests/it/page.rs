//! The status page in a real headless browser (Debian's chromium and chromium-driver,
//! driven by selenium; `.ci/run` installs them): it loads, shows the records, and
//! reflects a drain made through the API within its refresh period. With
//! `FAILOVERD_SCREENSHOT=PATH` it saves a screenshot (docs/status-page.png).

use std::process::Command;
use std::time::Duration;

use failoverd::service::StartOptions;

use crate::support::{TestServer, http, integration_config, wait_until};

fn browser_available() -> bool {
    std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
        && Command::new("python3")
            .args(["-c", "import selenium"])
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn the_status_page_shows_the_records_and_follows_a_drain() {
    if !browser_available() {
        // CI installs them (.ci/run), so there a missing browser is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium, chromium-driver and selenium are missing (.ci/run installs them)"
        );
        eprintln!(
            "SKIP: needs chromium, chromium-driver and python3 selenium (.ci/run installs them)"
        );
        return;
    }
    let server = TestServer::start_with(
        &integration_config(),
        StartOptions {
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..StartOptions::default()
        },
    );
    let admin = server.service().admin_address().unwrap();
    let (status, page) = http(admin, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>failoverd status</title>")
            && !page.contains("http://")
            && !page.contains("https://"),
        "one file, no external assets"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/status_page.py");
    let mut command = Command::new("python3");
    command.arg(script).arg(admin.to_string()).arg("eu/eu-1");
    if let Some(path) = std::env::var_os("FAILOVERD_SCREENSHOT") {
        command.arg(path);
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
        "FIGURES status_page loaded_ms={} drain_seen_ms={}",
        figures["loaded_ms"], figures["drain_seen_ms"]
    );
    let records = figures["records"].as_str().unwrap();
    for name in [
        "app.example.test.",
        "weighted.example.test.",
        "geo.example.test.",
    ] {
        assert!(records.contains(name), "{name} not on the page:\n{records}");
    }
    assert!(
        figures["overrides"]
            .as_str()
            .unwrap()
            .contains("browser test")
    );
    assert!(
        figures["drain_seen_ms"].as_u64().unwrap() < 5_500,
        "within the refresh period"
    );
    // The drain is real: the API agrees.
    assert!(wait_until(Duration::from_secs(1), || server
        .service()
        .status()
        .endpoints[0]
        .drained));
}
