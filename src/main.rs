//! The `failoverd` command: argument parsing and exit codes only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use failoverd::config::ConfigSource;
use failoverd::service::{self, Service};

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
    },
    /// Validate a configuration and its zone files; print every error and warning.
    CheckConfig {
        /// Configuration file.
        path: PathBuf,
        /// Fail on warnings too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Sync records to Route 53: plan (dry run, the default), apply, or sync.
    Route53(route53_cli::Route53Args),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,hickory_server=warn,hickory_net=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
        Command::Serve { config } => serve(config),
        Command::CheckConfig {
            path,
            deny_warnings,
        } => check_config(&path, deny_warnings),
        Command::Route53(args) => route53_cli::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("failoverd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_source(path: Option<&PathBuf>) -> anyhow::Result<ConfigSource> {
    match path {
        Some(path) => {
            ConfigSource::from_file(path).with_context(|| format!("reading {}", path.display()))
        }
        None => Ok(ConfigSource::embedded()),
    }
}

fn check_config(path: &PathBuf, deny_warnings: bool) -> anyhow::Result<ExitCode> {
    let source = config_source(Some(path))?;
    match service::load(source) {
        Ok(loaded) => {
            eprint!("{}", loaded.warnings);
            let zones = loaded.zones.zones().len();
            let records = loaded.zones.record_count();
            let warnings = loaded.warnings.warnings.len();
            eprintln!(
                "{}: OK ({zones} zones, {records} static records, {} dynamic records, {} pools; {warnings} warnings)",
                path.display(),
                loaded.config.records.len(),
                loaded.config.pools.len(),
            );
            Ok(if deny_warnings && warnings > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            eprintln!(
                "{}: {} errors, {} warnings",
                path.display(),
                diagnostics.errors.len(),
                diagnostics.warnings.len()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("failoverd")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let source = config_source(path.as_ref())?;
        let loaded = match service::load(source) {
            Ok(loaded) => loaded,
            Err(diagnostics) => {
                eprint!("{diagnostics}");
                anyhow::bail!("configuration has {} errors", diagnostics.errors.len());
            }
        };
        let service = Service::start(loaded)?;
        wait_for_signals(&service, path.as_ref()).await?;
        tracing::info!("shutting down");
        service.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Waits for SIGINT/SIGTERM (returns) and SIGHUP (reloads, keeping the running
/// configuration if the new one is invalid).
async fn wait_for_signals(service: &Service, path: Option<&PathBuf>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = hangup.recv() => {
                let source = match config_source(path) {
                    Ok(source) => source,
                    Err(error) => {
                        tracing::error!("reload failed, keeping the running configuration: {error:#}");
                        continue;
                    }
                };
                match service.reload(source) {
                    Ok(warnings) => {
                        for warning in &warnings.warnings {
                            tracing::warn!("{warning}");
                        }
                    }
                    Err(diagnostics) => {
                        for error in &diagnostics.errors {
                            tracing::error!("{error}");
                        }
                        tracing::error!(errors = diagnostics.errors.len(), "reload failed, keeping the running configuration");
                    }
                }
            }
        }
    }
}
