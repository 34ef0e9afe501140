//! The `exec` check, run the way a supervisor runs a job:
//!
//! - **its own process group** (`setpgid(0, 0)` in the child): when the probe ends —
//!   the program exited, the timeout passed, or the probe was dropped (shutdown,
//!   reload) — the *whole group* gets SIGKILL, so a shell's `sleep`, `curl` or `ssh` does
//!   not outlive its check. The group is killed while its leader is not yet reaped (a
//!   pidfd says it exited), so the group id cannot have been reused;
//! - **reaped**: the leader by its [`tokio::process::Child`]; the group's other
//!   members too, since this process makes itself a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`) when it first prepares an exec check, so the orphans of
//!   a killed group come back to it (and not to an init that may not reap, as in a
//!   container where failoverd is PID 1) and are waited for by group;
//! - **both pipes read while it runs**: stdout and stderr are drained concurrently into
//!   bounded buffers (the first [`HEAD_BYTES`] kept for the reason, the rest read and
//!   dropped), so a chatty check never blocks on a full pipe and its exit is seen when
//!   it happens;
//! - **a cleared environment**: `PATH` (failoverd's, or [`DEFAULT_PATH`]), `LANG`, the
//!   variables the check's `env` names, and `FAILOVERD_ADDRESS`, `FAILOVERD_ENDPOINT`
//!   (`pool/name`) and `FAILOVERD_PORT` (when the check has a port) — never the vantage
//!   secrets or cloud credentials failoverd holds;
//! - **arguments, never a shell string**: a `{address}` or `{endpoint}` argument is
//!   replaced whole (the validator refuses them inside a larger argument).

use std::ffi::OsString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;
use tokio::time::Instant;

use crate::config::ExecCheck;

/// Bytes of each of stdout and stderr kept for the reason (the rest is read and dropped).
pub(crate) const HEAD_BYTES: usize = 512;

/// `PATH` of a check when failoverd has none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Longest wait, after the group is killed, for the leader and the group to be reaped
/// and the pipes to close (the probe's own bound is the timeout plus this).
pub(crate) const REAP_GRACE: Duration = Duration::from_secs(1);

/// Why an exec probe failed.
#[derive(Debug)]
pub(crate) enum ExecError {
    /// The program could not be started (missing, not executable, no fork or pipe).
    Spawn {
        /// The program.
        program: String,
        /// Why.
        error: io::Error,
    },
    /// It ran and failed: a non-zero exit, a signal, the timeout.
    Failed(String),
}

/// A prepared exec check for one endpoint.
#[derive(Debug)]
pub(crate) struct ExecProbe {
    program: String,
    args: Vec<String>,
    env: Vec<(String, OsString)>,
}

impl ExecProbe {
    /// Prepares `check` for the endpoint at `address` labelled `endpoint` (`pool/name`):
    /// the arguments with their placeholders replaced, and the environment (read from
    /// this process's now).
    pub(crate) fn new(check: &ExecCheck, address: &str, endpoint: &str) -> Self {
        become_subreaper();
        let substitute = |arg: &String| match arg.as_str() {
            "{address}" => address.to_owned(),
            "{endpoint}" => endpoint.to_owned(),
            other => other.to_owned(),
        };
        let (program, args) = check
            .command
            .split_first()
            .map_or((String::new(), Vec::new()), |(program, args)| {
                (program.clone(), args.iter().map(substitute).collect())
            });
        let path = std::env::var_os("PATH")
            .filter(|path| !path.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.into());
        let mut env = vec![("PATH".to_owned(), path)];
        env.extend(
            ["LANG".to_owned()]
                .into_iter()
                .chain(check.env.iter().cloned())
                .filter_map(|name| std::env::var_os(&name).map(|value| (name, value))),
        );
        env.push(("FAILOVERD_ADDRESS".to_owned(), address.into()));
        env.push(("FAILOVERD_ENDPOINT".to_owned(), endpoint.into()));
        if let Some(port) = check.port {
            env.push(("FAILOVERD_PORT".to_owned(), port.to_string().into()));
        }
        Self { program, args, env }
    }

    /// Runs the check once: up (`Ok`, "exit 0") when it exits 0 within `timeout`.
    pub(crate) async fn run(&self, timeout: Duration) -> Result<String, ExecError> {
        let deadline = Instant::now() + timeout;
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| ExecError::Spawn {
                program: self.program.clone(),
                error,
            })?;
        let mut out = Capture::new(child.stdout.take());
        let mut err = Capture::new(child.stderr.take());
        let Some(pid) = child.id() else {
            return Err(ExecError::Failed(
                "exited before it could be watched".into(),
            ));
        };
        let mut job = Job {
            pgid: pid as libc::pid_t,
            exit: pidfd(pid),
            child: Some(child),
            status: None,
            group_reaped: false,
        };
        let timed_out = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break true,
                exited = job.exited() => match exited {
                    Ok(()) => break false,
                    Err(error) => return Err(ExecError::Failed(format!("waiting for {}: {error}", self.program))),
                },
                () = out.fill(), if out.open() => {}
                () = err.fill(), if err.open() => {}
            }
        };
        let status = job.end().await;
        // The group is gone, so the pipes close; a member that left the group (setsid)
        // may hold them open: read what there is for a moment, then stop.
        let drained = async {
            while out.open() || err.open() {
                tokio::select! {
                    () = out.fill(), if out.open() => {}
                    () = err.fill(), if err.open() => {}
                }
            }
        };
        let _ = tokio::time::timeout(REAP_GRACE / 10, drained).await;
        if timed_out {
            return Err(ExecError::Failed(format!(
                "timeout after {} ms",
                timeout.as_millis()
            )));
        }
        let status = status
            .map_err(|error| ExecError::Failed(format!("waiting for {}: {error}", self.program)))?;
        if status.success() {
            return Ok("exit 0".into());
        }
        let code = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "killed".to_owned(),
        };
        let message = Some(err.first_line())
            .filter(|line| !line.is_empty())
            .unwrap_or_else(|| out.first_line());
        Err(ExecError::Failed(if message.is_empty() {
            code
        } else {
            format!("{code}: {message}")
        }))
    }
}

/// A running check: its process group and leader, killed and reaped whatever happens
/// (see the module docs).
struct Job {
    pgid: libc::pid_t,
    /// Readable once the leader exited (None: no pidfd; the leader is then reaped as
    /// it exits and the group is not killed after a normal exit).
    exit: Option<AsyncFd<OwnedFd>>,
    /// The leader until it is reaped.
    child: Option<Child>,
    status: Option<ExitStatus>,
    group_reaped: bool,
}

impl Job {
    /// Resolves once the leader has exited (with a pidfd, not yet reaped, so its
    /// group id is still ours to kill). Cancel safe.
    async fn exited(&mut self) -> io::Result<()> {
        if let Some(exit) = &self.exit {
            loop {
                let mut ready = exit.readable().await?;
                // Readiness may be spurious: ask the kernel, without reaping.
                if has_exited(self.pgid) {
                    ready.retain_ready();
                    return Ok(());
                }
                ready.clear_ready();
            }
        }
        if let Some(child) = self.child.as_mut() {
            let status = child.wait().await?;
            self.status = Some(status);
            self.child = None;
        }
        Ok(())
    }

    /// Kills the whole group (while the leader is unreaped), reaps the leader, then
    /// every other member that comes back to this process.
    async fn end(&mut self) -> io::Result<ExitStatus> {
        if let Some(child) = self.child.as_mut() {
            kill_group(self.pgid);
            let status = child.wait().await;
            self.child = None;
            self.status = Some(status?);
        }
        reap_group(self.pgid).await;
        self.group_reaped = true;
        self.status
            .ok_or_else(|| io::Error::other("no exit status"))
    }
}

impl Drop for Job {
    /// A probe dropped mid-run (shutdown, reload, the outer timeout): the group dies at
    /// once; the leader and the members are reaped by a task of their own.
    fn drop(&mut self) {
        let child = self.child.take();
        if child.is_some() {
            kill_group(self.pgid);
        }
        if child.is_none() && self.group_reaped {
            return;
        }
        let pgid = self.pgid;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(mut child) = child {
                    let _ = child.wait().await;
                }
                reap_group(pgid).await;
            });
        }
        // Without a runtime `child` drops here: tokio kills it and reaps it as an
        // orphan.
    }
}

/// Whether child `pid` has exited (it is left unreaped), or is gone.
fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: waitid(2) writes only into `info`, a zeroed siginfo_t we own; WNOWAIT
    // leaves the child to be reaped by its `Child`.
    let (result, exited) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let result = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        (result, info.si_pid() != 0)
    };
    // An error (ECHILD: not a child of ours any more) is not worth waiting for.
    result != 0 || exited
}

/// SIGKILL to every process of group `pgid`.
fn kill_group(pgid: libc::pid_t) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is
        // touched. An error (ESRCH: nobody left) needs no handling.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Reaps the members of group `pgid` that come back to this process (their leader is
/// reaped already), until none is left or [`REAP_GRACE`] passes. Only where they come
/// back to us: as a subreaper, or as PID 1.
async fn reap_group(pgid: libc::pid_t) {
    if pgid <= 1 || !become_subreaper() {
        return;
    }
    let deadline = Instant::now() + REAP_GRACE;
    let mut pause = Duration::from_millis(1);
    loop {
        loop {
            // SAFETY: waitid(2) writes only into `info`, a zeroed siginfo_t we own.
            let reaped = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let result = libc::waitid(
                    libc::P_PGID,
                    pgid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG,
                );
                result == 0 && info.si_pid() != 0
            };
            if !reaped {
                break;
            }
        }
        // SAFETY: signal 0 only checks whether the group has a process left.
        let left = unsafe { libc::kill(-pgid, 0) } == 0;
        if !left || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A pidfd of `pid`, readable once it exits (None where the kernel has none).
fn pidfd(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the `OwnedFd` stays open and the same descriptor for as long as the
    // `AsyncFd` owns it.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

/// Makes this process a child subreaper (once): orphans of its exec checks' process
/// groups come back to it to be reaped. True if they do (also when it is PID 1).
fn become_subreaper() -> bool {
    static SUBREAPER: OnceLock<bool> = OnceLock::new();
    *SUBREAPER.get_or_init(|| {
        // SAFETY: prctl(2) PR_SET_CHILD_SUBREAPER takes an integer flag.
        let set = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0;
        set || std::process::id() == 1
    })
}

/// One output pipe of a check: read until it closes, its first [`HEAD_BYTES`] kept.
struct Capture<R> {
    pipe: Option<R>,
    head: Vec<u8>,
    buffer: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> Capture<R> {
    fn new(pipe: Option<R>) -> Self {
        Self {
            pipe,
            head: Vec::with_capacity(HEAD_BYTES),
            buffer: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }

    fn open(&self) -> bool {
        self.pipe.is_some()
    }

    /// Reads once (cancel safe: nothing read is lost if the read is dropped).
    async fn fill(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return std::future::pending().await;
        };
        match pipe.read(&mut self.buffer).await {
            Ok(0) | Err(_) => self.pipe = None,
            Ok(n) => {
                let room = HEAD_BYTES - self.head.len();
                self.head.extend_from_slice(&self.buffer[..n.min(room)]);
            }
        }
    }

    /// The first non-empty line kept, trimmed.
    fn first_line(&self) -> String {
        String::from_utf8_lossy(&self.head)
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("")
            .to_owned()
    }
}
