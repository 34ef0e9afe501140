//! Runbooks generated from the config (pure): for one record, the DNS failover runbook
//! of the field — what serves and what stands by, how to confirm an outage from
//! several vantage points, how to check the standby, the exact `ctl` commands to fail
//! over and back, how to verify at every nameserver, rollback and the checks after.
//! Generated, so it never drifts from the config it describes.

use std::fmt::Write as _;

use crate::config::{AllDown, CheckKind, Config, DynamicRecord, PoolChoice, Selection};
use crate::model::{DynamicType, EndpointIndex, PoolIndex};

/// Where the runbook's commands point.
#[derive(Clone, Debug, Default)]
pub struct RunbookContext {
    /// How `ctl` is told the config (e.g. `--config /etc/failoverd/failoverd.toml`).
    pub ctl_config: String,
    /// The zone the record is in (absolute), for the NS lookup.
    pub zone: Option<String>,
}

/// Why no runbook can be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunbookError {
    /// No dynamic record of that name (and type).
    #[error("no dynamic record {0} in the configuration")]
    UnknownRecord(String),
}

/// The runbook of every dynamic record named `name` (one type, or all), in Markdown.
pub fn render(
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
        write_record(&mut out, config, record, context);
    }
    Ok(out)
}

fn write_record(
    out: &mut String,
    config: &Config,
    record: &DynamicRecord,
    context: &RunbookContext,
) {
    let ctl = format!("failoverd ctl {}", context.ctl_config)
        .trim_end()
        .to_owned();
    let (name, rtype) = (&record.name, record.record_type);
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
    let _ = writeln!(out, "# Runbook: {name} {rtype}\n");
    let _ = writeln!(
        out,
        "Generated from the configuration by `failoverd runbook`; regenerate after every change.\n"
    );
    let _ = writeln!(
        out,
        "- Policy: {policy}; TTL {} s (all-down TTL {} s).",
        record.ttl.0, record.all_down_ttl.0
    );
    let all_down = match record.all_down {
        AllDown::FailOpen if record.selection == Selection::Primary => {
            "fail-open (the last agreed primary keeps being answered)".to_owned()
        }
        AllDown::FailOpen => {
            "fail-open (every endpoint is answered as if healthy, but those forced down)".to_owned()
        }
        AllDown::Fallback(p) => format!("fallback to pool {}", config.pool(p).name),
        AllDown::NoData => "nodata (an empty answer)".to_owned(),
    };
    let _ = writeln!(out, "- When nothing is up: {all_down}.");
    let lists: Vec<(String, Vec<PoolIndex>)> = match &record.pools {
        PoolChoice::Fixed(pools) => vec![("every client".to_owned(), pools.clone())],
        PoolChoice::Geo { by_region, default } => by_region
            .iter()
            .enumerate()
            .filter_map(|(r, list)| {
                Some((
                    format!("clients in {}", config.regions[r].name),
                    list.clone()?,
                ))
            })
            .chain(std::iter::once((
                "other clients".to_owned(),
                default.clone(),
            )))
            .collect(),
    };
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
        let _ = writeln!(out, "- For {who}: {}.", roles.join(", then "));
    }
    let mut all_pools: Vec<PoolIndex> = lists.iter().flat_map(|(_, l)| l.iter().copied()).collect();
    all_pools.sort_unstable();
    all_pools.dedup();
    let _ = writeln!(out, "\n## Pools\n");
    let _ = writeln!(out, "| pool | region | min healthy | endpoints | check |");
    let _ = writeln!(out, "|---|---|---|---|---|");
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
                    "{} {} every {:?}, fall {} rise {}",
                    c.name,
                    c.kind.name(),
                    c.interval,
                    c.fall,
                    c.rise
                )
            },
        );
        let region = pool.region.map_or("-".to_owned(), |r| {
            config.regions[usize::from(r.0)].name.clone()
        });
        let _ = writeln!(
            out,
            "| {} | {region} | {} | {} | {check} |",
            pool.name,
            pool.min_healthy,
            endpoints.join(", ")
        );
    }
    let primary = lists.first().and_then(|(_, l)| l.first().copied());
    let standby = lists.first().and_then(|(_, l)| l.get(1).copied());
    write_database(out, config, record, &ctl);
    if record.selection == Selection::Primary {
        write_primary_steps(out, config, record, &ctl, context);
        return;
    }

    let _ = writeln!(
        out,
        "\n## 1. Confirm the outage from several vantage points\n"
    );
    let _ = writeln!(
        out,
        "```sh\n{ctl} status                    # every server: states, votes per vantage point, isolation"
    );
    let _ = writeln!(
        out,
        "{ctl} explain {name} {rtype}     # the answer now, and why\n{ctl} events --since 0 | tail -40  # what changed, when\n```"
    );
    let _ = writeln!(
        out,
        "Trust a quorum, not one prober: an endpoint is down when a majority of the vantage \
         points say so. A server marked ISOLATED hears too few of them and holds its answers."
    );
    let _ = writeln!(out, "\n## 2. Confirm the standby is ready\n");
    if let Some(standby) = standby.or(primary) {
        let pool = config.pool(standby);
        let _ = writeln!(out, "```sh");
        for &e in &pool.endpoints {
            let endpoint = config.endpoint(e);
            if let Some(command) = pool
                .check
                .map(|c| probe_command(&config.check(c).kind, config, e))
            {
                let _ = writeln!(out, "{command}   # {}/{}", pool.name, endpoint.name);
            }
        }
        if let Some(primary) = primary.filter(|&p| p != standby) {
            let assume: Vec<String> = config
                .pool(primary)
                .endpoints
                .iter()
                .map(|&e| format!("--assume {}={}", config.endpoint_label(e), "down"))
                .collect();
            let _ = writeln!(
                out,
                "{ctl} explain {name} {rtype} {}   # what-if: the answer without the primary",
                assume.join(" ")
            );
        }
        let _ = writeln!(out, "```");
    }
    let _ = writeln!(out, "\n## 3. Fail over\n");
    let _ = writeln!(out, "```sh");
    match (record.selection, standby) {
        (Selection::Failover, Some(standby)) => {
            let _ = writeln!(
                out,
                "{ctl} failover {name} --type {rtype} --to {} --reason \"INCIDENT: …\" --expires 4h",
                config.pool(standby).name
            );
        }
        _ => {
            if let Some(primary) = primary {
                let _ = writeln!(
                    out,
                    "{ctl} drain {} --reason \"INCIDENT: …\" --expires 4h   # take the pool out; the others answer",
                    config.pool(primary).name
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "```\nEvery server must print `ok`; ctl exits 1 otherwise (a server that missed it catches up from its peers; check it in step 4)."
    );
    let zone = context.zone.clone().unwrap_or_else(|| name.clone());
    let _ = writeln!(out, "\n## 4. Verify at every nameserver\n");
    let _ = writeln!(
        out,
        "```sh\nfor ns in $(dig +short NS {zone}); do echo \"$ns: $(dig +short +norec @$ns {name} {rtype} | tr '\\n' ' ')\"; done\n```"
    );
    let _ = writeln!(
        out,
        "Every nameserver must give the standby's answer now; caching resolvers follow within the TTL ({} s).",
        record.ttl.0
    );
    let _ = writeln!(out, "\n## 5. Roll back (fail back)\n");
    let release = match (record.selection, standby) {
        (Selection::Failover, Some(_)) => {
            format!("{ctl} release {name} --type {rtype} --reason \"primary healthy again\"")
        }
        _ => primary.map_or_else(String::new, |p| {
            format!(
                "{ctl} undrain {} --reason \"primary healthy again\"",
                config.pool(p).name
            )
        }),
    };
    let _ = writeln!(
        out,
        "```sh\n{release}\n{ctl} explain {name} {rtype}     # the primary answers again\n```\n\
         Fail back only when the primary is healthy from every vantage point (step 1); \
         slow start and flap damping ease it back in."
    );
    let _ = writeln!(out, "\n## 6. After the failover\n");
    let _ = writeln!(
        out,
        "- `{ctl} overrides`: nothing left in force that should not be (every override has an expiry).\n\
         - `{ctl} events`: the timeline for the post-mortem (detection, override, answer changes).\n\
         - Alerts: FailoverdFailoverInEffect clears once the primary serves again.\n\
         - Rehearse: `failoverd drill {name} --endpoint POOL/NAME` measures detection and recovery.\n"
    );
}

/// The database section: what decides the primary, and the failover gates.
fn write_database(out: &mut String, config: &Config, record: &DynamicRecord, ctl: &str) {
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
        let _ = writeln!(
            out,
            "\n## Database: follow the primary
"
        );
        let _ = writeln!(
            out,
            "failoverd promotes nothing and fences nothing: your orchestrator (Patroni, \
             repmgr, a cloud service) does. The record answers the one endpoint whose check \
             says it is the primary:\n"
        );
        if let PoolChoice::Fixed(pools) = &record.pools {
            for &p in pools {
                let _ = writeln!(out, "- pool {}: {}", config.pool(p).name, describe_check(p));
            }
        }
        let _ = writeln!(
            out,
            "- Two claim primary (split brain): {} (event `primary_conflict`, metric \
             failoverd_record_primary_conflict, alert FailoverdPrimaryConflict). Never both.",
            match record.on_conflict {
                crate::config::OnConflict::Hold => "the last agreed primary keeps being answered",
                crate::config::OnConflict::None => "nothing is answered (NODATA)",
            }
        );
        let _ = writeln!(
            out,
            "- None claims (promotion under way): {}.",
            match record.all_down {
                AllDown::FailOpen => "the last agreed primary keeps being answered".to_owned(),
                AllDown::NoData => "nothing is answered (NODATA)".to_owned(),
                AllDown::Fallback(p) => format!("pool {} is answered", config.pool(p).name),
            }
        );
    }
    if !record.gates.is_empty() {
        let _ = writeln!(out, "\n## Database: failover gates (RPO guard)\n");
        for gate in &record.gates {
            let _ = writeln!(
                out,
                "- Traffic moves to {} only while pool {} is up: {}.",
                config.pool(gate.pool).name,
                config.pool(gate.gate).name,
                describe_check(gate.gate)
            );
        }
        let _ = writeln!(
            out,
            "\nA held pool counts as down; `{ctl} explain {} {}` names the gate and the replica's \
             lag. To accept the data loss and move anyway: `{ctl} failover {} --to POOL` \
             (an operator's failover overrides the gate).",
            record.name, record.record_type, record.name
        );
    }
}

/// The steps of a `primary` record: promote with the orchestrator, verify, handle a
/// split brain.
fn write_primary_steps(
    out: &mut String,
    config: &Config,
    record: &DynamicRecord,
    ctl: &str,
    context: &RunbookContext,
) {
    let (name, rtype) = (&record.name, record.record_type);
    let _ = writeln!(out, "\n## 1. Confirm who is primary\n");
    let _ = writeln!(
        out,
        "```sh\n{ctl} explain {name} {rtype}     # the primary answered, and why"
    );
    if let PoolChoice::Fixed(pools) = &record.pools {
        for &p in pools {
            let pool = config.pool(p);
            for &e in &pool.endpoints {
                if let Some(command) = pool
                    .check
                    .map(|c| probe_command(&config.check(c).kind, config, e))
                {
                    let _ = writeln!(
                        out,
                        "{command}   # {}/{}",
                        pool.name,
                        config.endpoint(e).name
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "```");
    let _ = writeln!(
        out,
        "\n## 2. Promote (with your orchestrator, not failoverd)\n"
    );
    let _ = writeln!(
        out,
        "Fence the old primary first (stop it, or let the orchestrator do so), then promote \
         the standby (`patronictl failover`, `pg_ctl promote`, the cloud API). failoverd \
         answers the new primary once its check passes `rise` times. Rehearse and time it:\n\n\
         ```sh\nfailoverd drill {name} --type {rtype} --mode promote --endpoint POOL/NAME --promote 'CMD' --dns IP:PORT …\n```"
    );
    let zone = context.zone.clone().unwrap_or_else(|| name.clone());
    let _ = writeln!(out, "\n## 3. Verify at every nameserver\n");
    let _ = writeln!(
        out,
        "```sh\nfor ns in $(dig +short NS {zone}); do echo \"$ns: $(dig +short +norec @$ns {name} {rtype} | tr '\\n' ' ')\"; done\n```"
    );
    let _ = writeln!(out, "\n## 4. Split brain\n");
    let _ = writeln!(
        out,
        "FailoverdPrimaryConflict fires while two nodes pass the primary check. Fence the \
         one that must not be primary; `{ctl} events` shows who claimed what, and \
         `{ctl} force POOL/NAME down --reason …` (an operator's force) takes a node out of the \
         election at once.\n"
    );
}

/// A shell command that probes endpoint `e` as `kind` does.
fn probe_command(kind: &CheckKind, config: &Config, e: EndpointIndex) -> String {
    let target = &config.endpoint(e).target.to_string();
    match kind {
        CheckKind::Http(h) => {
            let scheme = if h.tls { "https" } else { "http" };
            let insecure = if h.tls && !h.tls_verify { " -k" } else { "" };
            let host = h
                .host
                .as_ref()
                .map(|h| format!(" -H 'Host: {h}'"))
                .unwrap_or_default();
            format!(
                "curl -fsS{insecure}{host} -X {} -o /dev/null -w '%{{http_code}}\\n' {scheme}://{target}:{}{}",
                h.method, h.port, h.path
            )
        }
        CheckKind::Tcp { port } => format!("nc -vz -w 2 {target} {port}"),
        CheckKind::Dns(d) => format!(
            "dig +norec @{target} -p {} {} TYPE{}",
            d.port, d.query_name, d.query_type
        ),
        CheckKind::Postgres(pg) => format!(
            "psql 'host={target} port={} user={} dbname={}{}' -Atc \"SELECT pg_is_in_recovery(), now() - pg_last_xact_replay_timestamp(), pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()\"",
            pg.port,
            pg.user,
            pg.database,
            match pg.sslmode {
                crate::config::SslMode::Disable => " sslmode=disable",
                crate::config::SslMode::Require => " sslmode=require",
                crate::config::SslMode::VerifyFull => " sslmode=verify-full",
            }
        ),
        CheckKind::Exec(exec) => {
            // As the prober runs it: whole-argument placeholders, the FAILOVERD_*
            // variables (the rest of the environment is the caller's here).
            let label = config.endpoint_label(e);
            let mut words = vec![
                "env".to_owned(),
                shell_word(&format!("FAILOVERD_ADDRESS={target}")),
                shell_word(&format!("FAILOVERD_ENDPOINT={label}")),
            ];
            if let Some(port) = exec.port {
                words.push(format!("FAILOVERD_PORT={port}"));
            }
            words.extend(exec.command.iter().map(|arg| {
                shell_word(match arg.as_str() {
                    "{address}" => target,
                    "{endpoint}" => &label,
                    other => other,
                })
            }));
            words.join(" ")
        }
    }
}

/// `word` as one shell word: as it is when it needs no quoting, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    #[test]
    fn a_failover_record_gets_its_commands() {
        let (config, _) = Config::load(ConfigSource::embedded()).unwrap();
        let context = RunbookContext {
            ctl_config: "--config /etc/failoverd/failoverd.toml".into(),
            zone: Some("gslb.example.com.".into()),
        };
        let text = render(&config, "www.gslb.example.com", None, &context).unwrap();
        for want in [
            "# Runbook: www.gslb.example.com. A",
            "primary web-eu, then standby web-us",
            "failoverd ctl --config /etc/failoverd/failoverd.toml failover www.gslb.example.com. --type A --to web-us",
            "release www.gslb.example.com. --type A",
            "--assume web-eu/eu-1=down --assume web-eu/eu-2=down",
            "dig +short NS gslb.example.com.",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        let demo = render(&config, "demo.gslb.example.com", None, &context).unwrap();
        assert!(
            demo.contains(
                "curl -fsS -X GET -o /dev/null -w '%{http_code}\\n' http://127.0.0.3:8080/"
            ),
            "{demo}"
        );
        let weighted = render(&config, "api.gslb.example.com", None, &context).unwrap();
        assert!(weighted.contains("drain web-eu"), "{weighted}");
        assert!(render(&config, "nope.gslb.example.com", None, &context).is_err());
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
        let context = RunbookContext {
            ctl_config: String::new(),
            zone: None,
        };
        let book = render(&config, "app.example.test", None, &context).unwrap();
        let line = book
            .lines()
            .find(|l| l.starts_with("env FAILOVERD_ADDRESS="))
            .unwrap_or_else(|| panic!("no exec command in:\n{book}"));
        let command = line.split("   # ").next().unwrap();
        assert_eq!(
            command,
            "env FAILOVERD_ADDRESS=127.0.0.2 FAILOVERD_ENDPOINT=web/a FAILOVERD_PORT=8080 sh -c \
             'test \"$FAILOVERD_ENDPOINT $FAILOVERD_PORT $0 $1\" = '\\''web/a 8080 127.0.0.2 web/a'\\''' \
             127.0.0.2 web/a"
        );
        // Runnable exactly as printed: the check's own test passes.
        let status = std::process::Command::new("sh")
            .args(["-c", command])
            .status()
            .unwrap();
        assert!(status.success(), "{command}");
    }

    #[test]
    fn database_records_and_gates_get_their_section() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let (config, _) = Config::load(ConfigSource::from_file(&path).unwrap()).unwrap();
        let context = RunbookContext {
            ctl_config: "--config /etc/failoverd/failoverd.toml".into(),
            zone: Some("gslb.example.com.".into()),
        };
        let db = render(&config, "db.gslb.example.com", None, &context).unwrap();
        for want in [
            "## Database: follow the primary",
            "pool db-eu: postgres check pg-primary (role primary, user failoverd, database postgres)",
            "failoverd promotes nothing and fences nothing",
            "psql 'host=192.0.2.50 port=5432 user=failoverd dbname=postgres sslmode=require'",
            "--mode promote --endpoint POOL/NAME",
            "FailoverdPrimaryConflict",
        ] {
            assert!(db.contains(want), "missing {want:?} in:\n{db}");
        }
        assert!(
            !db.contains("ctl --config /etc/failoverd/failoverd.toml failover db"),
            "{db}"
        );
        let www = render(&config, "www.gslb.example.com", None, &context).unwrap();
        assert!(
            www.contains("Traffic moves to web-us only while pool db-us-lag is up: postgres check pg-lag (role any, max_lag 10s"),
            "{www}"
        );
    }
}
