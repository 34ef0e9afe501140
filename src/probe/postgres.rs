//! The `postgres` check: log in (password from the config's file or variable, never
//! logged), ask `pg_is_in_recovery()` and, on a replica, its replay lag; the check's
//! `role` and `max_lag` decide up or down, and the reason says which ("primary",
//! "replica, lag 42 s > 10 s", "in recovery, expected primary").
//!
//! Replay lag, as measured here:
//! - not in recovery (a primary): no lag;
//! - a replica that has replayed all the WAL it received
//!   (`pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()`): 0, "caught up" — the
//!   time since the last replayed commit (`now() - pg_last_xact_replay_timestamp()`)
//!   grows while the primary is idle, so it alone would fail an idle, healthy replica;
//! - otherwise: `now() - pg_last_xact_replay_timestamp()`, the age of the newest
//!   commit replayed while more WAL waits (replay paused or slow). It uses the
//!   primary's commit clock, so clock skew between the hosts adds to it.
//!
//! A replica cannot know WAL it never received: with the primary gone, "caught up"
//! means caught up with what reached it. Nothing replayed yet: lag unknown (it fails
//! a `max_lag`).

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::tls::MakeTlsConnect;

use crate::config::{DbRole, PostgresCheck, SslMode};
use crate::runtime::http as tls;

/// The query: `in_recovery`, `caught_up`, `lag_seconds`, `paused` as text.
pub(crate) const QUERY: &str = "SELECT pg_is_in_recovery()::text, \
    CASE WHEN pg_is_in_recovery() THEN \
      (pg_last_wal_receive_lsn() IS NOT NULL \
       AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn())::text END, \
    CASE WHEN pg_is_in_recovery() THEN \
      EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8::text END, \
    CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused()::text END";

/// What a database said about itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct DbState {
    /// `pg_is_in_recovery()`.
    pub in_recovery: bool,
    /// Replay lag (None on a primary, or when unknown).
    pub lag: Option<Duration>,
    /// Replay is paused (`pg_wal_replay_pause()`).
    pub paused: bool,
}

/// Judges a database's state against the check's role and lag limit (pure): Ok
/// (up) or Err (down), with the reason either way.
pub(crate) fn judge(
    role: DbRole,
    max_lag: Option<Duration>,
    state: DbState,
) -> Result<String, String> {
    if !state.in_recovery {
        return match role {
            DbRole::Primary | DbRole::Any => Ok("primary".to_owned()),
            DbRole::Replica => Err("primary, expected replica".to_owned()),
        };
    }
    if role == DbRole::Primary {
        return Err("in recovery, expected primary".to_owned());
    }
    let paused = if state.paused { ", replay paused" } else { "" };
    match (state.lag, max_lag) {
        (None, None) => Ok(format!("replica, lag unknown{paused}")),
        (None, Some(max)) => Err(format!(
            "replica, lag unknown (nothing replayed yet) > {}{paused}",
            seconds(max)
        )),
        (Some(lag), None) if lag.is_zero() => Ok(format!("replica, caught up{paused}")),
        (Some(lag), None) => Ok(format!("replica, lag {}{paused}", seconds(lag))),
        (Some(lag), Some(max)) if lag.is_zero() => {
            Ok(format!("replica, caught up (≤ {}){paused}", seconds(max)))
        }
        (Some(lag), Some(max)) if lag <= max => Ok(format!(
            "replica, lag {} ≤ {}{paused}",
            seconds(lag),
            seconds(max)
        )),
        (Some(lag), Some(max)) => Err(format!(
            "replica, lag {} > {}{paused}",
            seconds(lag),
            seconds(max)
        )),
    }
}

/// `42 s`, `1.5 s`, `0.2 s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 || s.fract() == 0.0 {
        format!("{} s", s.round() as u64)
    } else {
        format!("{s:.1} s")
    }
}

/// A prepared `postgres` probe of one endpoint.
pub(super) struct PostgresProbe {
    check: PostgresCheck,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    server_name: String,
}

impl PostgresProbe {
    /// Prepares the probe; `server_name` is the TLS name when `host` is not set.
    pub(super) fn new(
        check: &PostgresCheck,
        server_name: &str,
        timeout: Duration,
    ) -> Result<Self, super::ProbeError> {
        let mut config = tokio_postgres::Config::new();
        config
            .user(&check.user)
            .dbname(&check.database)
            .application_name("failoverd")
            .connect_timeout(timeout);
        if let Some(password) = &check.password {
            config.password(password.expose());
        }
        let tls = match check.sslmode {
            SslMode::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
            SslMode::Require | SslMode::VerifyFull => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let verify = check.sslmode == SslMode::VerifyFull;
                let client = tls::client_config(verify, check.ca_file.as_deref())
                    .map_err(|e| super::ProbeError::Tls(e.to_string()))?;
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(client))
            }
        };
        Ok(Self {
            check: check.clone(),
            config,
            tls,
            server_name: check
                .host
                .clone()
                .unwrap_or_else(|| server_name.trim_end_matches('.').to_owned()),
        })
    }

    /// Port probed.
    pub(super) fn port(&self) -> u16 {
        self.check.port
    }

    /// Connects over `stream` (already connected to the endpoint), asks, judges.
    pub(super) async fn run(&self, stream: TcpStream) -> Result<String, String> {
        let state = match &self.tls {
            None => self.ask(stream, tokio_postgres::NoTls).await,
            Some(make) => {
                let mut make = make.clone();
                let connect = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<
                    TcpStream,
                >>::make_tls_connect(&mut make, &self.server_name)
                .unwrap_or_else(|never| match never {});
                self.ask(stream, connect).await
            }
        }?;
        judge(self.check.role, self.check.max_lag, state)
    }

    async fn ask<T>(&self, stream: TcpStream, tls: T) -> Result<DbState, String>
    where
        T: tokio_postgres::tls::TlsConnect<TcpStream>,
    {
        let (client, connection) = self
            .config
            .connect_raw(stream, tls)
            .await
            .map_err(|e| describe(&e, "login"))?;
        // Drive the connection here (no task left behind): the query ends first, or
        // the connection fails.
        let connection = std::pin::pin!(connection);
        let rows = tokio::select! {
            rows = client.simple_query(QUERY) => rows.map_err(|e| describe(&e, "query"))?,
            ended = connection => {
                return Err(match ended {
                    Ok(()) => "connection closed".to_owned(),
                    Err(e) => describe(&e, "connection"),
                });
            }
        };
        let row = rows
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .ok_or("no row from pg_is_in_recovery()")?;
        let text = |i: usize| row.try_get(i).ok().flatten();
        let in_recovery = text(0) == Some("true");
        let caught_up = text(1) == Some("true");
        let lag = if !in_recovery {
            None
        } else if caught_up {
            Some(Duration::ZERO)
        } else {
            text(2)
                .and_then(|t| t.parse::<f64>().ok())
                .filter(|s| s.is_finite())
                .map(|s| Duration::from_secs_f64(s.max(0.0)))
        };
        Ok(DbState {
            in_recovery,
            lag,
            paused: text(3) == Some("true"),
        })
    }
}

/// A short reason for a failed login or query: the server's message (never the
/// password, which PostgreSQL does not echo), or the I/O error.
fn describe(error: &tokio_postgres::Error, action: &str) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{action}: {} ({})", db.message(), db.code().code());
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls::describe(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return tls::describe(tls);
                }
            }
            return format!("{action}: {io}");
        }
        source = e.source();
    }
    format!("{action}: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(lag: Option<f64>) -> DbState {
        DbState {
            in_recovery: true,
            lag: lag.map(Duration::from_secs_f64),
            paused: false,
        }
    }

    const PRIMARY: DbState = DbState {
        in_recovery: false,
        lag: None,
        paused: false,
    };

    #[test]
    fn roles_and_lag_decide_with_reasons() {
        let ten = Some(Duration::from_secs(10));
        assert_eq!(judge(DbRole::Primary, None, PRIMARY), Ok("primary".into()));
        assert_eq!(
            judge(DbRole::Primary, None, replica(Some(0.0))),
            Err("in recovery, expected primary".into())
        );
        assert_eq!(
            judge(DbRole::Replica, ten, PRIMARY),
            Err("primary, expected replica".into())
        );
        assert_eq!(
            judge(DbRole::Replica, ten, replica(Some(42.0))),
            Err("replica, lag 42 s > 10 s".into())
        );
        assert_eq!(
            judge(DbRole::Any, ten, replica(Some(1.5))),
            Ok("replica, lag 1.5 s ≤ 10 s".into())
        );
        assert_eq!(
            judge(DbRole::Any, ten, replica(Some(0.0))),
            Ok("replica, caught up (≤ 10 s)".into())
        );
        assert_eq!(judge(DbRole::Any, ten, PRIMARY), Ok("primary".into()));
        assert!(judge(DbRole::Any, ten, replica(None)).is_err());
        assert!(judge(DbRole::Any, None, replica(None)).is_ok());
        let paused = DbState {
            paused: true,
            ..replica(Some(30.0))
        };
        assert_eq!(
            judge(DbRole::Replica, ten, paused),
            Err("replica, lag 30 s > 10 s, replay paused".into())
        );
    }
}
