//! `failoverd serve` and `failoverd probe`: the runtime, signals (SIGHUP reloads,
//! SIGINT/SIGTERM stop, SIGUSR2 hands over to a new process) and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::api::ReloadStatus;
use crate::config::ConfigSource;
use crate::service::{self, Service};
use anyhow::Context;

use crate::cli::check_config::{config_source, count};

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("failoverd")
        .build()
        .context("starting the async runtime")
}

pub(crate) fn load_or_report(source: ConfigSource) -> anyhow::Result<service::Loaded> {
    match service::load(source) {
        Ok(loaded) => Ok(loaded),
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            anyhow::bail!(
                "the configuration has {}",
                count(diagnostics.errors.len(), "error")
            );
        }
    }
}

pub(crate) fn probe(path: PathBuf, options: service::StartOptions) -> anyhow::Result<ExitCode> {
    run(Some(path), options, true)
}

pub(crate) fn serve(
    path: Option<PathBuf>,
    options: service::StartOptions,
) -> anyhow::Result<ExitCode> {
    run(path, options, false)
}

/// Runs `serve` (or, with `agent`, `probe`) until SIGINT/SIGTERM, reloading on SIGHUP.
fn run(
    path: Option<PathBuf>,
    mut options: service::StartOptions,
    agent: bool,
) -> anyhow::Result<ExitCode> {
    // Started by a server giving way to this process (SIGUSR2): its sockets and state.
    let takeover = if agent {
        None
    } else {
        service::Takeover::from_env()
            .map_err(|e| anyhow::anyhow!("cannot take over from the process replaced: {e}"))?
    };
    let takeover = takeover.map(|mut takeover| {
        let inherited = std::mem::take(&mut takeover.inherited);
        options.inherited = Some(std::sync::Arc::new(std::sync::Mutex::new(inherited)));
        options.handed_state = Some(takeover.state.clone());
        takeover
    });
    // Connections, probes and files share the descriptor limit; take what the host
    // allows (the admin listeners keep to a quarter of it).
    let descriptors = crate::runtime::raise_descriptor_limit();
    runtime()?.block_on(async move {
        tracing::debug!(?descriptors, "descriptor limit");
        // Handlers first, so a signal arriving right after start-up is not lost.
        let signals = Signals::install()?;
        let reader = if agent {
            service::Reader::Agent {
                vantage: options.vantage.clone(),
            }
        } else {
            service::Reader::Server
        };
        let loaded = load_or_report(config_source(path.as_ref())?.read_by(reader))?;
        let started = if agent {
            Service::start_agent(loaded, options).await
        } else {
            Service::start_with(loaded, options).await
        };
        let service = match started {
            Ok(service) => service,
            Err(service::ServiceError::Invalid(diagnostics)) => {
                eprint!("{diagnostics}");
                anyhow::bail!("cannot start");
            }
            Err(error) => return Err(error.into()),
        };
        match signals.wait(&service, path.as_ref(), takeover).await {
            Ending::Stop => {
                tracing::info!("shutting down");
                service.shutdown().await;
            }
            Ending::HandedOver(pid) => {
                tracing::info!(
                    pid,
                    "handed over to the replacement process; finishing open connections"
                );
                service.finish_hand_over().await;
                tracing::info!("handed over; exiting");
            }
            Ending::PlaneFailed => {
                // /readyz fails already; health checkers get a moment to see it
                // before the listeners close.
                tokio::time::sleep(PLANE_FAILED_GRACE).await;
                tracing::error!("exiting: the health plane stopped");
                service.shutdown().await;
                return Ok(ExitCode::from(PLANE_FAILED_EXIT));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The signals `serve` reacts to.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
    /// SIGUSR2: a zero-loss restart (see `service::Service::hand_over`).
    replace: tokio::signal::unix::Signal,
}

/// How a server's run ends.
enum Ending {
    /// SIGINT or SIGTERM.
    Stop,
    /// A replacement process (this pid) took over.
    HandedOver(u32),
    /// The health plane panicked: exit non-zero for systemd to restart the server.
    PlaneFailed,
}

/// How long a server whose health plane stopped keeps failing `/readyz` before it
/// exits.
const PLANE_FAILED_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The exit code then (`EX_SOFTWARE`: systemd's `Restart=on-failure` restarts it).
const PLANE_FAILED_EXIT: u8 = 70;

/// The program to start as a replacement: this executable (after a package upgrade,
/// the new file at the same path).
fn this_program() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("failoverd"));
    let text = exe.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    }
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
            hangup: signal(SignalKind::hangup()).context("installing SIGHUP handler")?,
            replace: signal(SignalKind::user_defined2()).context("installing SIGUSR2 handler")?,
        })
    }

    /// Returns on SIGINT/SIGTERM, or once SIGUSR2 started a replacement that took
    /// over; reloads on SIGHUP, keeping the running configuration if the new one is
    /// invalid.
    ///
    /// Once the first health decision is made (from a state handed over, at once) the
    /// server says it is ready: to systemd, and to the process it replaces.
    async fn wait(
        mut self,
        service: &Service,
        path: Option<&PathBuf>,
        mut takeover: Option<service::Takeover>,
    ) -> Ending {
        let ready = service.until_ready(std::time::Duration::from_secs(3600));
        tokio::pin!(ready);
        let mut announced = false;
        loop {
            tokio::select! {
                _ = &mut ready, if !announced => {
                    announced = true;
                    if let Some(takeover) = takeover.take() {
                        match takeover.announce_ready() {
                            Ok(()) => tracing::info!("took over from the process replaced"),
                            Err(error) => tracing::error!(%error, "cannot tell the process replaced that this one serves"),
                        }
                    }
                    service::notify_ready();
                }
                _ = service.plane_failed() => return Ending::PlaneFailed,
                _ = self.interrupt.recv() => return Ending::Stop,
                _ = self.terminate.recv() => return Ending::Stop,
                _ = self.replace.recv() => {
                    tracing::info!("SIGUSR2: starting a replacement on the same sockets");
                    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
                    match service.hand_over(&this_program(), &args).await {
                        Ok(pid) => return Ending::HandedOver(pid),
                        Err(error) => tracing::error!(%error, "zero-loss restart failed; this process carries on"),
                    }
                }
                _ = self.hangup.recv() => {
                    reload(service, path).await;
                }
                Some(reply) = service.reload_requested() => {
                    let _ = reply.send(reload(service, path).await);
                }
            }
        }
    }
}

async fn reload(service: &Service, path: Option<&PathBuf>) -> ReloadStatus {
    let source = match config_source(path) {
        Ok(source) => source,
        Err(error) => {
            tracing::error!("reload failed, keeping the running configuration: {error:#}");
            return ReloadStatus {
                ok: false,
                at_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                errors: vec![format!("{error:#}")],
                restart_needed: Vec::new(),
            };
        }
    };
    let (result, status) = service.reload_reporting(source).await;
    match result {
        Ok(warnings) => {
            for warning in &warnings.warnings {
                tracing::warn!("{warning}");
            }
        }
        Err(diagnostics) => {
            for error in &diagnostics.errors {
                tracing::error!("{error}");
            }
            tracing::error!(
                errors = diagnostics.errors.len(),
                "reload failed, keeping the running configuration"
            );
        }
    }
    status
}
