//! `failoverd route53 plan|apply|sync`: the command-line face of [`crate::sync`].
//!
//! - `plan` (also what `failoverd route53 --config PATH` does): read Route 53, print
//!   the plan (a table, or JSON with `--json`); changes nothing.
//! - `apply`: plan, print it, apply it unless refused (`--force` overrides the safety
//!   guard), print what was done.
//! - `sync`: run until SIGINT/SIGTERM, reconciling every `sync_interval` and, for
//!   mirror-mode records, after health changes (`--health-url`).
//!
//! Exit status: 0 success; 1 when the plan has unsupported records, apply was
//! refused, or a change failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigSource};
use crate::health::HealthSnapshot;
use crate::service;
use crate::sync::health_feed::{HealthFeed, HealthFeedError};
use crate::sync::route53::ClientOptions;
use crate::sync::{Agent, AgentError};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

/// How often `--health-url` is polled.
const HEALTH_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// `failoverd route53 …`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Route53Args {
    #[command(subcommand)]
    action: Option<Route53Action>,
    /// Without a subcommand: `plan` (a dry run).
    #[command(flatten)]
    plan: PlanArgs,
}

#[derive(Subcommand)]
enum Route53Action {
    /// Show what would change in Route 53 (dry run; changes nothing).
    Plan(PlanArgs),
    /// Apply the plan.
    Apply(ApplyArgs),
    /// Keep Route 53 in sync until interrupted.
    Sync(SyncArgs),
}

#[derive(Args)]
struct PlanArgs {
    /// Configuration file (with a [route53] section).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Admin base URL of a failoverd server: mirror-mode records are planned from its
    /// live health (without it they are left as Route 53 has them).
    #[arg(long)]
    health_url: Option<String>,
    /// File holding the bearer token for --health-url (a server with [[admin.tokens]]
    /// needs one of the read role; default: the FAILOVERD_TOKEN environment variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(Args)]
struct ApplyArgs {
    /// Configuration file (with a [route53] section).
    #[arg(long, short)]
    config: PathBuf,
    /// Apply even if the plan changes more than `max_update_percent` /
    /// `max_delete_percent` of owned records or the apex NS/SOA.
    #[arg(long)]
    force: bool,
    /// Admin base URL of a failoverd server: mirror-mode records are planned from its
    /// live health (without it they are left as Route 53 has them).
    #[arg(long)]
    health_url: Option<String>,
    /// File holding the bearer token for --health-url (a server with [[admin.tokens]]
    /// needs one of the read role; default: the FAILOVERD_TOKEN environment variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(Args)]
struct SyncArgs {
    /// Configuration file (with a [route53] section).
    #[arg(long, short)]
    config: PathBuf,
    /// Admin base URL of a failoverd server whose health drives mirror-mode records
    /// (polls GET {URL}/v1/health); required when any record is in mirror mode:
    /// nothing is written until it answers.
    #[arg(long)]
    health_url: Option<String>,
    /// File holding the bearer token for --health-url (a server with [[admin.tokens]]
    /// needs one of the read role; default: the FAILOVERD_TOKEN environment variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Serve Prometheus metrics (GET /metrics) and liveness (GET /healthz) here.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

/// Runs a `route53` subcommand.
pub(crate) fn run(args: Route53Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("failoverd-route53")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match args.action {
            Some(Route53Action::Plan(plan)) => plan_command(plan).await,
            Some(Route53Action::Apply(apply)) => apply_command(apply).await,
            Some(Route53Action::Sync(sync)) => sync_command(sync).await,
            None => plan_command(args.plan).await,
        }
    })
}

/// Loads the configuration and zones and connects the agent; also returns the health
/// the configuration implies (forced states, else up).
async fn connect(path: &Path) -> anyhow::Result<(Agent, Arc<Config>, HealthSnapshot)> {
    let source =
        ConfigSource::from_file(path).with_context(|| format!("reading {}", path.display()))?;
    let loaded = match service::load(source) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            bail!("configuration has {} errors", diagnostics.errors.len());
        }
    };
    for warning in &loaded.warnings.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config.clone();
    let health = HealthSnapshot::from_config(&config);
    match Agent::connect(
        loaded.config,
        Arc::new(loaded.zones),
        ClientOptions::default(),
    )
    .await
    {
        Ok(agent) => Ok((agent, config, health)),
        Err(AgentError::NotConfigured) => bail!("{} has no [route53] section", path.display()),
        Err(error) => Err(error.into()),
    }
}

async fn plan_command(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = args.config else {
        bail!("--config is required");
    };
    let (agent, config, _) = connect(&path).await?;
    let feed = health_feed(args.health_url.as_deref(), args.token_file.as_deref())?;
    let plan = live_plan(&agent, &config, feed.as_ref(), false).await?;
    if args.json {
        println!("{}", plan.to_json());
    } else {
        print!("{}", plan.render_table());
    }
    Ok(if plan.unsupported.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn apply_command(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let (agent, config, _) = connect(&args.config).await?;
    let feed = health_feed(args.health_url.as_deref(), args.token_file.as_deref())?;
    let plan = live_plan(&agent, &config, feed.as_ref(), args.force).await?;
    print!("{}", plan.render_table());
    if plan.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    match agent.apply(&plan).await {
        Ok(report) => {
            println!("\n{}", report.summary());
            Ok(if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(AgentError::Apply(crate::sync::apply::ApplyError::Refused(reason))) => {
            eprintln!("failoverd: not applied: {reason}");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error.into()),
    }
}

/// The feed of `--health-url`, with the token of `--token-file` (else
/// `FAILOVERD_TOKEN`).
fn health_feed(
    health_url: Option<&str>,
    token_file: Option<&Path>,
) -> anyhow::Result<Option<HealthFeed>> {
    let Some(url) = health_url else {
        if token_file.is_some() {
            bail!("--token-file is the token for --health-url: give --health-url too");
        }
        return Ok(None);
    };
    let token = crate::cli::ctl::read_token(token_file)?;
    Ok(Some(HealthFeed::new(url)?.with_token(token)))
}

/// A plan from live health (`--health-url`), or, without it, one that leaves
/// mirror-mode records as they are in Route 53.
async fn live_plan(
    agent: &Agent,
    config: &Config,
    feed: Option<&HealthFeed>,
    force: bool,
) -> anyhow::Result<crate::sync::Plan> {
    match feed {
        Some(feed) => {
            let report = feed.fetch().await.with_context(|| {
                format!(
                    "reading live health from {} (a failoverd server's admin API)",
                    feed.url()
                )
            })?;
            Ok(agent.plan(&report.snapshot(config), force).await?)
        }
        None => Ok(agent.plan_without_live_health(force).await?),
    }
}

async fn sync_command(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let (agent, config, health) = connect(&args.config).await?;
    let feed = health_feed(args.health_url.as_deref(), args.token_file.as_deref())?;
    if agent.has_mirror_records() && feed.is_none() {
        bail!(
            "mirror-mode records need live health: give --health-url http://SERVER:9353 (a \
             failoverd server's admin API); without it sync would write the configuration's \
             health over a failover in progress"
        );
    }
    let shutdown = CancellationToken::new();
    let (sender, receiver) = tokio::sync::watch::channel(Arc::new(health));
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(feed) = feed {
        // Fail fast on a missing or refused token: the loop would only log it.
        if let Err(error @ (HealthFeedError::NoToken(_) | HealthFeedError::TokenRefused(..))) =
            feed.fetch().await
        {
            bail!("{error}");
        }
        tasks.spawn(feed.run(
            config.clone(),
            HEALTH_POLL_INTERVAL,
            sender,
            shutdown.clone(),
        ));
    }
    let signals = shutdown.clone();
    tasks.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        signals.cancel();
    });
    if let Some(addr) = args.metrics_listen {
        let metrics = agent.metrics().clone();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let metrics = metrics.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                crate::telemetry::registry::CONTENT_TYPE,
                            )],
                            metrics.render_prometheus(),
                        )
                    }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok\n" }));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(metrics = %listener.local_addr()?, "route53 sync metrics listening");
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
    }
    tracing::info!(mirror = agent.has_mirror_records(), "route53 sync started");
    agent.run_live(receiver, shutdown.clone()).await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!(metrics = %agent.metrics().render_prometheus(), "route53 sync stopped");
    Ok(ExitCode::SUCCESS)
}
