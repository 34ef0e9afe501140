//! Runbooks generated from the config (pure): for one record, the DNS failover runbook
//! of the field — what serves and what stands by, how to confirm an outage from
//! several vantage points, how to check the standby, the exact `ctl` commands to fail
//! over and back, how to verify at every nameserver, rollback, the checks after and a
//! rehearsal. Generated, so it never drifts from the config it describes.
//!
//! **Every command in a ```` ```sh ```` block runs exactly as printed**: each word is
//! shell-quoted ([`shell_escape`], POSIX single quotes), record types and names are given as `ctl` takes them, and a
//! probe command makes the request its check makes (same URL, method, headers,
//! timeout, TLS options, expected status and body; placeholders replaced as the prober
//! replaces them) and exits 0 exactly when the check would pass. Templates an operator
//! must complete (a promote command, the node to fence) are in ```` ```text ````
//! blocks. `commands` extracts the runnable commands from a runbook's text, for
//! whatever runs them (the tests run every one against real servers).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::{
    AllDown, CheckKind, Config, DbRole, DnsCheck, DynamicRecord, ExecCheck, HttpCheck, PoolChoice,
    PostgresCheck, Selection, SslMode,
};
use crate::model::{DynamicType, EndpointIndex, EndpointTarget, PoolIndex};

/// Where the runbook's commands point.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunbookContext {
    /// How `ctl` and `drill` reach the servers, as arguments (e.g. `["--config",
    /// "/etc/failoverd/failoverd.toml"]` or `["--server", "http://10.0.0.1:9353"]`).
    pub server_args: Vec<String>,
    /// The zone the record is in (absolute).
    #[expect(
        dead_code,
        reason = "never read (found by the issue 22 pub(crate) sweep): use it or remove it"
    )]
    pub zone: Option<String>,
    /// The nameservers to verify at and drill against (`IP:PORT`).
    pub nameservers: Vec<SocketAddr>,
}

/// Why no runbook can be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RunbookError {
    /// No dynamic record of that name (and type).
    #[error("no dynamic record {0} in the configuration")]
    UnknownRecord(String),
}

/// One command of a runbook, as [`commands`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
#[cfg(feature = "testing")]
pub(crate) struct RunbookCommand {
    /// The command line (for `sh -c`).
    pub line: String,
    /// For a probe command, the endpoint it probes (`pool/name`): it exits 0 exactly
    /// when that endpoint's check would pass.
    pub probe: Option<String>,
}

/// The marker that ends a probe command's line: `# probe POOL/NAME: …`.
const PROBE_MARK: &str = "   # probe ";

/// Every runnable command of a runbook (or any Markdown text): the lines of its
/// ```` ```sh ```` blocks, in order (```` ```text ```` templates are left out).
#[cfg_attr(feature = "testing", visibility::make(pub))]
#[cfg(feature = "testing")]
pub(crate) fn commands(markdown: &str) -> Vec<RunbookCommand> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in markdown.lines() {
        let trimmed = line.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && fence.trim() == "sh";
            continue;
        }
        if !in_sh || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let probe = line.rsplit_once(PROBE_MARK).and_then(|(_, rest)| {
            rest.split_once(':')
                .map(|(label, _)| label.trim().to_owned())
        });
        out.push(RunbookCommand {
            line: line.to_owned(),
            probe,
        });
    }
    out
}

/// The runbook of every dynamic record named `name` (one type, or all), in Markdown.
pub(crate) fn render(
    config: &Config,
    name: &str,
    record_type: Option<DynamicType>,
    context: &RunbookContext,
) -> Result<String, RunbookError> {
    let mut name = name.trim().to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    let records: Vec<&DynamicRecord> = config
        .records
        .iter()
        .filter(|r| r.name == name && record_type.is_none_or(|t| t == r.record_type))
        .collect();
    if records.is_empty() {
        return Err(RunbookError::UnknownRecord(name));
    }
    let mut out = String::new();
    for record in records {
        Writer {
            out: &mut out,
            config,
            record,
            context,
        }
        .write();
    }
    Ok(out)
}

/// The nameservers a runbook verifies at when none are given: the specific
/// `[server] listen` addresses of `config`, else (listening on a wildcard) the
/// addresses `zone` gives its own NS names, on the listen port.
pub(crate) fn nameservers(config: &Config, zone: Option<&crate::zone::Zone>) -> Vec<SocketAddr> {
    let specific: Vec<SocketAddr> = config
        .server
        .listen
        .iter()
        .copied()
        .filter(|a| !a.ip().is_unspecified())
        .collect();
    if !specific.is_empty() {
        return specific;
    }
    let port = config.server.listen.first().map_or(53, SocketAddr::port);
    let Some(zone) = zone else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let Some((_, ns)) = zone.apex().rrset(crate::zone::rtype::NS) else {
        return found;
    };
    for target in zone.rdata(ns).iter() {
        let target = target.to_ascii_lowercase();
        let Some(node) = zone.get(&target) else {
            continue;
        };
        let node = zone.node(node);
        for rtype in [crate::zone::rtype::A, crate::zone::rtype::AAAA] {
            if let Some((_, set)) = node.rrset(rtype) {
                for rdata in zone.rdata(set).iter() {
                    let ip = match rdata.len() {
                        4 => <[u8; 4]>::try_from(rdata).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(rdata).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        found.push(SocketAddr::new(ip, port));
                    }
                }
            }
        }
    }
    found
}

/// `words` as one shell command line (each word quoted as it needs).
pub(crate) fn shell_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as one shell word: as it is when it needs no quoting, else in single
/// quotes (POSIX; a `'` or `!` inside is written `'\''`, `'\!'`).
pub(crate) fn quote(word: &str) -> String {
    // Besides what shell_escape leaves bare: `:`, `@` and `%` mean nothing to a shell
    // (addresses, URLs and `@server` stay readable).
    let bare = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=/,.+:@%".contains(c));
    if bare {
        word.to_owned()
    } else {
        shell_escape::unix::escape(word.into()).into_owned()
    }
}

/// Writes one record's runbook.
struct Writer<'a> {
    out: &'a mut String,
    config: &'a Config,
    record: &'a DynamicRecord,
    context: &'a RunbookContext,
}

impl Writer<'_> {
    fn line(&mut self, text: impl AsRef<str>) {
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    /// `failoverd ctl SERVERS ARGS…`, quoted.
    fn ctl(&self, args: &[&str]) -> String {
        let mut words = vec!["failoverd".to_owned(), "ctl".to_owned()];
        words.extend(self.context.server_args.iter().cloned());
        words.extend(args.iter().map(|a| (*a).to_owned()));
        shell_line(&words)
    }

    fn name(&self) -> &str {
        &self.record.name
    }

    fn rtype(&self) -> String {
        self.record.record_type.to_string()
    }

    fn write(mut self) {
        let (config, record) = (self.config, self.record);
        let policy = match record.selection {
            Selection::Failover => "failover (active-passive: the first pool that is up serves)",
            Selection::Weighted => "weighted (active-active: every pool that is up, by weight)",
            Selection::Multivalue => {
                "multivalue (active-active: every healthy endpoint of the pools that are up)"
            }
            Selection::Primary => {
                "primary (follow-the-primary: the one endpoint whose check says it is the database primary)"
            }
        };
        let title = format!("# Runbook: {} {}\n", self.name(), self.rtype());
        self.line(title);
        self.line(
            "Generated from the configuration by `failoverd runbook`; regenerate after every change. \
             Every command in a `sh` block runs as printed.\n",
        );
        self.line(format!(
            "- Policy: {policy}; TTL {} s (all-down TTL {} s).",
            record.ttl.0, record.all_down_ttl.0
        ));
        let all_down = match record.all_down {
            AllDown::FailOpen if record.selection == Selection::Primary => {
                "fail-open (the last agreed primary keeps being answered)".to_owned()
            }
            AllDown::FailOpen => {
                "fail-open (every endpoint is answered as if healthy, but those forced down)"
                    .to_owned()
            }
            AllDown::Fallback(p) => format!("fallback to pool {}", config.pool(p).name),
            AllDown::NoData => "nodata (an empty answer)".to_owned(),
        };
        self.line(format!("- When nothing is up: {all_down}."));
        let lists = self.lists();
        for (who, pools) in &lists {
            let roles: Vec<String> = pools
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let role = match (record.selection, i) {
                        (Selection::Failover, 0) => "primary",
                        (Selection::Failover, _) => "standby",
                        (Selection::Primary, _) => "database node pool",
                        _ => "active",
                    };
                    format!("{role} {}", config.pool(p).name)
                })
                .collect();
            self.line(format!("- For {who}: {}.", roles.join(", then ")));
        }
        self.write_pools(&lists);
        self.write_database();
        if record.selection == Selection::Primary {
            self.write_primary_steps();
            return;
        }
        let primary = lists.first().and_then(|(_, l)| l.first().copied());
        let standby = lists.first().and_then(|(_, l)| l.get(1).copied());
        self.write_failover_steps(primary, standby);
    }

    /// The pool lists: who they serve, and the pools in order.
    fn lists(&self) -> Vec<(String, Vec<PoolIndex>)> {
        match &self.record.pools {
            PoolChoice::Fixed(pools) => vec![("every client".to_owned(), pools.clone())],
            PoolChoice::Geo { by_region, default } => by_region
                .iter()
                .enumerate()
                .filter_map(|(r, list)| {
                    Some((
                        format!("clients in {}", self.config.regions[r].name),
                        list.clone()?,
                    ))
                })
                .chain(std::iter::once((
                    "other clients".to_owned(),
                    default.clone(),
                )))
                .collect(),
        }
    }

    fn write_pools(&mut self, lists: &[(String, Vec<PoolIndex>)]) {
        let config = self.config;
        let mut all_pools: Vec<PoolIndex> =
            lists.iter().flat_map(|(_, l)| l.iter().copied()).collect();
        all_pools.sort_unstable();
        all_pools.dedup();
        self.line("\n## Pools\n");
        self.line("| pool | region | min healthy | endpoints | check |");
        self.line("|---|---|---|---|---|");
        for &p in &all_pools {
            let pool = config.pool(p);
            let endpoints: Vec<String> = pool
                .endpoints
                .iter()
                .map(|&e| {
                    format!(
                        "{} ({})",
                        config.endpoint(e).name,
                        config.endpoint(e).target
                    )
                })
                .collect();
            let check = pool.check.map_or_else(
                || "none (health from force only)".to_owned(),
                |c| {
                    let c = config.check(c);
                    format!(
                        "{} {} every {}, fall {} rise {}",
                        c.name,
                        c.kind.name(),
                        humantime::format_duration(c.interval),
                        c.fall,
                        c.rise
                    )
                },
            );
            let region = pool.region.map_or("-".to_owned(), |r| {
                config.regions[usize::from(r.0)].name.clone()
            });
            self.line(format!(
                "| {} | {region} | {} | {} | {check} |",
                pool.name,
                pool.min_healthy,
                endpoints.join(", ")
            ));
        }
    }

    /// The probe command of every endpoint of `pool` (if it has a check), each
    /// marked with the endpoint it probes.
    fn probe_lines(&mut self, pool: PoolIndex) {
        let config = self.config;
        let pool = config.pool(pool);
        let Some(check) = pool.check.map(|c| config.check(c)) else {
            self.line(format!(
                "# pool {} has no check: its health comes from force alone",
                pool.name
            ));
            return;
        };
        for &e in &pool.endpoints {
            let command = probe_command(&check.kind, check.timeout, config, e);
            self.line(format!(
                "{command}{PROBE_MARK}{}: exits 0 when check {} would pass",
                config.endpoint_label(e),
                check.name
            ));
        }
    }

    fn write_failover_steps(&mut self, primary: Option<PoolIndex>, standby: Option<PoolIndex>) {
        let config = self.config;
        let (name, rtype) = (self.name().to_owned(), self.rtype());
        self.line("\n## 1. Confirm the outage from several vantage points\n");
        self.line("```sh");
        let status = self.ctl(&["status"]);
        self.line(format!(
            "{status}   # every server: states, votes per vantage point, isolation"
        ));
        let explain = self.ctl(&["explain", &name, &rtype]);
        self.line(format!("{explain}   # the answer now, and why"));
        let events = self.ctl(&["events", "--limit", "40"]);
        self.line(format!("{events}   # what changed, when"));
        self.line("```");
        self.line(
            "Trust a quorum, not one prober: an endpoint is down when a majority of the vantage \
             points say so. A server marked ISOLATED hears too few of them and holds its answers.",
        );
        self.line("\n## 2. Confirm the standby is ready\n");
        if let Some(standby) = standby.or(primary) {
            self.line(
                "Each probe command makes the request its check makes and exits 0 when the \
                 check would pass (run it where the vantage points run; a check's \
                 `source_address` is not applied here).\n",
            );
            self.line("```sh");
            self.probe_lines(standby);
            if let Some(primary) = primary.filter(|&p| p != standby) {
                let mut args = vec!["explain".to_owned(), name.clone(), rtype.clone()];
                for &e in &config.pool(primary).endpoints {
                    args.push("--assume".to_owned());
                    args.push(format!("{}=down", config.endpoint_label(e)));
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let what_if = self.ctl(&args);
                self.line(format!(
                    "{what_if}   # what-if: the answer without the primary"
                ));
            }
            self.line("```");
        }
        self.line("\n## 3. Fail over\n");
        self.line("```sh");
        let (fail_over, fail_back) = match (self.record.selection, standby, primary) {
            (Selection::Failover, Some(standby), _) => (
                self.ctl(&[
                    "failover",
                    &name,
                    "--type",
                    &rtype,
                    "--to",
                    &config.pool(standby).name,
                    "--reason",
                    "incident: primary pool down",
                    "--expires",
                    "4h",
                ]),
                self.ctl(&[
                    "release",
                    &name,
                    "--type",
                    &rtype,
                    "--reason",
                    "primary healthy again",
                ]),
            ),
            (_, _, Some(primary)) => (
                format!(
                    "{}   # take the pool out; the others answer",
                    self.ctl(&[
                        "drain",
                        &config.pool(primary).name,
                        "--reason",
                        "incident: pool down",
                        "--expires",
                        "4h",
                    ])
                ),
                self.ctl(&[
                    "undrain",
                    &config.pool(primary).name,
                    "--reason",
                    "primary healthy again",
                ]),
            ),
            _ => (String::new(), String::new()),
        };
        self.line(fail_over);
        self.line("```");
        self.line(
            "Every server must print `ok`; ctl exits 1 otherwise (a server that missed it \
             takes it from a peer once it reaches one; check it in step 4). A change that would \
             leave the record with no healthy pool is refused with the reason.",
        );
        self.write_verify(4);
        self.line("\n## 5. Roll back (fail back)\n");
        match primary {
            Some(primary) => {
                // A failover record with a standby was failed over by a pin; the others
                // by draining the primary pool.
                let pinned = self.record.selection == Selection::Failover && standby.is_some();
                self.write_gradual_failback(primary, fail_back, pinned);
            }
            None => {
                self.line("```sh");
                self.line(fail_back);
                self.line("```");
            }
        }
        self.line(
            "Fail back only when the primary is healthy from every vantage point (step 1); \
             slow start and flap damping ease it back in.",
        );
        self.line("\n## 6. After the failover\n");
        self.line("```sh");
        let overrides = self.ctl(&["overrides"]);
        self.line(format!(
            "{overrides}   # nothing left in force that should not be"
        ));
        let events = self.ctl(&["events"]);
        self.line(format!("{events}   # the timeline for the post-mortem"));
        self.line("```");
        self.line("Alerts: FailoverdFailoverInEffect clears once the primary serves again.");
        self.write_rehearsal(primary);
    }

    /// Gradual failback through the primary pool's traffic dial: 0 → 10 → 50 → 100 %.
    /// After a manual failover the dial holds the primary at 0 % while the failover is
    /// released (`release`, the at-once fail back, is the second command); after a
    /// drain the dial replaces it (a pool holds one override).
    fn write_gradual_failback(&mut self, primary: PoolIndex, release: String, pinned: bool) {
        let (name, rtype) = (self.name().to_owned(), self.rtype());
        let pool = self.config.pool(primary).name.clone();
        self.line(format!(
            "Gradually, with the primary pool's traffic dial (`ctl dial POOL PERCENT`: the pool \
             takes that share of the answers it would get, the rest stays where it is now): \
             0 → 10 → 50 → 100 %. Between steps, watch the primary's errors and latency; \
             `ctl explain` shows the shares every nameserver answers by. To fail back at once \
             instead, run `{release}` alone; `failoverd ctl release {pool}` ends a dial at any \
             step.\n"
        ));
        self.line("```sh");
        let dial = |w: &Self, percent: &str, comment: &str| {
            let reason = format!("fail back: {percent} %");
            format!(
                "{}   # {comment}",
                w.ctl(&["dial", &pool, percent, "--reason", &reason])
            )
        };
        self.line(dial(
            self,
            "0",
            &format!("{pool} takes no traffic yet; its health checks keep running"),
        ));
        if pinned {
            self.line(format!(
                "{release}   # the failover ends; the dial holds {pool} at 0 %"
            ));
        }
        let explain = self.ctl(&["explain", &name, &rtype]);
        self.line(dial(
            self,
            "10",
            &format!("{pool} takes 10 % of its traffic"),
        ));
        self.line(format!("{explain}   # the shares: {pool} 10 %"));
        self.line(dial(self, "50", &format!("{pool} takes half")));
        self.line(format!("{explain}   # the shares: {pool} 50 %"));
        let clear = self.ctl(&["dial", &pool, "--clear", "--reason", "fail back: 100 %"]);
        self.line(format!("{clear}   # 100 %: the dial ends"));
        self.line(format!("{explain}   # the primary answers again"));
        self.line("```");
    }

    /// A `dig` per nameserver (and per region's network, for a geo record with ECS).
    fn write_verify(&mut self, step: u32) {
        let (name, rtype) = (self.name().to_owned(), self.rtype());
        self.line(format!("\n## {step}. Verify at every nameserver\n"));
        if self.context.nameservers.is_empty() {
            self.line(
                "No nameserver address is known: give `failoverd runbook --dns IP:PORT` \
                 (repeatable) to print the commands.",
            );
            return;
        }
        let mut subnets: Vec<(String, String)> = Vec::new();
        if let (PoolChoice::Geo { by_region, .. }, true) = (&self.record.pools, self.config.geo.ecs)
        {
            for (r, list) in by_region.iter().enumerate() {
                let region = &self.config.regions[r];
                if let (Some(_), Some(net)) = (list, region.networks.first()) {
                    subnets.push((region.name.clone(), net.to_string()));
                }
            }
        }
        self.line("```sh");
        for ns in self.context.nameservers.clone() {
            let mut words = vec![
                "dig".to_owned(),
                "+short".to_owned(),
                "+norec".to_owned(),
                "-p".to_owned(),
                ns.port().to_string(),
                format!("@{}", ns.ip()),
                name.clone(),
                rtype.clone(),
            ];
            self.line(format!("{}   # nameserver {ns}", shell_line(&words)));
            for (region, net) in &subnets {
                words.insert(2, format!("+subnet={net}"));
                self.line(format!(
                    "{}   # nameserver {ns}, a client in {region}",
                    shell_line(&words)
                ));
                words.remove(2);
            }
        }
        self.line("```");
        self.line(format!(
            "Every nameserver must give the same answer; caching resolvers follow within the TTL ({} s).",
            self.record.ttl.0
        ));
    }

    /// A drill of the primary pool's first endpoint that takes traffic, when it is in
    /// every answer while all is healthy (what a drill measures).
    fn write_rehearsal(&mut self, primary: Option<PoolIndex>) {
        let config = self.config;
        let serving = |e: &EndpointIndex| {
            let e = config.endpoint(*e);
            !e.weight.is_drained() && e.forced.is_none()
        };
        let answered: Vec<EndpointIndex> = match (&self.record.pools, self.record.selection) {
            (PoolChoice::Geo { .. }, _) => Vec::new(),
            (PoolChoice::Fixed(_), Selection::Failover) => primary
                .map(|p| config.pool(p).endpoints.clone())
                .unwrap_or_default(),
            (PoolChoice::Fixed(pools), _) => pools
                .iter()
                .flat_map(|&p| config.pool(p).endpoints.iter().copied())
                .collect(),
        };
        let answered: Vec<EndpointIndex> = answered.into_iter().filter(serving).collect();
        let in_every_answer =
            !answered.is_empty() && answered.len() <= usize::from(self.record.max_answers);
        let endpoint = primary
            .and_then(|p| config.pool(p).endpoints.iter().copied().find(serving))
            .filter(|e| in_every_answer && answered.contains(e));
        let Some(endpoint) = endpoint else {
            self.line(
                "
## Rehearse
",
            );
            self.line(
                "A drill measures an endpoint that is in every answer while all is healthy; this                  record's answers vary by client or draw, so drill a failover record of the same                  pools instead.",
            );
            return;
        };
        if self.context.nameservers.is_empty() {
            return;
        }
        let mut words = vec![
            "failoverd".to_owned(),
            "drill".to_owned(),
            self.name().to_owned(),
            "--type".to_owned(),
            self.rtype(),
            "--endpoint".to_owned(),
            config.endpoint_label(endpoint),
        ];
        words.extend(self.context.server_args.iter().cloned());
        for ns in &self.context.nameservers {
            words.push("--dns".to_owned());
            words.push(ns.to_string());
        }
        words.extend(["--out".to_owned(), "drill-report".to_owned()]);
        self.line("\n## Rehearse\n");
        self.line(
            "In calm times, measure detection and recovery: the drill forces the endpoint down \
             on every server, watches every nameserver answer without it, releases it and \
             watches it come back (it refuses to start while a nameserver answers without it).\n",
        );
        self.line("```sh");
        self.line(shell_line(&words));
        self.line("```");
    }

    /// The database section: what decides the primary, and the failover gates.
    fn write_database(&mut self) {
        let (config, record) = (self.config, self.record);
        let describe_check = |pool: PoolIndex| -> String {
            let pool = config.pool(pool);
            match pool.check.map(|c| config.check(c)) {
                Some(check) => match &check.kind {
                    CheckKind::Postgres(pg) => format!(
                        "postgres check {} (role {}{}, user {}, database {})",
                        check.name,
                        pg.role.name(),
                        pg.max_lag
                            .map(|l| format!(", max_lag {}", humantime::format_duration(l)))
                            .unwrap_or_default(),
                        pg.user,
                        pg.database
                    ),
                    CheckKind::Http(h) => format!(
                        "{} check {} of {}:{} (Patroni's REST API, if it is one)",
                        check.kind.name(),
                        check.name,
                        h.path,
                        h.port
                    ),
                    other => format!("{} check {}", other.name(), check.name),
                },
                None => "no check (health from force only)".to_owned(),
            }
        };
        if record.selection == Selection::Primary {
            self.line("\n## Database: follow the primary\n");
            self.line(
                "failoverd promotes nothing and fences nothing: your orchestrator (Patroni, \
                 repmgr, a cloud service) does. The record answers the one endpoint whose check \
                 says it is the primary:\n",
            );
            if let PoolChoice::Fixed(pools) = &record.pools {
                for &p in pools {
                    self.line(format!(
                        "- pool {}: {}",
                        config.pool(p).name,
                        describe_check(p)
                    ));
                }
            }
            self.line(format!(
                "- Two claim primary (split brain): {} (event `primary_conflict`, metric \
                 failoverd_record_primary_conflict, alert FailoverdPrimaryConflict). Never both.",
                match record.on_conflict {
                    crate::config::OnConflict::Hold =>
                        "the last agreed primary keeps being answered",
                    crate::config::OnConflict::None => "nothing is answered (NODATA)",
                }
            ));
            self.line(format!(
                "- None claims (promotion under way): {}.",
                match record.all_down {
                    AllDown::FailOpen => "the last agreed primary keeps being answered".to_owned(),
                    AllDown::NoData => "nothing is answered (NODATA)".to_owned(),
                    AllDown::Fallback(p) => format!("pool {} is answered", config.pool(p).name),
                }
            ));
        }
        if !record.gates.is_empty() {
            self.line("\n## Database: failover gates (RPO guard)\n");
            for gate in &record.gates {
                self.line(format!(
                    "- Traffic moves to {} only while pool {} is up: {}.",
                    config.pool(gate.pool).name,
                    config.pool(gate.gate).name,
                    describe_check(gate.gate)
                ));
            }
            let (name, rtype) = (self.name().to_owned(), self.rtype());
            let gated = config.pool(record.gates[0].pool).name.clone();
            let explain = self.ctl(&["explain", &name, &rtype]);
            self.line(format!(
                "\nA held pool counts as down; `{explain}` names the gate and the replica's lag. \
                 To accept the data loss and move anyway, an operator's failover overrides the gate:\n"
            ));
            self.line("```text");
            self.line(self.ctl(&[
                "failover",
                &name,
                "--type",
                &rtype,
                "--to",
                &gated,
                "--reason",
                "accepting data loss: replica lag",
            ]));
            self.line("```");
        }
    }

    /// The steps of a `primary` record: confirm, promote with the orchestrator,
    /// verify, handle a split brain.
    fn write_primary_steps(&mut self) {
        let config = self.config;
        let (name, rtype) = (self.name().to_owned(), self.rtype());
        self.line("\n## 1. Confirm who is primary\n");
        self.line("```sh");
        let explain = self.ctl(&["explain", &name, &rtype]);
        self.line(format!("{explain}   # the primary answered, and why"));
        if let PoolChoice::Fixed(pools) = &self.record.pools {
            for &p in pools {
                self.probe_lines(p);
            }
        }
        self.line("```");
        self.line("\n## 2. Promote (with your orchestrator, not failoverd)\n");
        self.line(
            "Fence the old primary first (stop it, or let the orchestrator do so), then promote \
             the standby (`patronictl failover`, `pg_ctl promote`, the cloud API). failoverd \
             answers the new primary once its check passes `rise` times. Rehearse and time it \
             (a template: put your promote command in place of PROMOTE-COMMAND):\n",
        );
        let endpoints: Vec<String> = match &self.record.pools {
            PoolChoice::Fixed(pools) => pools
                .iter()
                .flat_map(|&p| config.pool(p).endpoints.iter())
                .map(|&e| config.endpoint_label(e))
                .collect(),
            PoolChoice::Geo { .. } => Vec::new(),
        };
        let candidate = endpoints.last().cloned().unwrap_or_default();
        let mut words = vec![
            "failoverd".to_owned(),
            "drill".to_owned(),
            name.clone(),
            "--type".to_owned(),
            rtype.clone(),
            "--mode".to_owned(),
            "promote".to_owned(),
            "--endpoint".to_owned(),
            candidate,
            "--promote".to_owned(),
            "PROMOTE-COMMAND".to_owned(),
        ];
        words.extend(self.context.server_args.iter().cloned());
        for ns in &self.context.nameservers {
            words.push("--dns".to_owned());
            words.push(ns.to_string());
        }
        self.line("```text");
        self.line(shell_line(&words));
        self.line("```");
        self.write_verify(3);
        self.line("\n## 4. Split brain\n");
        self.line(format!(
            "FailoverdPrimaryConflict fires while two nodes pass the primary check. Fence the \
             one that must not be primary; `{}` shows who claimed what, and an operator's force \
             takes a node out of the election at once (a template: choose the node, one of {}):\n",
            self.ctl(&["events"]),
            endpoints.join(", ")
        ));
        self.line("```text");
        self.line(self.ctl(&[
            "force",
            "POOL/NAME",
            "down",
            "--reason",
            "split brain: fenced",
        ]));
        self.line("```");
    }
}

/// A shell command that probes endpoint `e` as a check of `kind` with `timeout`
/// does, and exits 0 exactly when the check would pass.
pub(crate) fn probe_command(
    kind: &CheckKind,
    timeout: Duration,
    config: &Config,
    e: EndpointIndex,
) -> String {
    let endpoint = config.endpoint(e);
    match kind {
        CheckKind::Http(http) => http_probe(http, timeout, &endpoint.target),
        CheckKind::Tcp { port } => {
            let script = format!(
                "exec 3<>/dev/tcp/{}/{port} && echo connected",
                endpoint.target
            );
            shell_line(&["timeout", &seconds(timeout), "bash", "-c", &script])
        }
        CheckKind::Dns(dns) => dns_probe(dns, timeout, &endpoint.target),
        CheckKind::Postgres(pg) => postgres_probe(pg, timeout, &endpoint.target),
        CheckKind::Exec(exec) => exec_probe(exec, timeout, config, e),
    }
}

/// A duration in seconds as `timeout`, `curl --max-time` take it (`0.8`, `2`).
fn seconds(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms % 1000 == 0 {
        (ms / 1000).to_string()
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
            .trim_end_matches('0')
            .to_owned()
    }
}

/// An HTTP(S) check as `curl`: the same URL (the `host` in it, connecting to the
/// endpoint's address; no URL globbing), method, headers and user agent, timeout, TLS
/// options, no proxy and no redirects; `awk` judges the status (and body) as the check does.
fn http_probe(check: &HttpCheck, timeout: Duration, target: &EndpointTarget) -> String {
    let scheme = if check.tls { "https" } else { "http" };
    // --globoff: `[]` and `{}` in the path are the path's, not curl's URL patterns.
    let mut words: Vec<String> = ["curl", "-sS", "--globoff", "--noproxy", "*", "--max-time"]
        .map(str::to_owned)
        .to_vec();
    words.push(seconds(timeout));
    if check.method.eq_ignore_ascii_case("HEAD") {
        words.push("--head".to_owned());
    } else {
        words.push("-X".to_owned());
        words.push(check.method.clone());
    }
    if check.tls && !check.tls_verify {
        words.push("--insecure".to_owned());
    }
    if let Some(ca) = &check.ca_file {
        words.push("--cacert".to_owned());
        words.push(ca.display().to_string());
    }
    for (name, value) in &check.headers {
        words.push("-H".to_owned());
        words.push(format!("{name}: {value}"));
    }
    if !check
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
    {
        words.push("-A".to_owned());
        words.push(concat!("failoverd/", env!("CARGO_PKG_VERSION")).to_owned());
    }
    let url_host = match (&check.host, target) {
        (Some(host), EndpointTarget::Address(ip)) => {
            let ip = match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            };
            words.push("--resolve".to_owned());
            words.push(format!("{host}:{}:{ip}", check.port));
            host.clone()
        }
        (Some(host), EndpointTarget::Host(_)) => host.clone(),
        (None, EndpointTarget::Address(IpAddr::V6(ip))) => format!("[{ip}]"),
        (None, EndpointTarget::Address(IpAddr::V4(ip))) => ip.to_string(),
        (None, EndpointTarget::Host(host)) => host.trim_end_matches('.').to_owned(),
    };
    words.push("-w".to_owned());
    words.push("\\n%{http_code}".to_owned());
    words.push(format!(
        "{scheme}://{url_host}:{}{}",
        check.port, check.path
    ));
    let statuses: Vec<String> = check
        .expect_status
        .iter()
        .map(|&(low, high)| {
            if low == high {
                format!("c == {low}")
            } else {
                format!("(c >= {low} && c <= {high})")
            }
        })
        .collect();
    let statuses = if statuses.is_empty() {
        "1".to_owned()
    } else {
        statuses.join(" || ")
    };
    let (body_test, env) = match &check.expect_body {
        Some(body) => (
            " && index(substr(b, 1, 65536), ENVIRON[\"W\"]) > 0".to_owned(),
            format!("W={} ", quote(body)),
        ),
        None => (String::new(), String::new()),
    };
    let program = format!(
        "{{ if (NR > 1) b = b l \"\\n\"; l = $0 }} END {{ c = l + 0; ok = ({statuses}){body_test}; \
         print \"status \" c \": \" (ok ? \"up\" : \"down\"); exit (ok ? 0 : 1) }}"
    );
    format!("{} | {env}awk {}", shell_line(&words), quote(&program))
}

/// A DNS check as `dig`: the same query (recursion desired, no EDNS), one try within
/// the timeout; `awk` judges the response code and answer count as the check does.
fn dns_probe(check: &DnsCheck, timeout: Duration, target: &EndpointTarget) -> String {
    let time = timeout.as_secs_f64().ceil().max(1.0) as u64;
    let words = [
        "dig".to_owned(),
        format!("@{target}"),
        "-p".to_owned(),
        check.port.to_string(),
        "+rec".to_owned(),
        "+noedns".to_owned(),
        "+noadflag".to_owned(),
        "+tries=1".to_owned(),
        format!("+time={time}"),
        check.query_name.clone(),
        crate::zone::store::type_name(check.query_type),
    ];
    let answers = if check.expect_answer { " && n > 0" } else { "" };
    let program = format!(
        "/status:/ {{ s = $6; sub(/,$/, \"\", s) }} /ANSWER: / {{ n = $0; sub(/.*ANSWER: /, \"\", n); n = n + 0 }} \
         END {{ ok = s == \"{}\"{answers}; print \"rcode \" s \", \" n + 0 \" answers: \" (ok ? \"up\" : \"down\"); exit (ok ? 0 : 1) }}",
        rcode_name(check.expect_rcode)
    );
    format!("{} | awk {}", shell_line(&words), quote(&program))
}

/// The mnemonic `dig` prints for a response code.
fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        other => format!("RESERVED{other}"),
    }
}

/// A `postgres` check as `psql`: the same login (TLS mode, server name, CA) and
/// query, never prompting for a password (give it in `PGPASSWORD` or `~/.pgpass`);
/// `awk` judges the role and replay lag as the check does.
fn postgres_probe(check: &PostgresCheck, timeout: Duration, target: &EndpointTarget) -> String {
    let mut conninfo = match (&check.host, target) {
        (Some(name), EndpointTarget::Address(ip)) => format!("host={name} hostaddr={ip}"),
        (_, target) => format!("host={target}"),
    };
    let _ = write!(
        conninfo,
        " port={} user={} dbname={} connect_timeout={}",
        check.port,
        check.user,
        check.database,
        timeout.as_secs_f64().ceil().max(2.0) as u64
    );
    match check.sslmode {
        SslMode::Disable => conninfo.push_str(" sslmode=disable"),
        SslMode::Require => conninfo.push_str(" sslmode=require"),
        SslMode::VerifyFull => {
            conninfo.push_str(" sslmode=verify-full");
            match &check.ca_file {
                Some(ca) => {
                    let _ = write!(conninfo, " sslrootcert={}", ca.display());
                }
                None => conninfo.push_str(" sslrootcert=system"),
            }
        }
    }
    let words = [
        "timeout".to_owned(),
        seconds(timeout),
        "psql".to_owned(),
        "-XAtw".to_owned(),
        "-c".to_owned(),
        crate::probe::postgres::QUERY.to_owned(),
        conninfo,
    ];
    let replica = match check.max_lag {
        Some(max) => format!(
            "$1 == \"true\" && ($2 == \"true\" || ($3 != \"\" && $3 + 0 <= {}))",
            max.as_secs_f64()
        ),
        None => "$1 == \"true\"".to_owned(),
    };
    let condition = match check.role {
        DbRole::Primary => "$1 == \"false\"".to_owned(),
        DbRole::Replica => replica,
        DbRole::Any => format!("$1 == \"false\" || ({replica})"),
    };
    let program = format!(
        "{{ ok = {condition}; print ($1 == \"false\" ? \"primary\" : \"in recovery, lag \" ($3 == \"\" ? \"unknown\" : $3 \" s\")) \": \" (ok ? \"up\" : \"down\") }} \
         END {{ exit (ok ? 0 : 1) }}"
    );
    format!("{} | awk -F'|' {}", shell_line(&words), quote(&program))
}

/// An `exec` check as the prober runs it: the same program and arguments
/// (placeholders replaced), a cleared environment with `PATH`, `LANG`, the check's
/// passed-through variables and `FAILOVERD_*`, bounded by the check's timeout.
fn exec_probe(check: &ExecCheck, timeout: Duration, config: &Config, e: EndpointIndex) -> String {
    let target = config.endpoint(e).target.to_string();
    let label = config.endpoint_label(e);
    let mut words = vec![
        "timeout".to_owned(),
        seconds(timeout),
        "env".to_owned(),
        "-i".to_owned(),
    ];
    // Variables taken from the caller's environment, as the prober takes them from
    // its own: expanded by the shell, so written unquoted.
    let mut passed = vec!["PATH=\"$PATH\"".to_owned(), "LANG=\"${LANG-}\"".to_owned()];
    passed.extend(
        check
            .env
            .iter()
            .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .map(|name| format!("{name}=\"${{{name}-}}\"")),
    );
    let mut tail = vec![
        format!("FAILOVERD_ADDRESS={target}"),
        format!("FAILOVERD_ENDPOINT={label}"),
    ];
    if let Some(port) = check.port {
        tail.push(format!("FAILOVERD_PORT={port}"));
    }
    tail.extend(check.command.iter().map(|arg| match arg.as_str() {
        "{address}" => target.clone(),
        "{endpoint}" => label.clone(),
        other => other.to_owned(),
    }));
    words.iter_mut().for_each(|w| *w = quote(w));
    words.extend(passed);
    words.extend(tail.iter().map(|w| quote(w)));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    fn context() -> RunbookContext {
        RunbookContext {
            server_args: vec!["--config".into(), "/etc/failoverd/failoverd.toml".into()],
            zone: Some("gslb.example.com.".into()),
            nameservers: vec!["127.0.0.1:5353".parse().unwrap()],
        }
    }

    #[test]
    fn a_failover_record_gets_its_commands() {
        let (config, _) = Config::load(ConfigSource::embedded()).unwrap();
        let text = render(&config, "www.gslb.example.com", None, &context()).unwrap();
        for want in [
            "# Runbook: www.gslb.example.com. A",
            "primary web-eu, then standby web-us",
            "failoverd ctl --config /etc/failoverd/failoverd.toml failover www.gslb.example.com. --type A --to web-us --reason 'incident: primary pool down' --expires 4h",
            "release www.gslb.example.com. --type A",
            "--assume web-eu/eu-1=down --assume web-eu/eu-2=down",
            "dig +short +norec -p 5353 @127.0.0.1 www.gslb.example.com. A",
            "failoverd drill www.gslb.example.com. --type A --endpoint web-eu/eu-1 --config /etc/failoverd/failoverd.toml --dns 127.0.0.1:5353",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        let demo = render(&config, "demo.gslb.example.com", None, &context()).unwrap();
        assert!(
            demo.contains(
                "curl -sS --globoff --noproxy '*' --max-time 0.3 -X GET -A failoverd/0.1.0 -w '\\n%{http_code}' http://127.0.0.3:8080/ | awk"
            ),
            "{demo}"
        );
        let weighted = render(&config, "api.gslb.example.com", None, &context()).unwrap();
        assert!(weighted.contains("drain web-eu"), "{weighted}");
        assert!(render(&config, "nope.gslb.example.com", None, &context()).is_err());
    }

    #[test]
    fn fail_back_steps_the_primary_pools_dial_0_10_50_100() {
        let (config, _) = Config::load(ConfigSource::embedded()).unwrap();
        let ctl = "failoverd ctl --config /etc/failoverd/failoverd.toml";
        // A failover record: the dial holds the primary at 0 % while the failover is
        // released, then steps up.
        let text = render(&config, "www.gslb.example.com", None, &context()).unwrap();
        let lines: Vec<String> = commands(&text).into_iter().map(|c| c.line).collect();
        let at = |want: &str| {
            lines
                .iter()
                .position(|l| l.starts_with(want))
                .unwrap_or_else(|| panic!("no {want:?} in:\n{text}"))
        };
        let steps = [
            at(&format!("{ctl} dial web-eu 0 --reason 'fail back: 0 %'")),
            at(&format!("{ctl} release www.gslb.example.com. --type A")),
            at(&format!("{ctl} dial web-eu 10 --reason 'fail back: 10 %'")),
            at(&format!("{ctl} dial web-eu 50 --reason 'fail back: 50 %'")),
            at(&format!(
                "{ctl} dial web-eu --clear --reason 'fail back: 100 %'"
            )),
        ];
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "{text}");
        // A weighted record was failed over by a drain: the dial replaces it, no
        // release between.
        let text = render(&config, "api.gslb.example.com", None, &context()).unwrap();
        let lines: Vec<String> = commands(&text).into_iter().map(|c| c.line).collect();
        let dial0 = lines
            .iter()
            .position(|l| l.contains(" dial web-eu 0 "))
            .unwrap();
        assert!(lines[dial0 + 1].contains(" dial web-eu 10 "), "{text}");
    }

    #[test]
    fn commands_come_from_sh_blocks_with_probes_marked() {
        let text = "intro `not this`\n```sh\nfailoverd ctl status   # a comment\n\
                    curl -sS x | awk 1   # probe web/a: exits 0 when check web would pass\n\
                    # a comment line\n```\n```text\nfailoverd drill --promote CMD\n```\n";
        let found = commands(text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].probe, None);
        assert_eq!(found[1].probe.as_deref(), Some("web/a"));
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(
            shell_line(&["curl", "http://h/health?a=1&b=$(touch x)", "it's"]),
            "curl 'http://h/health?a=1&b=$(touch x)' 'it'\\''s'"
        );
        assert_eq!(seconds(Duration::from_millis(800)), "0.8");
        assert_eq!(seconds(Duration::from_millis(2000)), "2");
        assert_eq!(seconds(Duration::from_millis(1250)), "1.25");
    }

    #[test]
    fn exec_checks_print_as_the_prober_runs_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zones");
        let text = format!(
            r#"
version = 1
[zones]
directory = {dir:?}
files = ["example.test.zone"]
[checks.file]
type = "exec"
command = ["sh", "-c", "test \"$FAILOVERD_ENDPOINT $FAILOVERD_PORT $0 $1\" = 'web/a 8080 127.0.0.2 web/a'", "{{address}}", "{{endpoint}}"]
port = 8080
[pools.web]
check = "file"
endpoints = [{{ address = "127.0.0.2", name = "a" }}]
[[records]]
name = "app.example.test"
type = "A"
policy = "failover"
pools = ["web"]
"#,
            dir = dir.display().to_string()
        );
        let (config, _) = Config::load(ConfigSource::from_text(text, dir.clone())).unwrap();
        let book = render(
            &config,
            "app.example.test",
            None,
            &RunbookContext::default(),
        )
        .unwrap();
        let command = commands(&book)
            .into_iter()
            .find(|c| c.probe.as_deref() == Some("web/a"))
            .unwrap_or_else(|| panic!("no exec command in:\n{book}"));
        let line = command.line.split(PROBE_MARK).next().unwrap();
        assert_eq!(
            line,
            "timeout 0.8 env -i PATH=\"$PATH\" LANG=\"${LANG-}\" FAILOVERD_ADDRESS=127.0.0.2 \
             FAILOVERD_ENDPOINT=web/a FAILOVERD_PORT=8080 sh -c \
             'test \"$FAILOVERD_ENDPOINT $FAILOVERD_PORT $0 $1\" = '\\''web/a 8080 127.0.0.2 web/a'\\''' \
             127.0.0.2 web/a"
        );
        // Runnable exactly as printed: the check's own test passes.
        let status = std::process::Command::new("sh")
            .args(["-c", &command.line])
            .status()
            .unwrap();
        assert!(status.success(), "{}", command.line);
    }

    #[test]
    fn database_records_and_gates_get_their_section() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let (config, _) = Config::load(ConfigSource::from_file(&path).unwrap()).unwrap();
        let db = render(&config, "db.gslb.example.com", None, &context()).unwrap();
        for want in [
            "## Database: follow the primary",
            "pool db-eu: postgres check pg-primary (role primary, user failoverd, database postgres)",
            "failoverd promotes nothing and fences nothing",
            "host=192.0.2.50 port=5432 user=failoverd dbname=postgres connect_timeout=2 sslmode=require",
            "--mode promote --endpoint db-us/pg-us --promote PROMOTE-COMMAND",
            "FailoverdPrimaryConflict",
        ] {
            assert!(db.contains(want), "missing {want:?} in:\n{db}");
        }
        assert!(
            !db.contains("ctl --config /etc/failoverd/failoverd.toml failover db"),
            "{db}"
        );
        let www = render(&config, "www.gslb.example.com", None, &context()).unwrap();
        assert!(
            www.contains("Traffic moves to web-us only while pool db-us-lag is up: postgres check pg-lag (role any, max_lag 10s"),
            "{www}"
        );
        assert!(
            www.contains("--resolve www.gslb.example.com:443:203.0.113.10"),
            "{www}"
        );
    }
}
