//! The `failoverd` command: argument parsing and exit codes only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use failoverd::admin::api::ReloadStatus;
use failoverd::config::ConfigSource;
use failoverd::service::{self, Service};

mod ctl;
mod dnssec_cli;
mod drill_cli;
mod route53_cli;

#[derive(Parser)]
#[command(
    name = "failoverd",
    version,
    about = "Authoritative DNS answering from health-weighted regional pools"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS (with no --config: the embedded default, on 127.0.0.1:5353).
    Serve {
        /// Configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen on these addresses instead of the configured ones (repeatable;
        /// port 0 picks a free port).
        #[arg(long)]
        listen: Vec<std::net::SocketAddr>,
        /// Serve the admin API here instead of `[admin] listen`.
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
        /// This server's vantage point, instead of `[health] vantage`.
        #[arg(long)]
        vantage: Option<String>,
    },
    /// Probe endpoints from a vantage point and report to the servers (no DNS;
    /// SIGHUP reloads).
    Probe {
        /// Configuration file (the servers' configuration; only this vantage point's
        /// secret must be present).
        #[arg(long, short)]
        config: PathBuf,
        /// The vantage point this agent is, instead of `[health] vantage`.
        #[arg(long)]
        vantage: Option<String>,
        /// Serve status and metrics here (default: no admin API; `[admin] listen`
        /// is the servers' and is ignored).
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
    },
    /// Validate a configuration and its zone files; print every error and warning.
    CheckConfig {
        /// Configuration file.
        path: PathBuf,
        /// Fail on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Check it as a probe agent reads it: only this vantage point's secret must
        /// be present (`--vantage` or `[health] vantage`).
        #[arg(long)]
        agent: bool,
        /// The vantage point `serve` (or, with --agent, `probe`) would run as.
        #[arg(long)]
        vantage: Option<String>,
        /// DNS listen addresses `serve` would be given (as its --listen).
        #[arg(long, conflicts_with = "agent")]
        listen: Vec<std::net::SocketAddr>,
        /// The admin listen address `serve` would be given (as its --admin-listen).
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
    },
    /// Sync records to Route 53: plan (dry run, the default), apply, or sync.
    Route53(route53_cli::Route53Args),
    /// DNSSEC keys: generate them, print DS/CDS/CDNSKEY for the parent.
    Dnssec(dnssec_cli::DnssecArgs),
    /// Operate the servers: status, drain, force, failover, release, overrides.
    Ctl(ctl::CtlArgs),
    /// Rehearse a failover: take an endpoint out (force or a real break), measure
    /// detection and recovery at every server and a resolver, put it back, report.
    Drill(drill_cli::DrillArgs),
    /// Print the failover runbook of a record, generated from the configuration.
    Runbook {
        /// Record name.
        record: String,
        /// Only this record type (A, AAAA, CNAME; any case).
        #[arg(long = "type")]
        record_type: Option<String>,
        /// Configuration file (default: the embedded one).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The servers' admin API URLs the printed ctl commands use (repeatable;
        /// default: `--config PATH` when it lists `[health] servers`, else its
        /// `[admin] listen`).
        #[arg(long = "server")]
        servers: Vec<String>,
        /// The nameservers to verify at and drill against, `IP:PORT` (repeatable;
        /// default: the specific `[server] listen` addresses, else the addresses the
        /// zone's NS records have in the zone, on the listen port).
        #[arg(long = "dns")]
        dns: Vec<std::net::SocketAddr>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (failoverd.1 and one per subcommand) into a directory.
    Man {
        /// Where to write them.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal; files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            admin_listen,
            vantage,
        } => {
            let options = service::StartOptions {
                listen: (!listen.is_empty()).then_some(listen),
                admin_listen,
                vantage,
                ..Default::default()
            };
            serve(config, options)
        }
        Command::Probe {
            config,
            vantage,
            admin_listen,
        } => probe(
            config,
            service::StartOptions {
                listen: None,
                admin_listen,
                vantage,
                ..Default::default()
            },
        ),
        Command::CheckConfig {
            path,
            deny_warnings,
            agent,
            vantage,
            listen,
            admin_listen,
        } => {
            let options = service::StartOptions {
                listen: (!listen.is_empty()).then_some(listen),
                admin_listen,
                vantage: vantage.clone(),
                ..Default::default()
            };
            let reader = if agent {
                service::Reader::Agent { vantage }
            } else {
                service::Reader::Server
            };
            check_config(&path, deny_warnings, reader, &options)
        }
        Command::Route53(args) => route53_cli::run(args),
        Command::Dnssec(args) => dnssec_cli::run(args),
        Command::Ctl(args) => ctl::run(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "failoverd", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => man_pages(&out),
        Command::Drill(args) => drill_cli::run(args),
        Command::Runbook {
            record,
            record_type,
            config,
            servers,
            dns,
        } => runbook(
            &record,
            record_type.as_deref(),
            config.as_ref(),
            servers,
            dns,
        ),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("failoverd: {}", describe(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once: a cause whose text the message so far
/// already holds (many errors put their cause in their own message) is left out.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

fn runbook(
    record: &str,
    record_type: Option<&str>,
    path: Option<&PathBuf>,
    servers: Vec<String>,
    dns: Vec<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let record_type = record_type
        .map(|t| {
            serde_json::from_value::<failoverd::model::DynamicType>(serde_json::Value::String(
                t.to_ascii_uppercase(),
            ))
            .map_err(|_| anyhow::anyhow!("--type {t}: expected A, AAAA or CNAME"))
        })
        .transpose()?;
    let loaded = load_or_report(config_source(path)?)?;
    let mut name = record.trim().to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    let zone =
        failoverd::zone::name::wire_from_text(&name).and_then(|wire| loaded.zones.find_zone(&wire));
    // How ctl finds the servers: given, else the config's [health] servers, else its
    // admin API.
    let config = &loaded.config;
    let server_args: Vec<String> =
        match (servers.is_empty(), path, config.health.servers.is_empty()) {
            (false, _, _) => servers
                .iter()
                .flat_map(|s| ["--server".to_owned(), s.clone()])
                .collect(),
            (true, Some(path), false) => vec!["--config".to_owned(), path.display().to_string()],
            (true, None, false) => config
                .health
                .servers
                .iter()
                .flat_map(|s| ["--server".to_owned(), s.clone()])
                .collect(),
            (true, _, true) => config
                .admin
                .listen
                .iter()
                .flat_map(|a| ["--server".to_owned(), format!("http://{a}")])
                .collect(),
        };
    let nameservers = if dns.is_empty() {
        failoverd::runbook::nameservers(config, zone.map(|z| loaded.zones.zones()[z].as_ref()))
    } else {
        dns
    };
    let context = failoverd::runbook::RunbookContext {
        server_args,
        zone: zone.map(|z| loaded.zones.zones()[z].origin_text()),
        nameservers,
    };
    let text = failoverd::runbook::render(&loaded.config, &name, record_type, &context)?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Writes `failoverd.1` and `failoverd-SUBCOMMAND.1` (nested ones too) into `out`.
fn man_pages(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    fn write(command: &clap::Command, name: &str, out: &std::path::Path) -> anyhow::Result<usize> {
        let command = command.clone().name(name.to_owned());
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).render(&mut page)?;
        let path = out.join(format!("{name}.1"));
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        let mut written = 1;
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            written += write(sub, &format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(written)
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let command = <Cli as clap::CommandFactory>::command();
    let written = write(&command, "failoverd", out)?;
    eprintln!("{written} man pages written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn config_source(path: Option<&PathBuf>) -> anyhow::Result<ConfigSource> {
    match path {
        // The error names the file and why ("cannot read PATH: No such file …").
        Some(path) => Ok(ConfigSource::from_file(path)?),
        None => Ok(ConfigSource::embedded()),
    }
}

fn check_config(
    path: &PathBuf,
    deny_warnings: bool,
    reader: service::Reader,
    options: &service::StartOptions,
) -> anyhow::Result<ExitCode> {
    let source = config_source(Some(path))?.read_by(reader);
    let loaded = service::load(source).and_then(|loaded| {
        let mut host = options.check(&loaded.config);
        host.extend(service::check_host(&loaded.config));
        if host.has_errors() {
            let mut diagnostics = loaded.warnings;
            diagnostics.extend(host);
            return Err(diagnostics);
        }
        Ok(loaded)
    });
    // Errors and warnings go to stderr, the verdict to stdout.
    match loaded {
        Ok(loaded) => {
            eprint!("{}", loaded.warnings);
            let warnings = loaded.warnings.warnings.len();
            let failed = deny_warnings && warnings > 0;
            println!(
                "{}: {} ({}, {}, {}, {}; {})",
                path.display(),
                if failed {
                    "FAILED (--deny-warnings)"
                } else {
                    "OK"
                },
                count(loaded.zones.zones().len(), "zone"),
                count(loaded.zones.record_count(), "static record"),
                count(loaded.config.records.len(), "dynamic record"),
                count(loaded.config.pools.len(), "pool"),
                count(warnings, "warning"),
            );
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            println!(
                "{}: {}, {}",
                path.display(),
                count(diagnostics.errors.len(), "error"),
                count(diagnostics.warnings.len(), "warning"),
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// "1 error", "2 errors".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("failoverd")
        .build()
        .context("starting the async runtime")
}

fn load_or_report(source: ConfigSource) -> anyhow::Result<service::Loaded> {
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

fn probe(path: PathBuf, options: service::StartOptions) -> anyhow::Result<ExitCode> {
    run(Some(path), options, true)
}

fn serve(path: Option<PathBuf>, options: service::StartOptions) -> anyhow::Result<ExitCode> {
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
    let descriptors = failoverd::runtime::raise_descriptor_limit();
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
