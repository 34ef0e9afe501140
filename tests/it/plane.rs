//! The health plane's supervision, on the real binary: a panic fails `/readyz` and
//! ends the process non-zero; on SIGTERM the plane is joined, so an operator's
//! change made just before is in the state file when the process has exited.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{binary, ctl_with, http, log_field, stderr_lines, wait_until};

/// `failoverd serve` on the embedded default (free ports), its state in
/// `state_home`; killed on drop unless it exited.
struct Server {
    child: Child,
    log: mpsc::Receiver<String>,
    admin: SocketAddr,
}

impl Server {
    fn start(state_home: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .env("XDG_STATE_HOME", state_home)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn failoverd");
        let log = stderr_lines(&mut child);
        let mut server = Self {
            child,
            log,
            admin: "0.0.0.0:0".parse().unwrap(),
        };
        let line = server
            .wait_for_log("admin API listening", Duration::from_secs(60))
            .expect("admin API starts");
        server.admin = log_field(&line, "admin")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no admin address in {line:?}"));
        server
    }

    fn wait_for_log(&self, text: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    fn readyz(&self) -> u16 {
        http(self.admin, "GET", "/readyz", &[], b"").0
    }

    fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0);
    }

    /// Waits (with a deadline) for the process to exit.
    fn exit_status(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_panicking_plane_fails_readyz_within_a_second_and_the_process_exits_non_zero() {
    let home = tempfile::tempdir().unwrap();
    let mut server = Server::start(home.path(), &[("FAILOVERD_TEST_PANIC_PLANE", "1")]);
    assert!(
        wait_until(Duration::from_secs(20), || server.readyz() == 200),
        "never ready"
    );
    // The hook panics the plane on the next reload.
    server.signal(libc::SIGHUP);
    server
        .wait_for_log("the health plane panicked", Duration::from_secs(20))
        .expect("the panic is logged");
    let logged = Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || server.readyz() == 503),
        "/readyz still ready a second after the panic"
    );
    let failing = logged.elapsed();
    let status = server
        .exit_status(Duration::from_secs(20))
        .expect("the process exits");
    assert_eq!(status.code(), Some(70), "{status:?}");
    eprintln!("readyz failed {failing:?} after the panic was logged; exit {status:?}");
}

#[test]
fn a_change_made_just_before_sigterm_is_in_the_state_file_after_exit() {
    const ROUNDS: usize = 20;
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("failoverd/state.json");
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let mut server = Server::start(home.path(), &[]);
        let url = vec![format!("http://{}", server.admin)];
        let reason = format!("round {round}");
        let (ok, out) = ctl_with(
            &url,
            None,
            &[
                "drain",
                "web-eu/eu-1",
                "--reason",
                &reason,
                "--expires",
                "1h",
            ],
        );
        assert!(ok, "{out}");
        server.signal(libc::SIGTERM);
        let status = server
            .exit_status(Duration::from_secs(30))
            .expect("the process exits after SIGTERM");
        assert!(status.success(), "{status:?}");
        let saved = std::fs::read_to_string(&state).unwrap_or_default();
        if !saved.contains(&reason) {
            lost.push(round);
        }
    }
    eprintln!("{ROUNDS} rounds, {} changes lost: {lost:?}", lost.len());
    assert_eq!(lost, Vec::<usize>::new(), "changes lost at SIGTERM");
}
