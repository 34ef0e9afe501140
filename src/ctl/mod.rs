//! `failoverd ctl`: the operator's client of every server's admin API.
//!
//! Reads ask each server and print what each says; changes go to every server, one
//! line per server with its result, and fail (exit 1) unless every server confirmed.
//! The servers also pass overrides on to each other, so one that was unreachable
//! catches up by itself once it is back.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use failoverd::admin::api::{OverrideRequest, OverridesView, ReleaseRequest, ReloadStatus, Status};
use failoverd::admin::explain::{ExplainQuery, Explanation, explain};
use failoverd::config::ConfigSource;
use failoverd::dns::Snapshot;
use failoverd::health::overrides::OverrideSet;
use failoverd::health::overrides::{Action, Entry, Target};
use failoverd::health::{EndpointHealth, HealthSnapshot, HealthSource};
use failoverd::model::DynamicType;
use failoverd::model::{EndpointIndex, HealthState};
use failoverd::service::events::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;

mod print;

use self::print::{
    describe_entry, event_line, print_cluster, print_events, print_explanation, print_overrides,
    print_status,
};

/// The server asked when neither `--server` nor `--config` is given: the embedded
/// default configuration's admin API.
const DEFAULT_SERVER: &str = "http://127.0.0.1:9353";

/// Environment variable holding the bearer token (when no `--token-file`).
const TOKEN_ENV: &str = "FAILOVERD_TOKEN";

#[derive(Args)]
pub(crate) struct CtlArgs {
    /// A server's admin API base URL (repeatable; default: `[health] servers` of
    /// --config, else http://127.0.0.1:9353, the embedded default's).
    #[arg(long = "server", short = 's', global = true)]
    servers: Vec<String>,
    /// Configuration whose `[health] servers` to use (before the command).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// File holding the bearer token (default: the FAILOVERD_TOKEN environment variable).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for HTTPS servers, besides the system's.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Time each server has to answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true)]
    timeout: Duration,
    /// For a change: `all` (every server confirms it, saved to its state file) or
    /// `quorum` (a majority of the servers hold it, saved: confirmed directly, or seen
    /// in their overrides within --timeout after they took it from a peer).
    #[arg(long, value_enum, default_value_t = WaitFor::All, global = true)]
    wait: WaitFor,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Every server's view at once: what needs attention, one line per record and
    /// per endpoint with its state on each server (DISAGREE where they differ),
    /// the overrides and which servers hold them.
    Status {
        /// Then each server's detail: answers, endpoints with votes, probes and
        /// history (a single server gets it anyway).
        #[arg(long)]
        per_server: bool,
    },
    /// Overrides in force (and recently ended), per server.
    Overrides,
    /// Take an endpoint (`POOL/NAME`) or a whole pool (`POOL`) out of the answers.
    Drain(Change),
    /// Release a drain (same as `release`).
    Undrain {
        /// `POOL/NAME` or `POOL`.
        target: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Force an endpoint up or down, whatever the probes say.
    Force {
        /// `POOL/NAME`.
        endpoint: String,
        /// `up` or `down`.
        state: ForcedState,
        #[command(flatten)]
        why: Why,
    },
    /// Fail a record over to a named pool (manual failover).
    Failover {
        /// Record name.
        record: String,
        /// The pool to answer from.
        #[arg(long)]
        to: String,
        /// Only this record type (default: every record of the name listing the pool).
        #[arg(long = "type")]
        record_type: Option<RecordType>,
        #[command(flatten)]
        why: Why,
    },
    /// The answer a client gets now, and why; with --assume or --config, what it
    /// would get (changing nothing).
    Explain {
        /// Record name.
        name: String,
        /// Record type (default: every dynamic record of the name).
        record_type: Option<RecordType>,
        /// The resolver's address.
        #[arg(long)]
        client: Option<std::net::IpAddr>,
        /// An EDNS Client Subnet (e.g. 192.0.2.0/24).
        #[arg(long)]
        ecs: Option<ipnet::IpNet>,
        /// Assume an endpoint down or up: `POOL/NAME=down` (repeatable).
        #[arg(long)]
        assume: Vec<String>,
        /// Explain under this candidate configuration instead, with each server's
        /// current health and overrides (computed here; nothing is sent).
        #[arg(long = "config")]
        candidate: Option<PathBuf>,
    },
    /// Recent events (health, overrides, reloads, isolation, answer changes).
    Events {
        /// Keep printing new events as they happen.
        #[arg(long, short)]
        follow: bool,
        /// Only events after this: a sequence number (`1200`), a time ago (`2h`,
        /// `30m`) or a time (`2026-12-07T10:00:00Z`); by time they come from the
        /// server's event journal, so they reach back past its restarts.
        #[arg(long, default_value = "0", value_parser = parse_since)]
        since: Since,
        /// At most this many past events per server.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// With --follow, stop after this long (default: until interrupted).
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<Duration>,
    },
    /// Reload every server's configuration from its file.
    Reload,
    /// Release an override: `POOL/NAME`, `POOL`, or a record name (with --type).
    Release {
        /// What to release.
        target: String,
        /// The record type, for a record.
        #[arg(long = "type")]
        record_type: Option<RecordType>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Args)]
struct Change {
    /// `POOL/NAME` or `POOL`.
    target: String,
    #[command(flatten)]
    why: Why,
}

#[derive(Args)]
struct Why {
    /// Why (required: it is logged and shown with the override).
    #[arg(long, short)]
    reason: String,
    /// End by itself after this long (`30m`, `2h`).
    #[arg(long)]
    expires: Option<String>,
}

/// How many servers must hold a change before `ctl` says ok.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WaitFor {
    /// Every server addressed confirms it.
    All,
    /// A majority of the servers hold it.
    Quorum,
}

#[derive(Clone, Copy, ValueEnum)]
enum ForcedState {
    Up,
    Down,
}

#[derive(Clone, Copy, ValueEnum)]
enum RecordType {
    A,
    Aaaa,
    Cname,
}

impl From<RecordType> for DynamicType {
    fn from(t: RecordType) -> Self {
        match t {
            RecordType::A => Self::A,
            RecordType::Aaaa => Self::Aaaa,
            RecordType::Cname => Self::Cname,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    failoverd::config::parse_duration(text)
}

/// Where `ctl events` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Since {
    /// After this sequence number.
    Sequence(u64),
    /// At or after this time (Unix milliseconds).
    Time(u64),
}

impl Since {
    /// The query parameter that asks for it.
    fn query(self) -> String {
        match self {
            Self::Sequence(seq) => format!("since={seq}"),
            Self::Time(ms) => format!("since_time={ms}"),
        }
    }
}

/// A sequence number, a duration ago, or an RFC 3339 time.
fn parse_since(text: &str) -> Result<Since, String> {
    let text = text.trim();
    if let Ok(seq) = text.parse::<u64>() {
        return Ok(Since::Sequence(seq));
    }
    let now = std::time::SystemTime::now();
    let at = match failoverd::config::parse_duration(text) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(text).map_err(|_| {
            format!(
                "{text:?}: expected a sequence number (1200), a time ago (2h, 30m) or a time (2026-12-07T10:00:00Z)"
            )
        })?,
    };
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(Since::Time(ms))
}

/// `POOL/NAME` → an endpoint, a name with a dot → a record, else a pool.
fn target_of(text: &str, record_type: Option<RecordType>) -> Target {
    if text.contains('/') {
        Target::Endpoint(text.to_owned())
    } else if text.contains('.') {
        Target::record(text, record_type.map(Into::into))
    } else {
        Target::Pool(text.to_owned())
    }
}

/// The user `ctl` runs as, for the override's "by".
fn user() -> Option<String> {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|u| !u.is_empty())
}

pub(crate) fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let servers = servers(&args)?;
    let token = token(&args)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(args.timeout)
        .tls_backend_preconfigured(failoverd::probe::tls::client_config(
            true,
            args.ca_file.as_deref(),
        )?)
        .build()
        .context("building the HTTP client")?;
    let ctl = Ctl {
        client,
        ca_file: args.ca_file.clone(),
        token,
        servers,
        json: args.json,
        wait: args.wait,
        timeout: args.timeout,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(ctl.run(args.command))
}

fn servers(args: &CtlArgs) -> anyhow::Result<Vec<String>> {
    if !args.servers.is_empty() {
        return Ok(args.servers.clone());
    }
    let Some(path) = &args.config else {
        // The embedded default's admin API (the first-minute demo).
        return Ok(vec![DEFAULT_SERVER.to_owned()]);
    };
    let source =
        ConfigSource::from_file(path).with_context(|| format!("reading {}", path.display()))?;
    let (config, _) =
        failoverd::config::Config::load(source).map_err(|d| anyhow::anyhow!("{d}"))?;
    if config.health.servers.is_empty() {
        bail!(
            "{}: [health] servers is empty; give --server URL",
            path.display()
        );
    }
    Ok(config.health.servers.clone())
}

fn token(args: &CtlArgs) -> anyhow::Result<Option<String>> {
    read_token(args.token_file.as_deref())
}

/// The bearer token for a server's admin API: the first line of `token_file` when
/// given (an error if it cannot be read or holds none), else the `FAILOVERD_TOKEN`
/// environment variable, else none. `ctl`, `drill` and `route53 --health-url` share it.
pub(crate) fn read_token(token_file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    if let Some(path) = token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        let token = text.lines().next().unwrap_or_default().trim().to_owned();
        if token.is_empty() {
            bail!("{} holds no token", path.display());
        }
        return Ok(Some(token));
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty()))
}

struct Ctl {
    client: reqwest::Client,
    ca_file: Option<PathBuf>,
    token: Option<String>,
    servers: Vec<String>,
    json: bool,
    wait: WaitFor,
    timeout: Duration,
}

/// What every server answered: printed as it comes, or gathered into one JSON array.
struct Outcomes {
    json: bool,
    out: Vec<serde_json::Value>,
    failed: usize,
}

impl Outcomes {
    fn new(json: bool) -> Self {
        Self {
            json,
            out: Vec::new(),
            failed: 0,
        }
    }

    fn ok(&mut self, server: &str, value: &impl Serialize, print: impl FnOnce()) {
        if self.json {
            self.out
                .push(serde_json::json!({"server": server, "ok": true, "answer": value}));
        } else {
            print();
        }
    }

    fn failed(&mut self, server: &str, error: &str, before: &str, after: &str) {
        self.failed += 1;
        if self.json {
            self.out
                .push(serde_json::json!({"server": server, "ok": false, "error": error}));
        } else {
            println!("{before}{server}: FAILED {error}{after}");
        }
    }

    /// Prints the JSON array (with --json); fails unless every server answered.
    fn finish(self) -> anyhow::Result<ExitCode> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&self.out)?);
        }
        Ok(if self.failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// One server's answer.
struct Reply {
    server: String,
    result: Result<String, String>,
}

impl Ctl {
    async fn run(&self, command: CtlCommand) -> anyhow::Result<ExitCode> {
        match command {
            CtlCommand::Status { per_server } => self.status(per_server).await,
            CtlCommand::Overrides => {
                self.read::<OverridesView>("/v1/overrides", print_overrides)
                    .await
            }
            CtlCommand::Drain(change) => {
                let target = target_of(&change.target, None);
                self.set(target, Action::Drain, change.why).await
            }
            CtlCommand::Undrain { target, reason } => {
                self.release(target_of(&target, None), reason).await
            }
            CtlCommand::Force {
                endpoint,
                state,
                why,
            } => {
                let action = match state {
                    ForcedState::Up => Action::ForceUp,
                    ForcedState::Down => Action::ForceDown,
                };
                self.set(Target::Endpoint(endpoint), action, why).await
            }
            CtlCommand::Failover {
                record,
                to,
                record_type,
                why,
            } => {
                let target = Target::record(&record, record_type.map(Into::into));
                self.set(target, Action::Failover(to), why).await
            }
            CtlCommand::Release {
                target,
                record_type,
                reason,
            } => self.release(target_of(&target, record_type), reason).await,
            CtlCommand::Events {
                follow,
                since,
                limit,
                duration,
            } => {
                if follow {
                    self.follow(since, limit, duration).await
                } else {
                    let path = format!("/v1/events?{}&limit={limit}", since.query());
                    self.read::<Vec<Event>>(&path, print_events).await
                }
            }
            CtlCommand::Reload => self.reload().await,
            CtlCommand::Explain {
                name,
                record_type,
                client,
                ecs,
                assume,
                candidate,
            } => {
                let query = ExplainQuery {
                    name,
                    record_type: record_type.map(Into::into),
                    client,
                    ecs,
                    assume,
                };
                match candidate {
                    None => {
                        let path = format!("/v1/explain?{}", explain_params(&query));
                        self.read::<Explanation>(&path, print_explanation).await
                    }
                    Some(path) => self.what_if(&path, &query).await,
                }
            }
        }
    }

    async fn set(&self, target: Target, action: Action, why: Why) -> anyhow::Result<ExitCode> {
        let request = OverrideRequest {
            target,
            action,
            reason: why.reason,
            by: user(),
            expires_in: why.expires,
        };
        self.change("/v1/overrides", &request).await
    }

    async fn release(&self, target: Target, reason: Option<String>) -> anyhow::Result<ExitCode> {
        let request = ReleaseRequest {
            target,
            reason,
            by: user(),
        };
        self.change("/v1/overrides/release", &request).await
    }

    /// Sends a change to every server; one line each; fails unless all confirmed.
    async fn change(&self, path: &str, body: &impl Serialize) -> anyhow::Result<ExitCode> {
        let body = serde_json::to_vec(body)?;
        let replies = self
            .each(|server| {
                let request = self
                    .client
                    .post(format!("{}{path}", server.trim_end_matches('/')))
                    .header("content-type", "application/json")
                    .body(body.clone());
                self.authorized(request)
            })
            .await;
        let mut outcomes = Outcomes::new(self.json);
        let mut made: Option<Entry> = None;
        let mut unconfirmed = Vec::new();
        for reply in &replies {
            match &reply.result {
                Ok(text) => {
                    let entry: Option<Entry> = serde_json::from_str(text).ok();
                    outcomes.ok(&reply.server, &entry, || {
                        let what = entry.as_ref().map_or_else(String::new, describe_entry);
                        println!("{}: ok {what}", reply.server);
                    });
                    made = made.or(entry);
                }
                Err(error) => {
                    outcomes.failed(&reply.server, error, "", "");
                    unconfirmed.push(reply.server.clone());
                }
            }
        }
        let confirmed = replies.len() - unconfirmed.len();
        if confirmed == 0 {
            eprintln!("nothing changed: no server confirmed");
            return outcomes.finish();
        }
        if self.wait == WaitFor::Quorum {
            let needed = replies.len() / 2 + 1;
            let caught_up = match &made {
                Some(entry) if confirmed < needed => {
                    self.await_copies(entry, &unconfirmed, needed - confirmed)
                        .await
                }
                _ => Vec::new(),
            };
            for server in &caught_up {
                if !self.json {
                    println!("{server}: ok (took the change from a peer)");
                }
            }
            let holding = confirmed + caught_up.len();
            if holding >= needed {
                if holding < replies.len() {
                    eprintln!(
                        "{holding} of {} servers hold the change (a quorum); the others take it from a peer once they reach one",
                        replies.len()
                    );
                }
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&outcomes.out)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "only {holding} of {} servers hold the change, fewer than a quorum ({needed})",
                replies.len()
            );
            return outcomes.finish();
        }
        if outcomes.failed > 0 {
            eprintln!(
                "{} of {} servers did not confirm; they take the change from a server that did once they reach it",
                outcomes.failed,
                replies.len()
            );
        }
        outcomes.finish()
    }

    /// Polls `servers` (every 100 ms, until --timeout) for a copy of `entry` taken
    /// from a peer; returns those that have one once `wanted` do (or at the timeout).
    async fn await_copies(&self, entry: &Entry, servers: &[String], wanted: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut holding: Vec<String> = Vec::new();
        loop {
            let views = self
                .each_of(servers, |server| {
                    self.authorized(
                        self.client
                            .get(format!("{}/v1/overrides", server.trim_end_matches('/'))),
                    )
                })
                .await;
            for reply in views {
                let Ok(text) = reply.result else { continue };
                let Ok(view) = serde_json::from_str::<OverridesView>(&text) else {
                    continue;
                };
                let has = view
                    .active
                    .iter()
                    .chain(&view.ended)
                    .any(|e| same_change(e, entry));
                if has && !holding.contains(&reply.server) {
                    holding.push(reply.server);
                }
            }
            if holding.len() >= wanted || tokio::time::Instant::now() >= deadline {
                return holding;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every server's status: merged (one line per record and endpoint) when there
    /// are several, then each one's detail with `per_server` (or when there is one);
    /// `--json`: every server's whole status. Fails if any could not be read.
    async fn status(&self, per_server: bool) -> anyhow::Result<ExitCode> {
        if self.json || self.servers.len() == 1 {
            return self.read::<Status>("/v1/status", print_status).await;
        }
        let mut read = Vec::new();
        let mut failed = false;
        for (server, parsed) in self.fetch::<Status>("/v1/status").await {
            match parsed {
                Ok(status) => read.push((server, status)),
                Err(error) => {
                    println!("== {server}: FAILED {error}");
                    failed = true;
                }
            }
        }
        if !read.is_empty() {
            print_cluster(&read);
        }
        if per_server {
            for (server, status) in &read {
                println!();
                print_status(server, status);
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    /// Asks every server; prints each answer; fails if any could not be read.
    async fn read<T: DeserializeOwned + Serialize>(
        &self,
        path: &str,
        print: fn(&str, &T),
    ) -> anyhow::Result<ExitCode> {
        let mut outcomes = Outcomes::new(self.json);
        for (server, parsed) in self.fetch::<T>(path).await {
            match parsed {
                Ok(value) => outcomes.ok(&server, &value, || print(&server, &value)),
                Err(error) => outcomes.failed(&server, &error, "== ", "\n"),
            }
        }
        outcomes.finish()
    }

    /// `GET path` on every server, each answer parsed (or why not).
    async fn fetch<T: DeserializeOwned>(&self, path: &str) -> Vec<(String, Result<T, String>)> {
        let replies = self
            .each(|server| {
                let request = self
                    .client
                    .get(format!("{}{path}", server.trim_end_matches('/')));
                self.authorized(request)
            })
            .await;
        replies
            .into_iter()
            .map(|reply| {
                let parsed = reply.result.and_then(|text| {
                    serde_json::from_str::<T>(&text).map_err(|e| format!("unreadable answer: {e}"))
                });
                (reply.server, parsed)
            })
            .collect()
    }

    /// Prints every server's events as they happen, one line each, until `duration`.
    async fn follow(
        &self,
        since: Since,
        limit: usize,
        duration: Option<Duration>,
    ) -> anyhow::Result<ExitCode> {
        let streams = self.servers.iter().map(|server| async move {
            let url = format!(
                "{}/v1/events?follow=true&{}&limit={limit}",
                server.trim_end_matches('/'),
                since.query()
            );
            // The stream stays open: no overall timeout, only the connect one.
            let client = reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(5))
                .tls_backend_preconfigured(failoverd::probe::tls::client_config(
                    true,
                    self.ca_file.as_deref(),
                )?)
                .build()?;
            let mut request = client.get(url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let mut response = request.send().await?;
            if !response.status().is_success() {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                anyhow::bail!("{server}: {status}: {}", text.trim());
            }
            let mut pending = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(event) = serde_json::from_slice::<Event>(&line) {
                        if self.json {
                            println!("{}", serde_json::json!({"server": server, "event": event}));
                        } else {
                            println!("{server} {}", event_line(&event));
                        }
                    }
                }
            }
            anyhow::Ok(())
        });
        let all = futures_util::future::join_all(streams);
        let results = match duration {
            Some(duration) => match tokio::time::timeout(duration, all).await {
                Ok(results) => results,
                Err(_) => return Ok(ExitCode::SUCCESS),
            },
            None => all.await,
        };
        let mut code = ExitCode::SUCCESS;
        for result in results {
            if let Err(error) = result {
                eprintln!("{error:#}");
                code = ExitCode::FAILURE;
            }
        }
        Ok(code)
    }

    /// Asks every server to reload its configuration; one line each.
    async fn reload(&self) -> anyhow::Result<ExitCode> {
        let replies = self
            .each(|server| {
                self.authorized(
                    self.client
                        .post(format!("{}/v1/reload", server.trim_end_matches('/')))
                        .header("content-type", "application/json"),
                )
            })
            .await;
        let mut failed = 0;
        for reply in &replies {
            let status = reply.result.clone().and_then(|text| {
                serde_json::from_str::<ReloadStatus>(&text)
                    .map_err(|e| format!("unreadable answer: {e}"))
            });
            match status {
                Ok(status) if status.ok => {
                    let restart = if status.restart_needed.is_empty() {
                        String::new()
                    } else {
                        format!(" (restart needed for {})", status.restart_needed.join(", "))
                    };
                    println!("{}: ok reloaded{restart}", reply.server);
                }
                Ok(status) => {
                    failed += 1;
                    println!("{}: FAILED the running configuration stays:", reply.server);
                    for error in &status.errors {
                        println!("  {error}");
                    }
                }
                Err(error) => {
                    failed += 1;
                    println!("{}: FAILED {error}", reply.server);
                }
            }
        }
        Ok(if failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    /// Explains `query` under a candidate config, with each server's health.
    async fn what_if(
        &self,
        path: &std::path::Path,
        query: &ExplainQuery,
    ) -> anyhow::Result<ExitCode> {
        let load = || -> anyhow::Result<failoverd::service::Loaded> {
            let source = ConfigSource::from_file(path)
                .with_context(|| format!("reading {}", path.display()))?;
            failoverd::service::load(source)
                .map_err(|d| anyhow::anyhow!("{}: invalid\n{d}", path.display()))
        };
        load()?; // refuse an invalid candidate before asking anybody
        let replies = self
            .each(|server| {
                self.authorized(
                    self.client
                        .get(format!("{}/v1/status", server.trim_end_matches('/'))),
                )
            })
            .await;
        let mut outcomes = Outcomes::new(self.json);
        for reply in replies {
            let status = reply.result.and_then(|text| {
                serde_json::from_str::<Status>(&text).map_err(|e| format!("unreadable status: {e}"))
            });
            let explained = status.and_then(|status| {
                let loaded = load().map_err(|e| format!("{e:#}"))?;
                let snapshot = candidate_snapshot(loaded, &status);
                explain(&snapshot, &status, query).map_err(|e| e.to_string())
            });
            match explained {
                Ok(explanation) => outcomes.ok(&reply.server, &explanation, || {
                    println!(
                        "(what-if under {}, with the health {} has now)",
                        path.display(),
                        reply.server
                    );
                    print_explanation(&reply.server, &explanation);
                }),
                Err(error) => outcomes.failed(&reply.server, &error, "== ", "\n"),
            }
        }
        outcomes.finish()
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Runs one request per server, all at once.
    async fn each(&self, request: impl Fn(&str) -> reqwest::RequestBuilder) -> Vec<Reply> {
        self.each_of(&self.servers, request).await
    }

    /// Runs one request per server of `servers`, all at once.
    async fn each_of(
        &self,
        servers: &[String],
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Vec<Reply> {
        let calls = servers.iter().map(|server| {
            let request = request(server);
            async move {
                let result = match request.send().await {
                    Err(error) => Err(format!("unreachable: {error}")),
                    Ok(response) => {
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        if status.is_success() {
                            Ok(text)
                        } else {
                            Err(format!("{status}: {}", text.trim()))
                        }
                    }
                };
                Reply {
                    server: server.clone(),
                    result,
                }
            }
        });
        futures_util::future::join_all(calls).await
    }
}

/// Whether `held` is the change `made` (another server's copy of it: the same target,
/// action, author and reason, stamped within a minute of it; each server that
/// confirmed stamped its own copy).
fn same_change(held: &Entry, made: &Entry) -> bool {
    held.target == made.target
        && held.action == made.action
        && held.by == made.by
        && held.reason == made.reason
        && held.stamp.ms.abs_diff(made.stamp.ms) < 60_000
}

/// The query string of `GET /v1/explain`.
fn explain_params(query: &ExplainQuery) -> String {
    let mut params = form_urlencoded::Serializer::new(String::new());
    params.append_pair("name", &query.name);
    if let Some(t) = query.record_type {
        params.append_pair("type", &t.to_string());
    }
    if let Some(client) = query.client {
        params.append_pair("client", &client.to_string());
    }
    if let Some(ecs) = query.ecs {
        params.append_pair("ecs", &ecs.to_string());
    }
    for assume in &query.assume {
        params.append_pair("assume", assume);
    }
    params.finish()
}

/// The answers `loaded` (a candidate config) would give with a server's health and
/// overrides, matched by endpoint label.
fn candidate_snapshot(loaded: failoverd::service::Loaded, status: &Status) -> Snapshot {
    let config = loaded.config;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let effects = OverrideSet::from_entries(status.overrides.clone()).effects(&config, now);
    let endpoints = (0..config.endpoints.len())
        .map(|i| {
            let label = config.endpoint_label(EndpointIndex(i as u32));
            let known = status.endpoints.iter().find(|e| e.endpoint == label);
            match (effects.forced[i], known) {
                (Some(state), _) => EndpointHealth {
                    state,
                    source: HealthSource::Forced,
                },
                (None, Some(e)) => EndpointHealth {
                    state: e.state,
                    source: e.source,
                },
                (None, None) => EndpointHealth {
                    state: HealthState::Up,
                    source: HealthSource::Assumed,
                },
            }
        })
        .collect();
    let health =
        HealthSnapshot::from_health(endpoints).with_overrides(effects.drained, effects.pins);
    Snapshot::build(config, loaded.zones, health, status.generation)
}
