//! `failoverd ctl`: the operator's client of every server's admin API.
//!
//! Reads ask each server and print what each says; changes go to every server, one
//! line per server with its result, and fail (exit 1) unless every server confirmed.
//! The servers also pass overrides on to each other, so one that was unreachable
//! catches up by itself once it is back.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::admin::explain::{ExplainQuery, Explanation, explain};
use crate::api::{
    ChangeOutcome, OverrideRequest, OverridesView, ReleaseRequest, ReloadStatus, Stats, Status,
};
use crate::config::ConfigSource;
use crate::dns::Snapshot;
use crate::health::overrides::OverrideSet;
use crate::health::overrides::{Action, Entry, Percent, Target};
use crate::health::{EndpointHealth, published};
use crate::model::DynamicType;
use crate::telemetry::events::Event;
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde::de::DeserializeOwned;

mod print;
mod stats;

use self::print::{
    describe_entry, event_line, print_cluster, print_events, print_explanation, print_overrides,
    print_status,
};
use self::stats::print_stats;

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
    /// Take an endpoint (`POOL/NAME`), a whole pool (`POOL`), every match of a pattern
    /// (`'web-eu/*'`, `'web-*'`) or every pool of a region (`--region R`) out of the
    /// answers.
    Drain(Change),
    /// Release a drain (same as `release`).
    Undrain {
        /// `POOL/NAME`, `POOL` or a pattern.
        #[arg(required_unless_present = "region")]
        target: Option<String>,
        /// Every pool of this region (and their endpoints) instead.
        #[arg(long, conflicts_with = "target")]
        region: Option<String>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Force an endpoint (`POOL/NAME`, a pattern such as `'web-eu/*'`, or with
    /// `--region R` every endpoint of the region's pools) up or down, whatever the
    /// probes say: `force POOL/NAME down`, `force --region R down`.
    Force {
        /// `POOL/NAME` (or a pattern), then `up` or `down`; with --region, the state
        /// alone.
        #[arg(num_args = 1..=2, required = true, value_names = ["ENDPOINT", "STATE"])]
        words: Vec<String>,
        /// Every endpoint of this region's pools.
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        why: Why,
    },
    /// Set a pool's traffic dial: it takes PERCENT of the answers it would otherwise
    /// get, the rest goes to the records' other pools (by spill-over, else by their
    /// policy); 0 takes it out of the answers with its health checks running.
    /// `dial POOL --clear` ends the dial (same as `release POOL`).
    Dial {
        /// The pool (or a pattern such as `'web-*'`).
        pool: String,
        /// A whole percent, 0 to 100.
        #[arg(allow_negative_numbers = true, required_unless_present = "clear")]
        percent: Option<String>,
        /// End the dial instead (the pool gets all it would get again).
        #[arg(long, conflicts_with_all = ["percent", "expires", "allow_empty"])]
        clear: bool,
        /// Why (required to set a dial: it is logged and shown with the override).
        #[arg(long, short, required_unless_present = "clear")]
        reason: Option<String>,
        /// End by itself after this long (`30m`, `2h`).
        #[arg(long)]
        expires: Option<String>,
        /// Make it even where a safety check refuses it.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Fail a record over to a named pool (manual failover).
    Failover {
        /// Record name.
        record: String,
        /// The pool to answer from.
        #[arg(long)]
        to: String,
        /// Only this record type, A, AAAA or CNAME in any case (default: every
        /// record of the name listing the pool).
        #[arg(long = "type", ignore_case = true)]
        record_type: Option<RecordType>,
        #[command(flatten)]
        why: Why,
    },
    /// The answer a client gets now, and why; with --assume or --config, what it
    /// would get (changing nothing).
    Explain {
        /// Record name.
        name: String,
        /// Record type, A, AAAA or CNAME in any case (default: every dynamic record
        /// of the name).
        #[arg(ignore_case = true)]
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
    /// Release an override: `POOL/NAME`, `POOL`, a record name (every type, or
    /// --type), a pattern, or `--region R`. A release that ends nothing fails, naming
    /// what is in force.
    Release {
        /// What to release.
        #[arg(required_unless_present = "region")]
        target: Option<String>,
        /// Every override on this region's pools and their endpoints instead.
        #[arg(long, conflicts_with = "target")]
        region: Option<String>,
        /// The record type, for a record: A, AAAA or CNAME in any case (without it,
        /// every type: an untyped release ends the typed overrides too).
        #[arg(long = "type", ignore_case = true)]
        record_type: Option<RecordType>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// DNS query statistics of every server: responses by rcode, per zone, rate
    /// limiting, TCP, zone transfers (`knotc stats`).
    Stats,
    /// The zone as each server serves it now, dynamic answers included, in zone-file
    /// text (`knotc zone-read`).
    ZoneRead {
        /// The zone (its origin, e.g. gslb.example.com).
        zone: String,
    },
}

#[derive(Args)]
struct Change {
    /// `POOL/NAME`, `POOL` or a pattern (`'web-eu/*'`; quote it from the shell).
    #[arg(required_unless_present = "region")]
    target: Option<String>,
    /// Every pool of this region instead.
    #[arg(long, conflicts_with = "target")]
    region: Option<String>,
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
    /// Make it even where a safety check refuses it (it would leave a record with no
    /// healthy pool or answer nothing, change no answer for fail-open, or break a
    /// `[[safety]]` rule).
    #[arg(long)]
    allow_empty: bool,
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
    crate::config::parse_duration(text)
}

/// `--region R` → the region; `POOL/NAME` → an endpoint, a name with a dot → a
/// record, else a pool (each may be a pattern).
fn selector(
    target: Option<String>,
    region: Option<String>,
    record_type: Option<RecordType>,
) -> Target {
    match (target, region) {
        (_, Some(region)) => Target::Region(region),
        (Some(text), None) => target_of(&text, record_type),
        // clap requires one of them.
        (None, None) => Target::Pool(String::new()),
    }
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
    let at = match crate::config::parse_duration(text) {
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

/// The user `ctl` runs as, for the override's "by": `SUDO_USER` (the person behind
/// sudo), else `USER`, else the name the password database gives this process's
/// user (cron jobs, containers and `env -i` have no `USER`).
fn user() -> Option<String> {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(login_name)
}

/// The login name of the effective user, from the password database (`getpwuid_r`).
fn login_name() -> Option<String> {
    let uid = unsafe { libc::geteuid() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: a zeroed passwd is a valid out-parameter; getpwuid_r writes it and the
    // strings it points to (inside `buffer`, which outlives every use) or leaves
    // `found` null.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return Some(format!("uid {uid}"));
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

pub(crate) fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let servers = servers(&args)?;
    let token = token(&args)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(args.timeout)
        .tls_backend_preconfigured(crate::runtime::http::client_config(
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
        return args.servers.iter().map(|s| server_url(s)).collect();
    }
    let Some(path) = &args.config else {
        // The embedded default's admin API (the first-minute demo).
        return Ok(vec![DEFAULT_SERVER.to_owned()]);
    };
    let source = ConfigSource::from_file(path)?;
    let (config, _) = crate::config::Config::load(source).map_err(|d| anyhow::anyhow!("{d}"))?;
    if config.health.servers.is_empty() {
        bail!(
            "{}: [health] servers is empty; give --server URL",
            path.display()
        );
    }
    Ok(config.health.servers.clone())
}

/// A `--server` value as a base URL: `HOST:PORT` means `http://HOST:PORT` (the admin
/// API's scheme without `[admin.tls]`); anything else must be an http(s) URL.
fn server_url(text: &str) -> anyhow::Result<String> {
    let text = text.trim().trim_end_matches('/');
    let url = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    match reqwest::Url::parse(&url) {
        Ok(parsed)
            if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() =>
        {
            Ok(url)
        }
        Ok(parsed) => bail!(
            "--server {text}: {} is not an admin API URL; give http://HOST:PORT or https://HOST:PORT",
            parsed.scheme()
        ),
        Err(error) => bail!(
            "--server {text}: not a URL ({error}); give HOST:PORT, http://HOST:PORT or https://HOST:PORT"
        ),
    }
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
    /// The HTTP status of an answer that is not a success (None: no answer at all).
    status: Option<u16>,
    /// Why a change was refused (the `failoverd-refusal` header), if it was.
    refusal: Option<String>,
}

impl Reply {
    /// Whether the server could not be asked or could not keep the change now
    /// (unreachable, a timeout, 503): it takes a change from its peers later.
    fn unreachable(&self) -> bool {
        self.result.is_err() && matches!(self.status, None | Some(502..=504))
    }
}

/// Why a request got no answer, in the operator's words: "connection refused",
/// "no answer within --timeout 5s", "cannot resolve …", a TLS problem; with the URL.
fn unreachable(error: &reqwest::Error, timeout: Duration) -> String {
    let url = error
        .url()
        .map(|u| format!(" at {}", u.as_str()))
        .unwrap_or_default();
    let mut io_kind = None;
    let mut innermost = error.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        innermost = e.to_string();
        source = e.source();
    }
    match io_kind {
        _ if error.is_timeout() => format!(
            "unreachable: no answer within --timeout {}{url}",
            humantime::format_duration(timeout)
        ),
        Some(std::io::ErrorKind::ConnectionRefused) => format!(
            "unreachable: connection refused{url} (nothing listens there: is the server running, and is this its admin address?)"
        ),
        Some(std::io::ErrorKind::ConnectionReset) => {
            format!("unreachable: connection reset{url}")
        }
        Some(std::io::ErrorKind::TimedOut) => format!("unreachable: connect timed out{url}"),
        _ => format!("unreachable: {innermost}{url}"),
    }
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
                let target = selector(change.target, change.region, None);
                self.set(target, Action::Drain, change.why).await
            }
            CtlCommand::Undrain {
                target,
                region,
                reason,
            } => self.release(selector(target, region, None), reason).await,
            CtlCommand::Force { words, region, why } => {
                let (target, state) = match (region, words.as_slice()) {
                    (Some(region), [state]) => (Target::Region(region), state),
                    (None, [endpoint, state]) => (Target::Endpoint(endpoint.clone()), state),
                    (Some(_), _) => {
                        bail!("with --region give the state alone: force --region R down")
                    }
                    (None, _) => bail!("give the endpoint and the state: force POOL/NAME down"),
                };
                let action = match ForcedState::from_str(state, true) {
                    Ok(ForcedState::Up) => Action::ForceUp,
                    Ok(ForcedState::Down) => Action::ForceDown,
                    Err(_) => bail!("{state:?} is not a state: up or down"),
                };
                self.set(target, action, why).await
            }
            CtlCommand::Dial {
                pool,
                percent,
                clear,
                reason,
                expires,
                allow_empty,
            } => {
                let target = Target::Pool(pool);
                if clear {
                    return self.release(target, reason).await;
                }
                let text = percent.unwrap_or_default();
                let percent: Percent = text.parse().map_err(|e: String| {
                    anyhow::anyhow!("PERCENT {}", e.replacen("action.dial: ", "", 1))
                })?;
                let why = Why {
                    reason: reason.unwrap_or_default(),
                    expires,
                    allow_empty,
                };
                self.set(target, Action::Dial(percent), why).await
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
                region,
                record_type,
                reason,
            } => {
                self.release(selector(target, region, record_type), reason)
                    .await
            }
            CtlCommand::Stats => self.read::<Stats>("/v1/stats", print_stats).await,
            CtlCommand::ZoneRead { zone } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("name", &zone);
                self.zone_read(&format!("/v1/zone?{}", query.finish()))
                    .await
            }
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
            allow_empty: why.allow_empty,
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
        // A release another server made: one holding nothing in force (it never had
        // the override, or already took the release from that server) has nothing to
        // end, and takes the release from its peers like any entry.
        let released_elsewhere = replies.iter().any(|r| r.result.is_ok());
        for reply in &replies {
            if released_elsewhere && reply.refusal.as_deref() == Some("nothing_in_force") {
                let note =
                    "nothing in force here (the release reaches it from a server that made it)";
                outcomes.ok(&reply.server, &serde_json::json!({"note": note}), || {
                    println!("{}: ok {note}", reply.server);
                });
                continue;
            }
            match &reply.result {
                Ok(text) => {
                    // One entry, or several (a pattern, a region, typed overrides an
                    // untyped change ended).
                    let entries: Vec<Entry> = serde_json::from_str::<Entry>(text)
                        .map(|e| vec![e])
                        .or_else(|_| serde_json::from_str::<ChangeOutcome>(text).map(|o| o.entries))
                        .unwrap_or_default();
                    outcomes.ok(&reply.server, &entries, || {
                        println!("{}: ok {}", reply.server, describe_entries(&entries));
                    });
                    made = made.or_else(|| entries.first().cloned());
                }
                Err(error) => {
                    outcomes.failed(&reply.server, error, "", "");
                    unconfirmed.push(reply.server.clone());
                }
            }
        }
        // Those with nothing to end count as holding the release.
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
            let others: Vec<&Reply> = replies
                .iter()
                .filter(|r| unconfirmed.contains(&r.server) && !caught_up.contains(&r.server))
                .collect();
            if holding >= needed {
                if holding < replies.len() {
                    eprintln!(
                        "{holding} of {} servers hold the change (a quorum)",
                        replies.len()
                    );
                }
                for hint in unconfirmed_hints(&others, replies.len()) {
                    eprintln!("{hint}");
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
        let others: Vec<&Reply> = replies
            .iter()
            .filter(|r| unconfirmed.contains(&r.server))
            .collect();
        for hint in unconfirmed_hints(&others, replies.len()) {
            eprintln!("{hint}");
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

    /// Prints each server's zone text (a `;; server` line before each when there are
    /// several); fails if any could not give it.
    async fn zone_read(&self, path: &str) -> anyhow::Result<ExitCode> {
        let replies = self
            .each(|server| {
                self.authorized(
                    self.client
                        .get(format!("{}{path}", server.trim_end_matches('/'))),
                )
            })
            .await;
        let several = replies.len() > 1;
        let mut outcomes = Outcomes::new(self.json);
        for reply in replies {
            match reply.result {
                Ok(text) => outcomes.ok(&reply.server, &text, || {
                    if several {
                        println!(";; server {}", reply.server);
                    }
                    print!("{text}");
                }),
                Err(error) => outcomes.failed(&reply.server, &error, ";; ", ""),
            }
        }
        outcomes.finish()
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
                .tls_backend_preconfigured(crate::runtime::http::client_config(
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
        let load = || -> anyhow::Result<crate::service::Loaded> {
            let source = ConfigSource::from_file(path)
                .with_context(|| format!("reading {}", path.display()))?;
            crate::service::load(source)
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
            let timeout = self.timeout;
            async move {
                let (result, status, refusal) = match request.send().await {
                    Err(error) => (Err(unreachable(&error, timeout)), None, None),
                    Ok(response) => {
                        let status = response.status();
                        let refusal = response
                            .headers()
                            .get(crate::admin::REFUSAL_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let text = response.text().await.unwrap_or_default();
                        if status.is_success() {
                            (Ok(text), None, None)
                        } else {
                            let hint = match status.as_u16() {
                                401 => " (give a token it accepts: --token-file FILE or FAILOVERD_TOKEN)",
                                403 => " (this token may not do that: an operate token makes changes)",
                                _ => "",
                            };
                            (
                                Err(format!("{status}: {}{hint}", text.trim())),
                                Some(status.as_u16()),
                                refusal,
                            )
                        }
                    }
                };
                Reply {
                    server: server.clone(),
                    result,
                    status,
                    refusal,
                }
            }
        });
        futures_util::future::join_all(calls).await
    }
}

/// What a server made, in one line: the entry, or how many and which.
fn describe_entries(entries: &[Entry]) -> String {
    match entries {
        [] => String::new(),
        [entry] => describe_entry(entry),
        [first, ..] => {
            let parts: Vec<String> = entries
                .iter()
                .map(|e| match &e.action {
                    Some(action) => format!("{action} {}", e.target),
                    None => format!("released {}", e.target),
                })
                .collect();
            format!(
                "{} changes: {} by {} ({})",
                entries.len(),
                parts.join(", "),
                first.by,
                first.reason
            )
        }
    }
}

/// What becomes of a change on the servers (of `total`) that did not confirm it, when
/// others did: one that could not be reached (or could not keep it now) takes it from
/// a peer that holds it; one whose configuration lacks the target refuses a peer's
/// copy as well; the others refused it, for the reason printed on their line.
fn unconfirmed_hints(others: &[&Reply], total: usize) -> Vec<String> {
    let away = others.iter().filter(|r| r.unreachable()).count();
    let unknown = others
        .iter()
        .filter(|r| matches!(r.refusal.as_deref(), Some("unknown_target" | "no_match")))
        .count();
    let refused = others.len() - away - unknown;
    let mut hints = Vec::new();
    if away > 0 {
        hints.push(format!(
            "{away} of {total} servers could not be reached or could not keep it now; each takes the change from a server that holds it once it reaches one"
        ));
    }
    if unknown > 0 {
        hints.push(format!(
            "{unknown} of {total} servers do not have this target in their configuration: they do not take the change from their peers either (give every server the same configuration)"
        ));
    }
    if refused > 0 {
        hints.push(format!(
            "{refused} of {total} servers refused the change (the reasons above)"
        ));
    }
    hints
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
fn candidate_snapshot(loaded: crate::service::Loaded, status: &Status) -> Snapshot {
    let config = loaded.config;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let effects = OverrideSet::from_entries(status.overrides.clone()).effects(&config, now);
    let decided = published::decided_by_label(&config, &effects.forced, |label| {
        let known = status.endpoints.iter().find(|e| e.endpoint == label)?;
        Some(EndpointHealth {
            state: known.state,
            source: known.source,
        })
    });
    // The server's agreed primaries are not in its status: none, as before.
    let health = published::compose(decided, &effects, |_| Vec::new());
    Snapshot::build(config, loaded.zones, health, status.generation)
}
