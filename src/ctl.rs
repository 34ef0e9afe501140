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
use failoverd::admin::api::{OverrideRequest, OverridesView, ReleaseRequest, Status};
use failoverd::config::ConfigSource;
use failoverd::health::overrides::{Action, Entry, Target};
use failoverd::model::DynamicType;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Environment variable holding the bearer token (when no `--token-file`).
const TOKEN_ENV: &str = "FAILOVERD_TOKEN";

#[derive(Args)]
pub(crate) struct CtlArgs {
    /// A server's admin API base URL (repeatable; default: `[health] servers` of
    /// --config).
    #[arg(long = "server", short = 's', global = true)]
    servers: Vec<String>,
    /// Configuration whose `[health] servers` to use.
    #[arg(long, short, global = true)]
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
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Records, their answers, endpoints and votes, per server.
    Status,
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
        token,
        servers,
        json: args.json,
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
        bail!("no servers: give --server URL (repeatable) or --config FILE with [health] servers");
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
    if let Some(path) = &args.token_file {
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
    token: Option<String>,
    servers: Vec<String>,
    json: bool,
}

/// One server's answer.
struct Reply {
    server: String,
    result: Result<String, String>,
}

impl Ctl {
    async fn run(&self, command: CtlCommand) -> anyhow::Result<ExitCode> {
        match command {
            CtlCommand::Status => self.read::<Status>("/v1/status", print_status).await,
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
        let mut failed = 0;
        let mut out = Vec::new();
        for reply in &replies {
            match &reply.result {
                Ok(text) => {
                    let entry: Option<Entry> = serde_json::from_str(text).ok();
                    if self.json {
                        out.push(
                            serde_json::json!({"server": reply.server, "ok": true, "entry": entry}),
                        );
                    } else {
                        let what = entry.as_ref().map_or_else(String::new, describe_entry);
                        println!("{}: ok {what}", reply.server);
                    }
                }
                Err(error) => {
                    failed += 1;
                    if self.json {
                        out.push(serde_json::json!({"server": reply.server, "ok": false, "error": error}));
                    } else {
                        println!("{}: FAILED {error}", reply.server);
                    }
                }
            }
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        if failed > 0 {
            eprintln!(
                "{failed} of {} servers did not confirm; those that can reach a peer that did catch up by themselves",
                replies.len()
            );
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Asks every server; prints each answer; fails if any could not be read.
    async fn read<T: DeserializeOwned + Serialize>(
        &self,
        path: &str,
        print: fn(&str, &T),
    ) -> anyhow::Result<ExitCode> {
        let replies = self
            .each(|server| {
                let request = self
                    .client
                    .get(format!("{}{path}", server.trim_end_matches('/')));
                self.authorized(request)
            })
            .await;
        let mut failed = 0;
        let mut out = Vec::new();
        for reply in replies {
            let parsed = reply.result.and_then(|text| {
                serde_json::from_str::<T>(&text).map_err(|e| format!("unreadable answer: {e}"))
            });
            match parsed {
                Ok(value) if self.json => {
                    out.push(serde_json::json!({"server": reply.server, "answer": value}))
                }
                Ok(value) => print(&reply.server, &value),
                Err(error) => {
                    failed += 1;
                    if self.json {
                        out.push(serde_json::json!({"server": reply.server, "error": error}));
                    } else {
                        println!("== {}: FAILED {error}\n", reply.server);
                    }
                }
            }
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Ok(if failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Runs one request per server, all at once.
    async fn each(&self, request: impl Fn(&str) -> reqwest::RequestBuilder) -> Vec<Reply> {
        let calls = self.servers.iter().map(|server| {
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

fn describe_entry(entry: &Entry) -> String {
    match &entry.action {
        Some(action) => {
            let expires = entry
                .expires_at_ms
                .map(|at| format!(", expires in {}", until(at)))
                .unwrap_or_default();
            format!(
                "{action} {} by {} ({}{expires})",
                entry.target, entry.by, entry.reason
            )
        }
        None => format!(
            "released {} by {} ({})",
            entry.target, entry.by, entry.reason
        ),
    }
}

fn until(at_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let secs = at_ms.saturating_sub(now) / 1000;
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

/// Prints rows as columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_status(server: &str, status: &Status) {
    let isolation = status.isolation.as_ref().map_or(String::new(), |i| {
        if i.isolated {
            format!(
                ", ISOLATED ({} of {} needed heard)",
                i.fresh.len(),
                i.needed
            )
        } else {
            String::new()
        }
    });
    println!(
        "== {server}: vantage {}, generation {}, {}{isolation}",
        status.vantage.as_deref().unwrap_or("-"),
        status.generation,
        if status.ready { "ready" } else { "starting" },
    );
    let mut rows = Vec::new();
    for record in &status.records {
        for answer in &record.answers {
            rows.push(vec![
                record.name.clone(),
                record.record_type.clone(),
                if answer.regions.is_empty() {
                    "-".to_owned()
                } else {
                    answer.regions.join(",")
                },
                answer.outcome.clone(),
                answer.pool.clone().unwrap_or_else(|| "-".to_owned()),
                answer.candidates.join(" "),
                answer.ttl.to_string(),
            ]);
        }
    }
    table(
        &[
            "RECORD", "TYPE", "REGIONS", "OUTCOME", "POOL", "ANSWER", "TTL",
        ],
        &rows,
    );
    println!();
    let rows: Vec<Vec<String>> = status
        .endpoints
        .iter()
        .map(|e| {
            let mut notes = Vec::new();
            if e.drained {
                notes.push("drained".to_owned());
            }
            if let Some(d) = &e.damping {
                if d.suppressed {
                    notes.push(format!("damped (penalty {})", d.penalty));
                }
            }
            let votes: Vec<String> = e.votes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                e.endpoint.clone(),
                e.target.clone(),
                e.state.to_string(),
                format!("{:?}", e.source).to_lowercase(),
                votes.join(" "),
                notes.join(", "),
            ]
        })
        .collect();
    table(
        &["ENDPOINT", "TARGET", "STATE", "SOURCE", "VOTES", "NOTES"],
        &rows,
    );
    if !status.overrides.is_empty() {
        println!();
        for entry in &status.overrides {
            println!("override: {}", describe_entry(entry));
        }
    }
    println!();
}

fn print_overrides(server: &str, view: &OverridesView) {
    println!("== {server} ({})", view.server);
    if view.active.is_empty() {
        println!("no overrides in force");
    }
    let rows: Vec<Vec<String>> = view
        .active
        .iter()
        .map(|e| {
            vec![
                e.target.to_string(),
                e.action
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string),
                e.by.clone(),
                e.reason.clone(),
                e.expires_at_ms.map_or_else(|| "-".to_owned(), until),
                e.stamp.origin.clone(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(
            &["TARGET", "ACTION", "BY", "REASON", "EXPIRES IN", "MADE ON"],
            &rows,
        );
    }
    println!();
}
