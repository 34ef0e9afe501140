//! Executable documentation: every `sh` block of the README and of `deploy/README.md`
//! runs, as printed, against real servers, and must exit 0.
//!
//! Blocks are grouped by their `##` section. A section's blocks run in order, in one
//! bash script (`-e -o pipefail`), in a sandbox of its own: a network namespace (so the
//! documented 127.0.0.1:5353 and :9353 are its own), a PID namespace (so `pgrep`,
//! `pkill` and `kill` see only the section's processes, and every process it leaves
//! running ends with it), a mount namespace whose `/etc` is an overlay and `/var/lib`
//! and `/run` are tmpfs (so `/etc/failoverd/…` works and nothing on this host
//! changes), a scratch `$HOME`, and a working directory holding copies of the
//! repository's `config/`, `zones/`, `deploy/` and `examples/`. `failoverd` on the PATH
//! is the binary under test.
//!
//! A section may assume what its text says is there (an installed server, a config
//! with a `[route53]` section, Route 53): [`setup`] provides it, and a section with
//! `sh` blocks but no setup fails this test until one is written. What cannot run here
//! is said, never skipped silently:
//!
//! - `cargo run --release -- ARGS` runs the binary under test with ARGS (building a
//!   release binary is what `cargo` would add), and `cargo install --path .` puts
//!   nothing new on the PATH (the binary under test is there already);
//! - `.ci/run` is this test suite: it is not run from within itself;
//! - `watch … CMD` runs CMD once (it would repeat it forever);
//! - a command that serves until stopped (`… serve`, `… probe`, `route53 sync`) runs
//!   in the background, and the block goes on once it is ready (the admin API's
//!   `/readyz`, or the agent's first `Route 53 in sync`);
//! - `systemctl …` needs systemd as PID 1, which a test cannot have: such lines are
//!   counted as not run and named in the output (`tests/it/package.rs` runs the
//!   units' commands instead);
//! - Route 53 is `moto` (`endpoint_url` in the section's config).
//!
//! Blocks the reader must fill in (a promote command, production addresses) are
//! `text` blocks, not `sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::require::{root, tool};
use crate::support::{binary, moto::moto, require};

/// A documentation file's section and its shell blocks.
struct Section {
    file: &'static str,
    heading: String,
    blocks: Vec<String>,
}

/// The `sh` blocks of `text`, grouped by `##` section (subsections belong to theirs);
/// sections without one are left out.
fn sections(file: &'static str, text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut block: Option<String> = None;
    let mut heading = String::new();
    for line in text.lines() {
        if let Some(body) = block.as_mut() {
            if line.trim_start().starts_with("```") {
                let body = std::mem::take(body);
                match out.last_mut() {
                    Some(last) if last.heading == heading && last.file == file => {
                        last.blocks.push(body);
                    }
                    _ => out.push(Section {
                        file,
                        heading: heading.clone(),
                        blocks: vec![body],
                    }),
                }
                block = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            heading = h.trim().to_owned();
        } else if line.trim() == "```sh" {
            block = Some(String::new());
        }
    }
    out
}

/// What a section assumes, set up before its blocks run (see the module docs).
fn setup(section: &Section) -> Option<&'static str> {
    let heading = section.heading.as_str();
    Some(match (section.file, heading) {
        ("README.md", "Quick start") => "",
        ("README.md", h) if h.starts_with("Operations") => INSTALLED,
        ("README.md", "DNSSEC") => DNSSEC,
        ("README.md", "Route 53") => ROUTE53,
        ("deploy/README.md", "A three-region cluster on one machine") => CLUSTER,
        _ => return None,
    })
}

/// Waits (up to 20 s) for the admin API on 127.0.0.1:9353 to say it is ready.
const WAIT_READY: &str = r#"wait_ready() {
  for _ in $(seq 200); do curl -sf 127.0.0.1:9353/readyz >/dev/null && return 0; sleep 0.1; done
  echo "the server never became ready:"; cat "$1"; return 1
}
"#;

/// An installed server, as the package sets it up (`/etc/failoverd/failoverd.toml`
/// with a state file under `/var/lib/failoverd`, and the `oncall` token file), serving
/// the embedded default's records, with no tokens configured so `failoverd ctl` needs
/// none (as in the quick start); the demo backends up.
const INSTALLED: &str = r#"
mkdir -p /etc/failoverd/tokens /var/lib/failoverd
sed 's|^directory = "../zones"|directory = "'"$PWD"'/zones"|' config/failoverd.toml > /etc/failoverd/failoverd.toml
cat >> /etc/failoverd/failoverd.toml <<'TOML'

[health]
servers = ["http://127.0.0.1:9353"]
state_file = "/var/lib/failoverd/state.json"
TOML
(umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/failoverd/tokens/oncall)
python3 -m http.server --bind 127.0.0.2 8080 >/dev/null 2>&1 &
python3 -m http.server --bind 127.0.0.3 8080 >/dev/null 2>&1 &
failoverd serve --config /etc/failoverd/failoverd.toml >>"$HOME/installed.log" 2>&1 &
wait_ready "$HOME/installed.log"
"#;

/// The DNSSEC section's `failoverd.toml`: the embedded default with the section's
/// `[dnssec]` keys.
const DNSSEC: &str = r#"
sed 's|^directory = "../zones"|directory = "zones"|' config/failoverd.toml > failoverd.toml
cat >> failoverd.toml <<'TOML'

[dnssec]
key_directory = "keys"
zones = ["gslb.example.com"]
TOML
"#;

/// The Route 53 section's `failoverd.toml` (`examples/route53.toml`, its hosted zone
/// created in moto, the API endpoint pointed at moto), credentials in the
/// environment, a server on 127.0.0.1:9353 for `--health-url`, and the token file the
/// section names.
const ROUTE53: &str = r#"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
python3 -m moto.server -H 127.0.0.1 -p 5555 >"$HOME/moto.log" 2>&1 &
for _ in $(seq 300); do curl -s -o /dev/null 127.0.0.1:5555/ && break; sleep 0.1; done
python3 - <<'PY'
import boto3
r53 = boto3.client("route53", endpoint_url="http://127.0.0.1:5555")
r53.create_hosted_zone(Name="gslb.example.com.", CallerReference="docs")
PY
sed -e 's|^directory = "../zones"|directory = "zones"|' \
    -e 's|^# endpoint_url = .*|endpoint_url = "http://127.0.0.1:5555"|' \
    -e 's|^max_requests_per_second = .*|max_requests_per_second = 100|' \
    -e 's|^burst = .*|burst = 1000|' \
    -e 's|^change_timeout = .*|change_timeout = "5s"|' examples/route53.toml > failoverd.toml
grep -q '^endpoint_url = "http://127.0.0.1:5555"' failoverd.toml
mkdir -p /etc/failoverd/tokens
(umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/failoverd/tokens/oncall)
failoverd serve >>"$HOME/server.log" 2>&1 &
wait_ready "$HOME/server.log"
"#;

/// `deploy/example/up.sh` with the binary under test and a run directory of the
/// sandbox's.
const CLUSTER: &str = r#"
export FAILOVERD_BIN="$(command -v failoverd)" RUN="$HOME/example"
"#;

/// Rewrites a block for the sandbox (see the module docs): commands that serve until
/// stopped go to the background and are waited for; `systemctl` lines are not run
/// (returned).
fn prepare(block: &str, index: usize) -> (String, Vec<String>) {
    // Continuation lines joined, so each command is one line.
    let joined = block.replace("\\\n", " ");
    let mut script = String::new();
    let mut not_run = Vec::new();
    for (n, line) in joined.lines().enumerate() {
        let command = line.split(" #").next().unwrap_or("").trim();
        let words: Vec<&str> = command.split_whitespace().collect();
        let ours = matches!(words.first(), Some(&"failoverd") | Some(&"cargo"));
        let log = format!("\"$HOME/bg-{index}-{n}.log\"");
        if words.first() == Some(&"systemctl") {
            not_run.push(command.to_owned());
            script.push_str(&format!(
                "# not run here (needs systemd as PID 1): {command}\n"
            ));
        } else if ours && (words.contains(&"serve") || words.contains(&"probe")) {
            script.push_str(&format!("{command} >>{log} 2>&1 &\nwait_ready {log}\n"));
        } else if ours && words.windows(2).any(|w| w == ["route53", "sync"]) {
            script.push_str(&format!(
                "{command} >>{log} 2>&1 &\n\
                 for _ in $(seq 300); do grep -q 'Route 53 in sync' {log} && break; sleep 0.1; done\n\
                 grep -q 'Route 53 in sync' {log} || {{ echo 'route53 sync never got in sync:'; cat {log}; exit 1; }}\n"
            ));
        } else {
            script.push_str(line);
            script.push('\n');
        }
    }
    (script, not_run)
}

/// A sandbox (see the module docs), its namespace removed on drop.
struct Sandbox {
    namespace: String,
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(index: usize) -> Self {
        let namespace = format!("fdoc{}-{index}", std::process::id());
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().unwrap();
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &namespace]);
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for sub in ["bin", "home", "work/.ci", "etc-upper", "etc-work"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::os::unix::fs::symlink(binary(), dir.path().join("bin/failoverd")).unwrap();
        for shared in ["config", "zones", "deploy", "examples"] {
            let status = Command::new("cp")
                .arg("-a")
                .arg(root.join(shared))
                .arg(dir.path().join("work"))
                .status()
                .unwrap();
            assert!(status.success());
        }
        let script = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        };
        script(
            "bin/cargo",
            "#!/bin/sh\n\
             # The README's cargo commands, for a test of the binary already built.\n\
             case \"$1\" in\n\
               run) while [ \"$#\" -gt 0 ] && [ \"$1\" != -- ]; do shift; done; shift; exec failoverd \"$@\" ;;\n\
               install) echo 'cargo install: the binary under test is on the PATH already'; exit 0 ;;\n\
               *) echo \"cargo $*: not run by the documentation test\" >&2; exit 1 ;;\n\
             esac\n",
        );
        script(
            "bin/watch",
            "#!/bin/sh\n# watch would repeat the command forever: once is enough here.\n\
             while [ \"$#\" -gt 0 ]; do case \"$1\" in -n) shift 2 ;; -*) shift ;; *) break ;; esac; done\n\
             exec sh -c \"$*\"\n",
        );
        script(
            "work/.ci/run",
            "#!/bin/sh\necho '.ci/run is this test suite: not run from within itself'\n",
        );
        Self { namespace, dir }
    }

    /// Runs `script` with bash in the sandbox (see the module docs); returns (success,
    /// output). Whatever it leaves running is killed with its PID namespace.
    fn run(&self, script: &str, timeout: Duration) -> (bool, String) {
        let path = self.dir.path().join("section.sh");
        std::fs::write(&path, format!("set -eo pipefail\n{WAIT_READY}{script}")).unwrap();
        let dir = self.dir.path().display().to_string();
        let inner = format!(
            "mount -t overlay overlay -o lowerdir=/etc,upperdir={dir}/etc-upper,workdir={dir}/etc-work /etc \
             && mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /run && mkdir -p /run/netns \
             && cd {dir}/work && exec bash {}",
            path.display()
        );
        // Output to a file, not a pipe: what a block leaves running keeps its output
        // open, and only the script's end counts.
        let log = self.dir.path().join("section.log");
        let file = std::fs::File::create(&log).unwrap();
        let status = Command::new("timeout")
            .args(["-k", "5", &timeout.as_secs().to_string()])
            .args(["ip", "netns", "exec", &self.namespace])
            .args(["unshare", "--mount", "--propagation", "private"])
            .args(["--pid", "--fork", "--mount-proc", "--", "sh", "-c"])
            .arg(inner)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{dir}/bin:{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                    python_dirs()
                ),
            )
            .env("HOME", format!("{dir}/home"))
            .env("LANG", "C.UTF-8")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap();
        (
            status.success(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    }
}

/// Where this machine's `python3` (with moto) lives, as the test's own PATH has it.
fn python_dirs() -> String {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| Path::new(d).join("python3").exists())
        .collect::<Vec<_>>()
        .join(":")
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
    }
}

#[test]
fn every_shell_block_of_the_readmes_runs_as_printed() {
    require!(
        root("network, PID and mount namespaces"),
        tool("ip"),
        tool("curl"),
        tool("jq"),
        moto(),
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let read = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();
    let mut found = sections("README.md", &read("README.md"));
    found.extend(sections("deploy/README.md", &read("deploy/README.md")));
    let missing: Vec<String> = found
        .iter()
        .filter(|s| setup(s).is_none())
        .map(|s| format!("{}: {}", s.file, s.heading))
        .collect();
    assert!(
        missing.is_empty(),
        "sections with sh blocks and no setup in tests/it/docs.rs: {missing:?}"
    );
    let only = std::env::var("FAILOVERD_DOCS_SECTION").ok();
    let (mut blocks, mut commands, mut not_run) = (0, 0, Vec::new());
    for (i, section) in found.iter().enumerate() {
        if only
            .as_ref()
            .is_some_and(|o| !section.heading.starts_with(o.as_str()))
        {
            continue;
        }
        let mut script = setup(section).unwrap().to_owned();
        for (b, block) in section.blocks.iter().enumerate() {
            let (text, skipped) = prepare(block, b);
            script.push_str(&format!("echo '>>> block {}'\n{text}", b + 1));
            commands += block
                .replace("\\\n", " ")
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .count()
                - skipped.len();
            not_run.extend(skipped);
            blocks += 1;
        }
        let sandbox = Sandbox::new(i);
        let started = std::time::Instant::now();
        let (ok, out) = sandbox.run(&script, Duration::from_secs(240));
        assert!(
            ok,
            "{} section {:?}: a command failed (the output's last `>>> block N` names the block)\n--- as run\n{script}--- output\n{out}",
            section.file, section.heading
        );
        if only.is_some() {
            println!("{out}");
        }
        println!(
            "ran {}: {} ({} blocks) in {:.1} s",
            section.file,
            section.heading,
            section.blocks.len(),
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "FIGURES documentation blocks={blocks} commands_run={commands} not_run={} {not_run:?}",
        not_run.len()
    );
}
