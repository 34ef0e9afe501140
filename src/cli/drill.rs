//! `failoverd drill`: takes an endpoint out for real, watches every server (and a
//! caching resolver) answer without it, puts it back, watches them recover, and writes
//! the report. The endpoint is restored whatever happens: on success, on an error, on
//! a timeout and on Ctrl-C.
//!
//! `--mode dial --pool POOL` steps the pool's traffic dial through `--steps`
//! (`0,10,50,100`) on every server and measures each nameserver's share of answers
//! from the pool at each step ([`dial`]); the dial is released at the end.
//!
//! `--mode promote` is one-way: it runs the operator's promote command (Patroni's
//! `patronictl failover`, `pg_ctl promote`, a cloud API call) and measures until every
//! server (and the resolver) answers the new primary, `--endpoint POOL/NAME`, of a
//! `policy = "primary"` record. Nothing is put back: failing back is another
//! promotion.
//!
//! Every action (the break, restore and promote commands, the force and release
//! calls) runs while the servers are polled: polling starts the moment the action
//! starts, times are measured from that moment, and polling goes on until the action
//! has returned, so a command that returns long after its effect (`patronictl
//! failover` waiting for the cluster, `… && sleep 2`) is timed by its effect. The
//! report says when each action returned.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::api::Status;
use crate::ops::drill::{DrillRun, Sample, Track};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

mod dial;

#[derive(Args)]
pub(crate) struct DrillArgs {
    /// Record to drill.
    record: String,
    /// The endpoint to take out, `POOL/NAME` (with --mode promote: the node that
    /// becomes the primary; not with --mode dial).
    #[arg(long, required_unless_present = "pool")]
    endpoint: Option<String>,
    /// With --mode dial: the pool whose traffic dial is stepped.
    #[arg(long, conflicts_with = "endpoint")]
    pool: Option<String>,
    /// With --mode dial: the percentages to step through, in order (100: the dial
    /// released).
    #[arg(long, default_value = "0,10,50,100")]
    steps: String,
    /// With --mode dial: queries to each nameserver at each step.
    #[arg(long, default_value_t = 2000)]
    queries: u32,
    /// With --mode dial: the largest |measured − computed| share that passes (0.05:
    /// 5 points).
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    /// Record type.
    #[arg(long = "type", default_value = "A")]
    record_type: String,
    /// How the endpoint is taken out: a cluster-wide force (every server), or a command
    /// that breaks the backend for real (the probes must notice).
    #[arg(long, value_enum, default_value_t = Mode::Force)]
    mode: Mode,
    /// With --mode command: the command that breaks the backend (run with sh -c).
    #[arg(long = "break")]
    break_command: Option<String>,
    /// With --mode command: the command that restores it.
    #[arg(long = "restore")]
    restore_command: Option<String>,
    /// With --mode promote: the command that promotes the database node (run with sh -c).
    #[arg(long = "promote")]
    promote_command: Option<String>,
    /// Each server's admin API (repeatable; default: `[health] servers` of --config).
    #[arg(long = "server")]
    servers: Vec<String>,
    /// Configuration whose `[health] servers` to use.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Each server's DNS address, `IP:PORT` (repeatable; at least one).
    #[arg(long = "dns", required = true)]
    dns: Vec<SocketAddr>,
    /// A caching resolver in front of them, `IP:PORT`.
    #[arg(long)]
    resolver: Option<SocketAddr>,
    /// File holding the bearer token (default: FAILOVERD_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Poll period (50–100 ms advised).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    interval: Duration,
    /// Longest each phase (out, back) may take before the drill gives up on it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Where the report goes (report.md, report.json, timeline.svg).
    #[arg(long, default_value = "drill-report")]
    out: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Force,
    Command,
    /// Run a promote command; measure until every server answers the new primary.
    Promote,
    /// Step a pool's traffic dial (--pool, --steps) and measure the shares through DNS.
    Dial,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::config::parse_duration(text)
}

pub(crate) fn run(args: DrillArgs) -> anyhow::Result<ExitCode> {
    if args.mode == Mode::Command
        && (args.break_command.is_none() || args.restore_command.is_none())
    {
        bail!("--mode command needs --break CMD and --restore CMD");
    }
    if args.mode == Mode::Promote && args.promote_command.is_none() {
        bail!("--mode promote needs --promote CMD");
    }
    if (args.mode == Mode::Dial) != args.pool.is_some() {
        bail!("--mode dial goes with --pool POOL (and --endpoint POOL/NAME with the other modes)");
    }
    let steps = crate::ops::drill::dial::parse_steps(&args.steps).map_err(anyhow::Error::msg)?;
    let endpoint = args.endpoint.clone().unwrap_or_default();
    let servers = if args.servers.is_empty() {
        let Some(path) = &args.config else {
            bail!("give --server URL (repeatable) or --config FILE with [health] servers");
        };
        let source = crate::config::ConfigSource::from_file(path)?;
        let (config, _) =
            crate::config::Config::load(source).map_err(|d| anyhow::anyhow!("{d}"))?;
        config.health.servers.clone()
    } else {
        args.servers.clone()
    };
    let token = crate::cli::ctl::read_token(args.token_file.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(
        Drill {
            args,
            servers,
            token,
            endpoint,
            steps,
        }
        .run(),
    )
}

struct Drill {
    args: DrillArgs,
    servers: Vec<String>,
    token: Option<String>,
    /// `--endpoint` (empty with --mode dial).
    endpoint: String,
    /// `--steps`.
    steps: Vec<u8>,
}

impl Drill {
    async fn run(self) -> anyhow::Result<ExitCode> {
        let client = crate::runtime::http::http_client_builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let first = self.servers.first().context("no servers")?;
        let mut request = client.get(format!("{}/v1/status", first.trim_end_matches('/')));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let text = request.send().await?.error_for_status()?.text().await?;
        let status: Status = serde_json::from_str(&text).context("unreadable status")?;
        if let Some(pool) = &self.args.pool {
            let name = absolute(&self.args.record);
            let rtype: RecordType = self
                .args
                .record_type
                .to_ascii_uppercase()
                .parse()
                .context("--type")?;
            if !status
                .records
                .iter()
                .any(|r| r.name == name && r.record_type.eq_ignore_ascii_case(&rtype.to_string()))
            {
                bail!("{first} answers no dynamic record {name} {rtype}");
            }
            return dial::DialDrill {
                args: &self.args,
                servers: &self.servers,
                token: self.token.as_deref(),
                client: &client,
                pool: pool.clone(),
                steps: self.steps.clone(),
            }
            .run(&name, rtype, &status)
            .await;
        }
        let target = status
            .endpoints
            .iter()
            .find(|e| e.endpoint == self.endpoint)
            .map(|e| e.target.clone())
            .with_context(|| format!("{} has no endpoint {}", first, self.endpoint))?;
        let mut name = self.args.record.trim().to_ascii_lowercase();
        if !name.ends_with('.') {
            name.push('.');
        }
        let record = status
            .records
            .iter()
            .find(|r| r.name == name && r.record_type.eq_ignore_ascii_case(&self.args.record_type))
            .with_context(|| {
                format!(
                    "{first} answers no dynamic record {name} {}",
                    self.args.record_type
                )
            })?;
        let ttl = record.answers.iter().map(|a| a.ttl).max().unwrap_or(0);
        let rtype: RecordType = self
            .args
            .record_type
            .to_ascii_uppercase()
            .parse()
            .context("--type")?;
        let mut watcher = Watcher::new(&self.args, &name, rtype, &target)?;
        if self.args.mode == Mode::Promote {
            return self.promote(watcher, name, target, ttl).await;
        }
        let started = Instant::now();
        // Before: every server must answer with the endpoint, or there is nothing to measure.
        watcher.poll(started).await;
        if watcher
            .tracks
            .iter()
            .any(|t| t.samples.last().and_then(|s| s.present) != Some(true))
        {
            bail!(
                "{target} is not in every answer of {name} now; nothing to drill (a server or the resolver answers without it)"
            );
        }
        eprintln!("drill: taking {} ({target}) out of {name} …", self.endpoint);
        let broken_at = started.elapsed();
        let result = async {
            let out = watcher
                .during(started, self.take_out(&client), false, self.args.timeout)
                .await;
            out.result?;
            // After the last poll of this phase, to the millisecond.
            let last_poll = watcher.last_poll_ms();
            let restored_at = started.elapsed().max(Duration::from_millis(last_poll + 1));
            anyhow::Ok((out.reached, out.ended_ms, restored_at))
        };
        // Ctrl-C, SIGTERM or SIGHUP during the drill restores too.
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let outcome = tokio::select! {
            outcome = result => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
            _ = terminate.recv() => None,
            _ = hangup.recv() => None,
        };
        eprintln!("drill: putting {} back …", self.endpoint);
        let (gone, taken_out_ended, restored_at) = match outcome {
            Some(Ok(value)) => value,
            Some(Err(error)) => {
                self.put_back(&client).await?;
                return Err(error.context("the drill failed; the endpoint was put back"));
            }
            None => {
                self.put_back(&client).await?;
                bail!("interrupted; the endpoint was put back");
            }
        };
        // Polled from the restore's start, as the break was.
        let restored = watcher
            .during(started, self.put_back(&client), true, self.args.timeout)
            .await;
        restored.result?;
        let back = restored.reached;
        // Keep polling a little, so the report shows the answers settled.
        watcher
            .for_a_while(started, Duration::from_millis(500))
            .await;
        let run = DrillRun {
            record: name.clone(),
            record_type: self.args.record_type.to_ascii_uppercase(),
            endpoint: self.endpoint.clone(),
            target,
            mode: match self.args.mode {
                Mode::Force => "force".into(),
                Mode::Command | Mode::Promote | Mode::Dial => "command".into(),
            },
            ttl,
            broken_at_ms: broken_at.as_millis() as u64,
            restored_at_ms: restored_at.as_millis() as u64,
            ended_at_ms: started.elapsed().as_millis() as u64,
            break_ended_at_ms: Some(taken_out_ended),
            restore_ended_at_ms: Some(restored.ended_ms),
            tracks: watcher.tracks,
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
                .saturating_sub(started.elapsed().as_millis() as u64),
        };
        let json = serde_json::json!({"run": run, "figures": run.figures()});
        self.write_report(&run, json)?;
        Ok(if gone && back {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// A promote drill: the new primary must not be answered yet; run the command;
    /// poll until every server answers it.
    async fn promote(
        self,
        mut watcher: Watcher,
        name: String,
        target: String,
        ttl: u32,
    ) -> anyhow::Result<ExitCode> {
        let started = Instant::now();
        watcher.poll(started).await;
        if watcher
            .tracks
            .iter()
            .any(|t| t.samples.last().and_then(|s| s.present) == Some(true))
        {
            bail!("{target} is answered for {name} already; nothing to promote");
        }
        eprintln!("drill: promoting {} ({target}) for {name} …", self.endpoint);
        let promoted_at = started.elapsed();
        // The command runs while every server is polled, from its start.
        let promote = shell(self.args.promote_command.as_deref().unwrap_or_default());
        let watched = watcher
            .during(started, promote, true, self.args.timeout)
            .await;
        watched
            .result
            .context("the promote command failed (nothing was put back)")?;
        let done = watched.reached;
        watcher
            .for_a_while(started, Duration::from_millis(500))
            .await;
        let ended = started.elapsed().as_millis() as u64;
        let run = DrillRun {
            record: name,
            record_type: self.args.record_type.to_ascii_uppercase(),
            endpoint: self.endpoint.clone(),
            target,
            mode: "promote".into(),
            ttl,
            broken_at_ms: promoted_at.as_millis() as u64,
            restored_at_ms: ended,
            ended_at_ms: ended,
            break_ended_at_ms: Some(watched.ended_ms),
            restore_ended_at_ms: None,
            tracks: watcher.tracks,
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
                .saturating_sub(started.elapsed().as_millis() as u64),
        };
        self.write_report(
            &run,
            serde_json::json!({"run": run, "figures": run.promotion_figures()}),
        )?;
        Ok(if done {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    fn write_report(&self, run: &DrillRun, json: serde_json::Value) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.args.out)?;
        std::fs::write(self.args.out.join("report.md"), run.markdown())?;
        std::fs::write(self.args.out.join("timeline.svg"), run.svg())?;
        std::fs::write(
            self.args.out.join("report.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        print!("{}", run.markdown());
        eprintln!("drill: report in {}", self.args.out.display());
        Ok(())
    }

    async fn take_out(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        match self.args.mode {
            Mode::Force => {
                let body = serde_json::json!({
                    "target": {"endpoint": self.endpoint},
                    "action": "force_down",
                    "reason": "failover drill",
                    "by": "failoverd drill",
                    // Ends by itself should the drill die before putting it back.
                    "expires_in": format!("{}s", self.args.timeout.as_secs() * 3 + 60),
                });
                self.on_every_server(client, "/v1/overrides", &body).await
            }
            Mode::Command | Mode::Promote | Mode::Dial => {
                shell(self.args.break_command.as_deref().unwrap_or_default()).await
            }
        }
    }

    async fn put_back(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        match self.args.mode {
            Mode::Force => {
                let body = serde_json::json!({
                    "target": {"endpoint": self.endpoint},
                    "reason": "failover drill over",
                    "by": "failoverd drill",
                });
                self.on_every_server(client, "/v1/overrides/release", &body)
                    .await
            }
            Mode::Command | Mode::Promote | Mode::Dial => {
                shell(self.args.restore_command.as_deref().unwrap_or_default()).await
            }
        }
    }

    async fn on_every_server(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        for server in &self.servers {
            let mut request = client
                .post(format!("{}{path}", server.trim_end_matches('/')))
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            match request
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
            {
                Ok(_) => {}
                Err(error) => failed.push(format!("{server}: {error}")),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("not confirmed by every server: {}", failed.join("; "))
        }
    }
}

/// A record name made absolute and lower case.
fn absolute(name: &str) -> String {
    let mut name = name.trim().to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

async fn shell(command: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .await?;
    if !status.success() {
        bail!("`{command}` exited with {status}");
    }
    Ok(())
}

/// What [`Watcher::during`] saw.
struct Watched {
    /// Whether, within the timeout, every track answered as wanted at one round.
    reached: bool,
    /// When the action returned (ms since the drill began).
    ended_ms: u64,
    /// The action's result.
    result: anyhow::Result<()>,
}

/// Polls every server and the resolver.
struct Watcher {
    targets: Vec<SocketAddr>,
    tracks: Vec<Track>,
    query: Vec<u8>,
    id: u16,
    target: String,
    interval: Duration,
}

impl Watcher {
    fn new(args: &DrillArgs, name: &str, rtype: RecordType, target: &str) -> anyhow::Result<Self> {
        let mut message = Message::query();
        message.metadata.recursion_desired = args.resolver.is_some();
        message.add_query(Query::query(Name::from_ascii(name)?, rtype));
        let mut targets = args.dns.clone();
        let mut tracks: Vec<Track> = args
            .dns
            .iter()
            .map(|a| Track {
                name: format!("server {a}"),
                resolver: false,
                samples: Vec::new(),
            })
            .collect();
        if let Some(resolver) = args.resolver {
            targets.push(resolver);
            tracks.push(Track {
                name: format!("resolver {resolver}"),
                resolver: true,
                samples: Vec::new(),
            });
        }
        Ok(Self {
            targets,
            tracks,
            query: message.to_vec()?,
            id: 0,
            target: target.to_owned(),
            interval: args.interval,
        })
    }

    /// When the last poll was (ms since the drill began).
    fn last_poll_ms(&self) -> u64 {
        self.tracks
            .iter()
            .filter_map(|t| t.samples.last())
            .map(|s| s.at_ms)
            .max()
            .unwrap_or(0)
    }

    /// One round: every server at once.
    async fn poll(&mut self, started: Instant) {
        let rounds = self.targets.iter().map(|&addr| {
            self.id = self.id.wrapping_add(1);
            let mut query = self.query.clone();
            query[..2].copy_from_slice(&self.id.to_be_bytes());
            let target = self.target.clone();
            async move { ask(addr, &query, &target).await }
        });
        let results = futures_util::future::join_all(rounds.collect::<Vec<_>>()).await;
        let at_ms = started.elapsed().as_millis() as u64;
        for (track, present) in self.tracks.iter_mut().zip(results) {
            track.samples.push(Sample { at_ms, present });
        }
    }

    /// Whether every track's last answer has the endpoint `present` (true) or not.
    fn all_answer(&self, present: bool) -> bool {
        self.tracks
            .iter()
            .all(|t| t.samples.last().and_then(|s| s.present) == Some(present))
    }

    /// Runs `action` (a command, or calls to the servers) while polling every
    /// `interval` from the moment it starts: until every track answers `present`
    /// (true: with the endpoint) or `timeout` has passed, and in any case until the
    /// action has returned (a failed action stops the polling at once). The action
    /// and the polls run in one task, so when the action returned is timed to the
    /// millisecond whatever a poll is doing; a round also starts the moment it returns,
    /// so a quick action's effect is seen at once, not an `interval` later.
    async fn during(
        &mut self,
        started: Instant,
        action: impl std::future::Future<Output = anyhow::Result<()>>,
        present: bool,
        timeout: Duration,
    ) -> Watched {
        let deadline = Instant::now() + timeout;
        // When the action returned (ms since the drill began) and whether it succeeded.
        let returned: std::cell::Cell<Option<(u64, bool)>> = std::cell::Cell::new(None);
        let returned_now = tokio::sync::Notify::new();
        let action = async {
            let result = action.await;
            returned.set(Some((started.elapsed().as_millis() as u64, result.is_ok())));
            returned_now.notify_one();
            result
        };
        let polls = async {
            let mut reached = false;
            let mut said = false;
            loop {
                let round = Instant::now();
                if matches!(returned.get(), Some((_, false))) {
                    return reached;
                }
                self.poll(started).await;
                reached |= self.all_answer(present);
                let over = reached || Instant::now() >= deadline;
                match returned.get() {
                    Some((_, false)) => return reached,
                    Some(_) if over => return reached,
                    None if over && !said => {
                        said = true;
                        eprintln!(
                            "drill: {}; polling on until the command returns …",
                            if reached {
                                "every answer changed"
                            } else {
                                "--timeout passed"
                            }
                        );
                    }
                    _ => {}
                }
                tokio::select! {
                    () = tokio::time::sleep_until((round + self.interval).into()) => {}
                    () = returned_now.notified() => {}
                }
            }
        };
        let (result, reached) = tokio::join!(action, polls);
        Watched {
            reached,
            ended_ms: returned.get().map_or(0, |(at, _)| at),
            result,
        }
    }

    async fn for_a_while(&mut self, started: Instant, period: Duration) {
        let end = Instant::now() + period;
        while Instant::now() < end {
            let round = Instant::now();
            self.poll(started).await;
            tokio::time::sleep_until((round + self.interval).into()).await;
        }
    }
}

/// Whether `target` is in the answer `addr` gives (None: no answer within 500 ms).
async fn ask(addr: SocketAddr, query: &[u8], target: &str) -> Option<bool> {
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await.ok()?;
    socket.connect(addr).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    let reply = Message::from_vec(&buf[..n]).ok()?;
    Some(reply.answers.iter().any(|r| match &r.data {
        RData::A(a) => a.to_string() == target,
        RData::AAAA(a) => a.to_string() == target,
        RData::CNAME(c) => c.0.to_string().trim_end_matches('.') == target.trim_end_matches('.'),
        _ => false,
    }))
}
