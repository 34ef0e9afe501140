//! The `failoverd` command: argument parsing and exit codes only.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::service;
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

mod check_config;
mod ctl;
mod dnssec;
mod drill;
mod route53;
mod serve;

use self::check_config::{check_config, config_source};
use self::serve::{load_or_report, probe, serve};

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
    Route53(route53::Route53Args),
    /// DNSSEC keys: generate them, print DS/CDS/CDNSKEY for the parent.
    Dnssec(dnssec::DnssecArgs),
    /// Operate the servers: status, drain, force, failover, release, overrides.
    Ctl(ctl::CtlArgs),
    /// Rehearse a failover: take an endpoint out (force or a real break), measure
    /// detection and recovery at every server and a resolver, put it back, report.
    Drill(drill::DrillArgs),
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

/// A command whose output goes to `| head` ends quietly when the reader is gone (exit
/// 141, as a shell reports a process ended by SIGPIPE), instead of panicking on the
/// broken pipe. SIGPIPE itself stays ignored, so a peer closing a socket remains an
/// error the HTTP client reports rather than a silent death.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Parses the arguments, runs the subcommand and returns its exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    quiet_on_closed_stdout();
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
        Command::Route53(args) => route53::run(args),
        Command::Dnssec(args) => dnssec::run(args),
        Command::Ctl(args) => ctl::run(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "failoverd", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => man_pages(&out),
        Command::Drill(args) => drill::run(args),
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
            serde_json::from_value::<crate::model::DynamicType>(serde_json::Value::String(
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
        crate::zone::name::wire_from_text(&name).and_then(|wire| loaded.zones.find_zone(&wire));
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
        crate::ops::runbook::nameservers(config, zone.map(|z| loaded.zones.zones()[z].as_ref()))
    } else {
        dns
    };
    let context = crate::ops::runbook::RunbookContext {
        server_args,
        zone: zone.map(|z| loaded.zones.zones()[z].origin_text()),
        nameservers,
    };
    let text = crate::ops::runbook::render(&loaded.config, &name, record_type, &context)?;
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
