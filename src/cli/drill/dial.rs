//! `failoverd drill RECORD --mode dial --pool POOL`: steps the pool's traffic dial
//! through `--steps` on every server, asks every nameserver `--queries` times at each
//! step and measures the pool's share of the answers against the share the servers
//! computed. The dial is released at the end whatever happens (an error, Ctrl-C),
//! and every dial it sets expires by itself should the drill die.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use super::DrillArgs;
use crate::admin::explain::Explanation;
use crate::api::{OverridesView, Status};
use crate::health::overrides::Target;
use crate::ops::drill::dial::{DialMeasure, DialRun, DialStep};

/// What the dial drill needs from the runner.
pub(super) struct DialDrill<'a> {
    pub(super) args: &'a DrillArgs,
    pub(super) servers: &'a [String],
    pub(super) token: Option<&'a str>,
    pub(super) client: &'a reqwest::Client,
    pub(super) pool: String,
    pub(super) steps: Vec<u8>,
}

impl DialDrill<'_> {
    /// Runs the drill on `name` (absolute) of type `rtype`; `status` is the first
    /// server's.
    pub(super) async fn run(
        &self,
        name: &str,
        rtype: RecordType,
        status: &Status,
    ) -> anyhow::Result<ExitCode> {
        let prefix = format!("{}/", self.pool);
        let targets: Vec<String> = status
            .endpoints
            .iter()
            .filter(|e| e.endpoint.starts_with(&prefix))
            .map(|e| e.target.trim_end_matches('.').to_owned())
            .collect();
        if targets.is_empty() {
            bail!(
                "{} has no pool {} (or it has no endpoints); give --pool one of the record's pools",
                self.servers[0],
                self.pool
            );
        }
        // An operator's drain or dial of the pool would be replaced, then released.
        for server in self.servers {
            let view: OverridesView = self.get(server, "/v1/overrides").await?;
            if let Some(entry) = view
                .active
                .iter()
                .find(|e| e.target == Target::Pool(self.pool.clone()))
            {
                bail!(
                    "{server}: pool {} has an override in force ({} by {}); nothing to drill: \
                     release it first (failoverd ctl release {}) or drill another pool",
                    self.pool,
                    entry
                        .action
                        .as_ref()
                        .map_or_else(String::new, ToString::to_string),
                    entry.by,
                    self.pool
                );
            }
        }
        let query = {
            let mut message = Message::query();
            message.metadata.recursion_desired = false;
            message.add_query(Query::query(Name::from_ascii(name)?, rtype));
            message.to_vec()?
        };
        let drill = async {
            let mut steps = Vec::new();
            for &percent in &self.steps {
                eprintln!("drill: pool {} at {percent} % …", self.pool);
                let set = Instant::now();
                self.set(percent).await?;
                let set_ms = set.elapsed().as_millis() as u64;
                let expected = self.expected(name, rtype, &targets).await?;
                let mut servers = Vec::new();
                for &dns in &self.args.dns {
                    servers.push(ask_many(dns, &query, self.args.queries, &targets).await?);
                }
                steps.push(DialStep {
                    percent,
                    expected,
                    set_ms,
                    servers,
                });
            }
            anyhow::Ok(steps)
        };
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let outcome = tokio::select! {
            outcome = drill => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
            _ = terminate.recv() => None,
            _ = hangup.recv() => None,
        };
        eprintln!("drill: releasing pool {}'s dial …", self.pool);
        self.set(100).await?;
        let steps = match outcome {
            Some(Ok(steps)) => steps,
            Some(Err(error)) => {
                return Err(error.context("the drill failed; the dial was released"));
            }
            None => bail!("interrupted; the dial was released"),
        };
        let run = DialRun {
            record: name.to_owned(),
            record_type: rtype.to_string(),
            pool: self.pool.clone(),
            tolerance: self.args.tolerance,
            steps,
        };
        let figures = run.figures();
        std::fs::create_dir_all(&self.args.out)?;
        std::fs::write(self.args.out.join("report.md"), run.markdown())?;
        std::fs::write(
            self.args.out.join("report.json"),
            serde_json::to_string_pretty(&serde_json::json!({"run": run, "figures": figures}))?,
        )?;
        print!("{}", run.markdown());
        eprintln!("drill: report in {}", self.args.out.display());
        Ok(if figures.within {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        server: &str,
        path: &str,
    ) -> anyhow::Result<T> {
        let mut request = self
            .client
            .get(format!("{}{path}", server.trim_end_matches('/')));
        if let Some(token) = self.token {
            request = request.bearer_auth(token);
        }
        let text = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("{server}{path}"))?
            .text()
            .await?;
        serde_json::from_str(&text).with_context(|| format!("{server}{path}: unreadable answer"))
    }

    /// Sets the dial on every server (100: releases it; nothing in force is fine).
    async fn set(&self, percent: u8) -> anyhow::Result<()> {
        let (path, body) = if percent >= 100 {
            (
                "/v1/overrides/release",
                serde_json::json!({
                    "target": {"pool": self.pool},
                    "reason": "dial drill: 100 %",
                    "by": "failoverd drill",
                }),
            )
        } else {
            (
                "/v1/overrides",
                serde_json::json!({
                    "target": {"pool": self.pool},
                    "action": {"dial": percent},
                    "reason": format!("dial drill: {percent} %"),
                    "by": "failoverd drill",
                    // Ends by itself should the drill die before releasing it.
                    "expires_in": format!("{}s", self.args.timeout.as_secs() * 3 + 60),
                }),
            )
        };
        let mut failed = Vec::new();
        for server in self.servers {
            let mut request = self
                .client
                .post(format!("{}{path}", server.trim_end_matches('/')))
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(token) = self.token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {}
                Ok(response)
                    if percent >= 100
                        && response
                            .headers()
                            .get(crate::admin::REFUSAL_HEADER)
                            .is_some_and(|v| v == "nothing_in_force") => {}
                Ok(response) => {
                    let code = response.status();
                    let text = response.text().await.unwrap_or_default();
                    failed.push(format!("{server}: {code}: {}", text.trim()));
                }
                Err(error) => failed.push(format!("{server}: {error}")),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("not confirmed by every server: {}", failed.join("; "))
        }
    }

    /// The pool's share of the answers as the first server computes it: its share
    /// where the record has shares, else 1 or 0 where every or no candidate is the
    /// pool's (None otherwise).
    async fn expected(
        &self,
        name: &str,
        rtype: RecordType,
        targets: &[String],
    ) -> anyhow::Result<Option<f64>> {
        let path = format!("/v1/explain?name={name}&type={rtype}");
        let explained: Explanation = self.get(&self.servers[0], &path).await?;
        let record = explained
            .records
            .first()
            .with_context(|| format!("{}: no explanation of {name} {rtype}", self.servers[0]))?;
        if !record.shares.is_empty() {
            return Ok(Some(
                record
                    .shares
                    .iter()
                    .find(|s| s.pool == self.pool)
                    .map_or(0.0, |s| s.share),
            ));
        }
        let ours = |c: &String| targets.contains(&c.trim_end_matches('.').to_owned());
        Ok(if record.candidates.iter().all(ours) {
            Some(1.0)
        } else if !record.candidates.iter().any(ours) {
            Some(0.0)
        } else {
            None
        })
    }
}

/// Asks `dns` `n` times (one socket, 500 ms per answer at most) and counts the
/// answers holding one of `targets`.
async fn ask_many(
    dns: SocketAddr,
    query: &[u8],
    n: u32,
    targets: &[String],
) -> anyhow::Result<DialMeasure> {
    let local: SocketAddr = if dns.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(dns).await?;
    let mut measure = DialMeasure {
        server: format!("server {dns}"),
        queries: n,
        ..DialMeasure::default()
    };
    let mut buf = vec![0u8; 4096];
    let mut query = query.to_vec();
    for i in 0..n {
        let id = (i as u16).wrapping_add(1);
        query[..2].copy_from_slice(&id.to_be_bytes());
        socket.send(&query).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        // Skip late answers to earlier queries.
        let reply = loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(Ok(len)) => match Message::from_vec(&buf[..len]) {
                    Ok(reply) if reply.metadata.id == id => break Some(reply),
                    _ => continue,
                },
                _ => break None,
            }
        };
        let Some(reply) = reply else { continue };
        measure.answered += 1;
        let ours = reply.answers.iter().any(|r| {
            let text = match &r.data {
                RData::A(a) => a.to_string(),
                RData::AAAA(a) => a.to_string(),
                RData::CNAME(c) => c.0.to_string(),
                _ => return false,
            };
            targets.contains(&text.trim_end_matches('.').to_owned())
        });
        if ours {
            measure.from_pool += 1;
        }
    }
    Ok(measure)
}
