//! Zero-loss restart (SIGUSR2): a running server starts its replacement on the same
//! sockets, hands it its state, and gives way once it answers.
//!
//! ```text
//!  old: pause admin accept + override exchange ─▶ plane hands over its state (no more
//!       changes or saves: 503) ─▶ exec the binary again with the listening sockets
//!       (FAILOVERD_LISTEN_FDS), the state (an unlinked file) and a ready socket
//!  new: takes the sockets (binds nothing), starts from the state, serves ─▶ "ready"
//!       (and MAINPID + READY to systemd)
//!  old: stops reading and accepting (the new one reads the same sockets: nothing
//!       queued is lost) ─▶ open connections finish (≤ 2 s) ─▶ exits 0
//! ```
//!
//! If the new process fails or is not ready within a minute, it is killed and the old
//! one resumes as if nothing happened. Not available with `udp_io = "xdp"` (the XDP
//! program is bound to the process): restart instead.

use std::ffi::OsString;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::sync::oneshot;

use super::Service;
use super::plane::PlaneInput;
use crate::config::UdpIo;
use crate::health::persist::SavedState;
use crate::runtime::inherit::{Inherited, LISTEN_FDS_ENV, describe, keep_across_exec};

/// Environment variable: the descriptor of the handed-over state (JSON).
pub(crate) const HANDOVER_STATE_ENV: &str = "FAILOVERD_HANDOVER_STATE";
/// Environment variable: the descriptor the new process writes "ready" to.
pub(crate) const HANDOVER_READY_ENV: &str = "FAILOVERD_HANDOVER_READY";

/// How long the new process may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long open connections of the old process may take to finish.
const DRAIN: Duration = Duration::from_secs(2);

/// Why a hand-over did not happen (the old process carries on).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum HandoverError {
    /// A probe agent has no queries to keep: restart it.
    #[error("a zero-loss restart is for servers; restart a probe agent instead")]
    Agent,
    /// `udp_io = "xdp"`: the XDP program belongs to this process.
    #[error(
        "a zero-loss restart is not available with udp_io = \"xdp\"; restart the service instead"
    )]
    Xdp,
    /// The state could not be handed over.
    #[error("cannot hand over the state: {0}")]
    State(std::io::Error),
    /// The new process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What was run.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The new process exited or did not say it was ready.
    #[error("the new process did not take over: {0}")]
    NotReady(String),
}

impl Service {
    /// Starts `program ARGS…` as this server's replacement on the same sockets and
    /// returns its process id once it serves. On any failure it is killed and this
    /// process carries on (nothing was stopped).
    pub(crate) async fn hand_over(
        &self,
        program: &Path,
        args: &[OsString],
    ) -> Result<u32, HandoverError> {
        if self.role != super::plane::Role::Server {
            return Err(HandoverError::Agent);
        }
        if self.fixed.udp_io == UdpIo::Xdp {
            return Err(HandoverError::Xdp);
        }
        let _ = self.paused.send(true);
        let result = self.start_replacement(program, args).await;
        if result.is_err() {
            self.events.pause_journal(false).await;
            let _ = self.plane.inputs.send(PlaneInput::Resume).await;
            let _ = self.paused.send(false);
        }
        result
    }

    async fn start_replacement(
        &self,
        program: &Path,
        args: &[OsString],
    ) -> Result<u32, HandoverError> {
        let (reply, state) = oneshot::channel();
        self.plane
            .inputs
            .send(PlaneInput::HandOver { reply })
            .await
            .map_err(|_| HandoverError::NotReady("the health plane has stopped".to_owned()))?;
        let state = state
            .await
            .map_err(|_| HandoverError::NotReady("the health plane has stopped".to_owned()))?;
        // The new process carries the event journal on from what is on disk now.
        self.events.pause_journal(true).await;
        // An unlinked file: nothing is left on disk whatever happens.
        let mut file = tempfile::tempfile().map_err(HandoverError::State)?;
        serde_json::to_writer(&mut file, &state)
            .map_err(|e| HandoverError::State(std::io::Error::other(e)))?;
        file.rewind().map_err(HandoverError::State)?;
        let (ours, theirs) = UnixStream::pair().map_err(HandoverError::State)?;
        let mut keep: Vec<RawFd> = self
            .listening
            .iter()
            .flat_map(|l| l.fds.iter().copied())
            .collect();
        keep.extend([file.as_raw_fd(), theirs.as_raw_fd()]);
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .env(LISTEN_FDS_ENV, describe(&self.listening))
            .env(HANDOVER_STATE_ENV, file.as_raw_fd().to_string())
            .env(HANDOVER_READY_ENV, theirs.as_raw_fd().to_string())
            .stdin(std::process::Stdio::null());
        // SAFETY: between fork and exec only fcntl runs (async-signal-safe).
        unsafe {
            command.pre_exec(move || keep_across_exec(&keep));
        }
        let mut child = command.spawn().map_err(|source| HandoverError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        drop((file, theirs));
        let pid = child.id();
        tracing::info!(pid, "replacement process started; waiting for it to serve");
        ours.set_nonblocking(true).map_err(HandoverError::State)?;
        let ours = tokio::net::UnixStream::from_std(ours).map_err(HandoverError::State)?;
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(ours);
        let outcome = tokio::time::timeout(READY_TIMEOUT, reader.read_line(&mut line)).await;
        match outcome {
            Ok(Ok(_)) if line.trim() == "ready" => {
                // The child outlives this process (its parent becomes init or the
                // service manager, which reaps it).
                drop(child);
                Ok(pid)
            }
            other => {
                let _ = child.kill();
                let status = child.wait().ok();
                let why = match other {
                    Err(_) => format!("not ready within {} s", READY_TIMEOUT.as_secs()),
                    _ => format!(
                        "it exited ({})",
                        status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string())
                    ),
                };
                Err(HandoverError::NotReady(why))
            }
        }
    }

    /// After a successful [`Service::hand_over`]: stops reading and accepting (the
    /// new process serves the same sockets), lets open connections finish, stops.
    /// Saves nothing: the state file is the new process's now.
    pub(crate) async fn finish_hand_over(mut self) {
        if let Some(dns) = self.dns.as_mut() {
            dns.stop_serving().await;
        }
        tokio::time::sleep(DRAIN.min(Duration::from_millis(200))).await;
        let _ = tokio::time::timeout(DRAIN, async {
            while self
                .dns
                .as_ref()
                .is_some_and(|d| d.metrics.totals().tcp_open() > 0)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        self.shutdown().await;
    }
}

/// What a process started by [`Service::hand_over`] takes over.
#[derive(Debug)]
pub(crate) struct Takeover {
    /// The listening sockets.
    pub inherited: Inherited,
    /// The old process's state.
    pub state: SavedState,
    ready: UnixStream,
}

impl Takeover {
    /// The hand-over this process was started for, if any (read once, at start).
    pub(crate) fn from_env() -> Result<Option<Self>, String> {
        let Some(inherited) = Inherited::from_env()? else {
            return Ok(None);
        };
        let fd = |name: &str| -> Result<OwnedFd, String> {
            let value = std::env::var(name).map_err(|_| format!("{name} is not set"))?;
            let fd: RawFd = value
                .parse()
                .map_err(|_| format!("{name}={value:?} is not a descriptor"))?;
            // SAFETY: fcntl(F_GETFD) only checks that the descriptor is open.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(format!("{name}: descriptor {fd} is not open"));
            }
            // SAFETY: open (checked), left open for this process, taken once.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let mut file = std::fs::File::from(fd(HANDOVER_STATE_ENV)?);
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .map_err(|e| format!("{HANDOVER_STATE_ENV}: {e}"))?;
        let state: SavedState =
            serde_json::from_slice(&text).map_err(|e| format!("{HANDOVER_STATE_ENV}: {e}"))?;
        let ready = UnixStream::from(fd(HANDOVER_READY_ENV)?);
        Ok(Some(Self {
            inherited,
            state,
            ready,
        }))
    }

    /// Tells the old process that this one serves (it then gives way).
    pub(crate) fn announce_ready(mut self) -> std::io::Result<()> {
        self.ready.write_all(b"ready\n")
    }
}

/// Tells systemd (when it runs the service, `Type=notify`) that this process serves
/// and is the service's main process.
pub(crate) fn notify_ready() {
    let pid = std::process::id();
    if let Err(error) = sd_notify::notify(&[
        sd_notify::NotifyState::MainPid(pid),
        sd_notify::NotifyState::Ready,
    ]) {
        tracing::warn!(%error, "cannot tell systemd that the server is ready");
    }
}
