//! What a test needs from the machine — an external program, root, a kernel
//! feature, a Python module — checked by one [`require!`]: a test never passes
//! without having run. When `CI` is set a missing requirement fails the test (CI
//! installs everything: `.ci/run`); otherwise the test stops there with one line on
//! the terminal, past the harness's output capture:
//!
//! ```text
//! SKIP dnssec::delv_agrees: needs delv (apt-get install bind9-dnsutils)
//! ```
//!
//! ```ignore
//! require!(tool("knotd"), tool("nsd"));        // returns from the test when missing
//! let bins = require!(Binaries::find());       // or yields what was found
//! ```

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Something a test needs that this machine lacks, and how to get it.
#[derive(Debug, Clone)]
pub struct Missing {
    /// What is missing (`knotd`, `root (network namespaces)`, …).
    pub needs: String,
    /// How to get it: a command to run as printed.
    pub hint: String,
}

impl Missing {
    /// `needs` is missing; `hint` says how to get it.
    pub fn new(needs: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            needs: needs.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "needs {} ({})", self.needs, self.hint)
    }
}

/// What a check yields: what it found, or what is missing.
pub type Need<T = ()> = Result<T, Missing>;

/// Checks requirements in the enclosing test (or test helper returning `()`).
///
/// `require!(need)` yields the value a `Need<T>` found; `require!(a, b, …)` checks
/// `Need<()>`s in turn. On the first one missing it fails the test when `CI` is
/// set, and otherwise prints `SKIP <test>: needs <what> (<hint>)` and returns.
macro_rules! require {
    ($need:expr $(,)?) => {
        match $need {
            Ok(found) => found,
            Err(missing) => {
                $crate::support::require::missing(&missing);
                return;
            }
        }
    };
    ($($need:expr),+ $(,)?) => {
        $( $crate::support::require::require!($need); )+
    };
}
pub(crate) use require;

/// The name of the running test (libtest names each test's thread after it).
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("this test")
        .to_owned()
}

/// Whether missing requirements fail (`CI` set) rather than skip.
pub fn strict() -> bool {
    std::env::var_os("CI").is_some()
}

/// Reports `missing` for the running test: panics under `CI`, otherwise prints
/// the SKIP line straight to the terminal (not captured with the test's output).
pub fn missing(missing: &Missing) {
    let test = test_name();
    assert!(
        !strict(),
        "{test}: {missing}; CI is set, so a missing requirement fails the test (.ci/run installs everything)"
    );
    let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {missing}");
}

/// The install command of each external program the tests run (Debian packages,
/// as `.ci/run` installs them).
const TOOLS: &[(&str, &str)] = &[
    ("cargo-deb", "cargo install --locked cargo-deb"),
    ("chromedriver", "apt-get install chromium-driver"),
    ("chromium", "apt-get install chromium"),
    ("curl", "apt-get install curl"),
    ("delv", "apt-get install bind9-dnsutils"),
    ("dig", "apt-get install bind9-dnsutils"),
    ("dnstap-read", "apt-get install bind9-dnsutils"),
    ("dpkg-deb", "apt-get install dpkg"),
    ("fstrm_capture", "apt-get install fstrm-bin"),
    ("ip", "apt-get install iproute2"),
    ("jq", "apt-get install jq"),
    ("kdig", "apt-get install knot-dnsutils"),
    ("knotd", "apt-get install knot"),
    ("nft", "apt-get install nftables"),
    ("nsd", "apt-get install nsd"),
    ("nsenter", "apt-get install util-linux"),
    ("prlimit", "apt-get install util-linux"),
    ("promtool", "apt-get install prometheus"),
    ("python3", "apt-get install python3"),
    ("setpriv", "apt-get install util-linux"),
    ("systemd-analyze", "apt-get install systemd"),
    ("unbound", "apt-get install unbound"),
];

/// The install command for `program` (every program a test runs is listed in
/// [`TOOLS`]).
pub fn install_hint(program: &str) -> &'static str {
    TOOLS
        .iter()
        .find(|(name, _)| *name == program)
        .map(|(_, hint)| *hint)
        .unwrap_or_else(|| {
            panic!("tests/support/require.rs: add {program} to TOOLS with its install command")
        })
}

/// Where `program` is on `PATH`, if anywhere.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The external program `program`, on `PATH`.
pub fn tool(program: &str) -> Need {
    let hint = install_hint(program);
    match find_on_path(program) {
        Some(_) => Ok(()),
        None => Err(Missing::new(program, hint)),
    }
}

/// A cargo subcommand (`cargo deb`), answering `--version`.
pub fn cargo_subcommand(name: &str) -> Need {
    let program = format!("cargo-{name}");
    let hint = install_hint(&program);
    let works = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([name, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        Ok(())
    } else {
        Err(Missing::new(program, hint))
    }
}

/// Root, for `what` (network namespaces, a mount namespace, …).
pub fn root(what: &str) -> Need {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(Missing::new(
            format!("root ({what})"),
            "run the tests as root: sudo -E \"$(command -v cargo)\" test --locked",
        ))
    }
}

/// Python 3 with these modules importable (`pip` names them in `hint`).
pub fn python_modules(modules: &[&str], hint: &str) -> Need {
    let imports = format!("import {}", modules.join(", "));
    let importable = Command::new("python3")
        .args(["-c", &imports])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if importable {
        Ok(())
    } else {
        Err(Missing::new(
            format!("python3 modules {}", modules.join(", ")),
            hint,
        ))
    }
}

/// Network namespaces that work here: root and a working `ip netns`.
pub fn netns() -> Need {
    root("ip netns")?;
    tool("ip")?;
    let works = Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        Ok(())
    } else {
        Err(Missing::new(
            "working network namespaces (`ip netns list` fails here)",
            "run where `ip netns add` works, e.g. a VM or a privileged container",
        ))
    }
}
