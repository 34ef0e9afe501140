//! The Debian package (`deploy/debian/build-deb.sh`, cargo-deb; `.ci/run` installs
//! it): built from the test binary, its contents inspected, its units hardened, its
//! default config valid.

use std::path::Path;
use std::process::Command;

use crate::support::require;
use crate::support::require::{cargo_subcommand, tool};

#[test]
fn the_debian_package_holds_binary_units_config_man_pages_and_completions() {
    require!(cargo_subcommand("deb"), tool("dpkg-deb"));
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
    // The packaged default config (zones next to it) is valid, with the token the
    // postinst creates (emulated here: mode 0600, as it makes it).
    let tokens = dir.path().join("etc/failoverd/tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    std::fs::write(tokens.join("oncall"), "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(
        tokens.join("oncall"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = dir.path().join("etc/failoverd/failoverd.toml");
    let (ok, out) = crate::support::run_binary(&["check-config", config.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(Path::new(&deb).exists());
    let size = Command::new("dpkg-deb")
        .args(["-f", &deb, "Installed-Size"])
        .output()
        .unwrap();
    let kib: u64 = String::from_utf8_lossy(&size.stdout)
        .trim()
        .parse()
        .unwrap();
    let binary = std::fs::metadata(dir.path().join("usr/bin/failoverd"))
        .unwrap()
        .len();
    println!(
        "FIGURES package installed_size_kib={kib} binary_bytes={binary} (stripped, from the debug test binary)"
    );
    verify_units(dir.path());
    the_unit_serves_its_packaged_config(dir.path());
}

/// `systemd-analyze verify` on the packaged units, in the package's root (with the
/// host's targets, which every unit depends on).
fn verify_units(root: &Path) {
    require!(tool("systemd-analyze"));
    let units = root.join("lib/systemd/system");
    for entry in std::fs::read_dir("/lib/systemd/system").unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".target") {
            let _ = std::fs::copy(entry.path(), units.join(&name));
        }
    }
    for unit in ["failoverd.service", "failoverd-probe.service"] {
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg(format!("/lib/systemd/system/{unit}"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "systemd-analyze verify {unit}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A unit's line with its specifiers and variables expanded as systemd does: `%H`
/// the host name, `${VAR}` one word, `$VAR` split into words (none when empty).
fn expand(line: &str, env: &std::collections::BTreeMap<String, String>, host: &str) -> Vec<String> {
    let line = line.replace("%H", host);
    let mut words = Vec::new();
    for word in line.split_whitespace() {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            words.push(env.get(name).cloned().unwrap_or_default());
        } else if let Some(name) = word.strip_prefix('$') {
            let value = env.get(name).cloned().unwrap_or_default();
            words.extend(value.split_whitespace().map(str::to_owned));
        } else {
            words.push(word.to_owned());
        }
    }
    words
}

/// Runs the server unit's ExecStartPre and ExecStart lines as written — variables
/// and specifiers expanded as systemd would, the package's absolute paths read from
/// where it was extracted — in a network namespace of its own (so its 127.0.0.1:5353
/// and :9353 are its own) and a mount namespace whose /var/lib is a fresh tmpfs (its
/// StateDirectory=); then asks it over DNS and with `ctl` and the packaged token. Runs
/// as root, where the unit runs as `failoverd`. Then once more with
/// /etc/default/failoverd naming a vantage point the config lacks: ExecStartPre
/// refuses what ExecStart would (check-config gets serve's options).
fn the_unit_serves_its_packaged_config(root: &Path) {
    require!(
        crate::support::require::root("network and mount namespaces"),
        tool("ip"),
        tool("dig")
    );
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/failoverd.service")).unwrap();
    let mut env = std::collections::BTreeMap::new();
    let (mut pre, mut start) = (None, None);
    for line in unit.lines() {
        if let Some(pair) = line.strip_prefix("Environment=") {
            let (k, v) = pair.split_once('=').unwrap();
            env.insert(k.to_owned(), v.trim_matches('"').to_owned());
        } else if let Some(command) = line.strip_prefix("ExecStartPre=") {
            pre = Some(command.to_owned());
        } else if let Some(command) = line.strip_prefix("ExecStart=") {
            start = Some(command.to_owned());
        }
    }
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let packaged = |word: String| {
        for prefix in ["/usr/bin/failoverd", "/etc/failoverd"] {
            if let Some(rest) = word.strip_prefix(prefix) {
                return format!("{}{prefix}{rest}", root.display());
            }
        }
        word
    };
    let namespace = format!("fpkg{}", std::process::id());
    let net = NetNs::create(&namespace);
    let run = |env: &std::collections::BTreeMap<String, String>, line: &str| {
        let words: Vec<String> = expand(line, env, host.trim())
            .into_iter()
            .map(packaged)
            .collect();
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &net.0,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
        ]);
        command.arg("mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/failoverd && exec \"$@\"");
        command.arg("sh").args(&words);
        (words, command)
    };
    let (words, mut check) = run(&env, pre.as_deref().expect("ExecStartPre"));
    let output = check.output().unwrap();
    assert!(
        output.status.success(),
        "ExecStartPre {words:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (words, mut serve) = run(&env, start.as_deref().expect("ExecStart"));
    let mut child = serve
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = crate::support::stderr_lines(&mut child);
    let _child = KillOnDrop(child);
    let ready = std::iter::from_fn(|| log.recv_timeout(std::time::Duration::from_secs(20)).ok())
        .any(|line| line.contains("first health decision made; ready"));
    assert!(ready, "ExecStart {words:?} did not get ready");
    let dig = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.0,
            "dig",
            "+short",
            "@127.0.0.1",
            "-p",
            "5353",
            "www.gslb.example.com",
            "A",
        ])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&dig.stdout);
    assert!(answer.contains("192.0.2.10"), "dig: {answer}");
    let binary = format!("{}/usr/bin/failoverd", root.display());
    let token = format!("{}/etc/failoverd/tokens/oncall", root.display());
    let ctl = |token: Option<&str>| {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &net.0, &binary, "ctl"]);
        if let Some(token) = token {
            command.args(["--token-file", token]);
        }
        command.arg("status").output().unwrap()
    };
    let with = ctl(Some(&token));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stdout)
    );
    let without = ctl(None);
    assert!(!without.status.success(), "the packaged token is required");
    assert!(String::from_utf8_lossy(&without.stdout).contains("401"));
    // A cluster node names its vantage point in /etc/default/failoverd; one the config
    // lacks is refused by ExecStartPre, as ExecStart would refuse it.
    let mut node = env.clone();
    node.insert("FAILOVERD_SERVE_OPTS".into(), "--vantage nope".into());
    let (words, mut check) = run(&node, pre.as_deref().unwrap());
    let output = check.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("--vantage nope"),
        "{words:?}: {stderr}"
    );
    println!(
        "FIGURES packaged unit: ExecStartPre ok, ExecStart serves www.gslb.example.com (dig {}), ctl with the packaged token ok, without it 401",
        answer.trim().replace('\n', " ")
    );
}

/// A network namespace with its loopback up, removed on drop.
struct NetNs(String);

impl NetNs {
    fn create(name: &str) -> Self {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(std::process::Stdio::null())
            .status();
        assert!(
            Command::new("ip")
                .args(["netns", "add", name])
                .status()
                .unwrap()
                .success()
        );
        assert!(
            Command::new("ip")
                .args(["-n", name, "link", "set", "lo", "up"])
                .status()
                .unwrap()
                .success()
        );
        Self(name.to_owned())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A child killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `systemd-analyze security` rates the units (as shipped in `deploy/`) at most 2.5
/// (the server) and 2.0 (the probe agent); they were 6.2 and 8.5.
#[test]
fn the_units_rate_ok_in_systemd_analyze_security() {
    require!(tool("systemd-analyze"));
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
