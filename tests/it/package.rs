//! The Debian package (`deploy/debian/build-deb.sh`, cargo-deb; `.ci/run` installs
//! it): built from the test binary, its contents inspected, its units hardened, its
//! default config valid.

use std::path::Path;
use std::process::Command;

fn cargo_deb_available() -> bool {
    Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_debian_package_holds_binary_units_config_man_pages_and_completions() {
    if !cargo_deb_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "cargo-deb is missing (.ci/run installs it)"
        );
        eprintln!("SKIP: needs cargo-deb (cargo install cargo-deb; .ci/run installs it)");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("sh")
        .arg(format!("{root}/deploy/debian/build-deb.sh"))
        .env("FAILOVERD_BIN", crate::support::binary())
        .env("DEB_FAST", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deb = stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(".deb"))
        .expect("package path")
        .trim()
        .to_owned();
    let listing = Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for file in [
        "./usr/bin/failoverd",
        "./lib/systemd/system/failoverd.service",
        "./lib/systemd/system/failoverd-probe.service",
        "./etc/failoverd/failoverd.toml",
        "./etc/failoverd/zones/gslb.example.com.zone",
        "./usr/share/man/man1/failoverd.1.gz",
        "./usr/share/man/man1/failoverd-ctl-explain.1.gz",
        "./usr/share/bash-completion/completions/failoverd",
        "./usr/share/doc/failoverd/prometheus/alerts.yml",
    ] {
        assert!(
            listing.contains(file),
            "{file} not in the package:\n{listing}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );
    let unit =
        std::fs::read_to_string(dir.path().join("lib/systemd/system/failoverd.service")).unwrap();
    for line in [
        "ExecStart=/usr/bin/failoverd",
        "User=failoverd",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "UMask=0077",
    ] {
        assert!(unit.contains(line), "{line} not in the unit:\n{unit}");
    }
    let probe = std::fs::read_to_string(
        dir.path()
            .join("lib/systemd/system/failoverd-probe.service"),
    )
    .unwrap();
    for line in [
        "ExecStart=/usr/bin/failoverd",
        "\nCapabilityBoundingSet=\n",
        "PrivateUsers=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(probe.contains(line), "{line:?} not in the unit:\n{probe}");
    }
    let control = Command::new("dpkg-deb")
        .args(["-I", &deb])
        .output()
        .unwrap();
    let control = String::from_utf8_lossy(&control.stdout);
    assert!(
        control.contains("conffiles") && control.contains("postinst"),
        "{control}"
    );
    // The packaged default config (zones next to it) is valid.
    let config = dir.path().join("etc/failoverd/failoverd.toml");
    let (ok, out) = crate::support::run_binary(&["check-config", config.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(Path::new(&deb).exists());
}

/// `systemd-analyze security` rates the units (as shipped in `deploy/`) at most 2.5
/// (the server) and 2.0 (the probe agent); they were 6.2 and 8.5.
#[test]
fn the_units_rate_ok_in_systemd_analyze_security() {
    let version = Command::new("systemd-analyze").arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: needs systemd-analyze (systemd)");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    for (unit, threshold) in [("failoverd.service", 25), ("failoverd-probe.service", 20)] {
        let output = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--threshold={threshold}"))
            .arg(format!("{root}/deploy/{unit}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let overall = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_default();
        eprintln!("FIGURES {overall}");
        assert!(
            output.status.success(),
            "{unit} rates above {}.{}:\n{text}{}",
            threshold / 10,
            threshold % 10,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
