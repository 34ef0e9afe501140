//! Real PostgreSQL servers on loopback for the database tests: a primary and streaming
//! replicas (`pg_basebackup -R`), run as an unprivileged user when the tests run as
//! root (initdb refuses root), each in a temporary directory, stopped on drop.
//!
//! Binaries are looked for in `FAILOVERD_PG_BINDIR`, `pg_config --bindir`,
//! `/usr/lib/postgresql/*/bin` (newest first) and `PATH`. Without them the tests skip
//! loudly, and fail under CI (`require!`; `.ci/run` installs Debian's `postgresql`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::wait_until;

/// The PostgreSQL programs.
#[derive(Clone, Debug)]
pub struct PgBin {
    dir: PathBuf,
    psql: PathBuf,
}

impl PgBin {
    /// Finds the binaries, or says what is missing (for [`require!`](super::require!)).
    pub fn find() -> super::Need<Self> {
        let has_all = |dir: &Path| {
            ["initdb", "pg_ctl", "pg_basebackup", "postgres"]
                .iter()
                .all(|b| dir.join(b).is_file())
        };
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("FAILOVERD_PG_BINDIR") {
            candidates.push(dir.into());
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
            }
        }
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_string_lossy().parse().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            candidates.extend(versions.into_iter().map(|(_, dir)| dir));
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                // Debian's /usr/bin/pg_basebackup is a wrapper; follow initdb's link.
                let initdb = dir.join("initdb");
                if let Ok(real) = std::fs::canonicalize(&initdb) {
                    if let Some(parent) = real.parent() {
                        candidates.push(parent.to_owned());
                    }
                }
                candidates.push(dir);
            }
        }
        let Some(dir) = candidates.into_iter().find(|d| has_all(d)) else {
            return Err(super::Missing::new(
                "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres)",
                "apt-get install postgresql, or set FAILOVERD_PG_BINDIR",
            ));
        };
        let psql = if dir.join("psql").is_file() {
            dir.join("psql")
        } else {
            PathBuf::from("psql")
        };
        Ok(Self { dir, psql })
    }

    fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The unprivileged user the servers run as when we are root.
const RUN_AS: &str = "nobody";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command run as [`RUN_AS`] when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--reset-env",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Gives `path` (recursively) to [`RUN_AS`] when we are root.
fn give_away(path: &Path) {
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "nobody:nogroup"]).arg(path);
                c
            },
            "chown",
        );
    }
}

/// A port free on both loopback addresses (PostgreSQL cannot be told port 0).
pub fn free_port(addresses: &[Ipv4Addr]) -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind((addresses[0], 0)).expect("bind");
        let port = first.local_addr().unwrap().port();
        if addresses[1..]
            .iter()
            .all(|a| TcpListener::bind((*a, port)).is_ok())
        {
            return port;
        }
    }
    panic!("no port free on {addresses:?}");
}

/// One running PostgreSQL server (primary or replica).
pub struct PgNode {
    /// Listen address.
    pub addr: SocketAddr,
    bin: PgBin,
    data: PathBuf,
    _dir: tempfile::TempDir,
    running: bool,
}

/// The password of the `failoverd` login role the tests create.
pub const PASSWORD: &str = "pw-Zq8-not-in-logs";

impl PgNode {
    /// initdb and start a primary on `addr` (trust for `postgres` and replication,
    /// SCRAM for the `failoverd` role, which is created with [`PASSWORD`]).
    pub fn primary(bin: &PgBin, addr: SocketAddr) -> Self {
        Self::primary_with_tls(bin, addr, None)
    }

    /// As [`PgNode::primary`], with TLS on (`ssl = on`) when given a PEM certificate
    /// chain and key.
    pub fn primary_with_tls(bin: &PgBin, addr: SocketAddr, tls: Option<(&str, &str)>) -> Self {
        let dir = tempdir_for_server();
        let data = dir.path().join("data");
        give_away(dir.path());
        let mut initdb = as_server_user(&bin.program("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let hba = data.join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("host all failoverd 127.0.0.0/8 scram-sha-256\n{old}\nhost replication all 127.0.0.0/8 trust\nhost all all 127.0.0.0/8 trust\n"),
        )
        .unwrap();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write;
        writeln!(
            conf,
            "\nlisten_addresses = '{}'\nport = {}\nunix_socket_directories = ''\n\
             wal_level = replica\nmax_wal_senders = 8\nhot_standby = on\nfsync = off\n\
             full_page_writes = off\nshared_buffers = 16MB\nmax_connections = 40\n\
             wal_receiver_status_interval = 1s\nwal_retrieve_retry_interval = 500ms\n\
             password_encryption = 'scram-sha-256'",
            addr.ip(),
            addr.port()
        )
        .unwrap();
        if let Some((cert, key)) = tls {
            std::fs::write(data.join("server.crt"), cert).unwrap();
            std::fs::write(data.join("server.key"), key).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            writeln!(
                conf,
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'"
            )
            .unwrap();
        }
        drop(conf);
        give_away(dir.path());
        let mut node = Self {
            addr,
            bin: bin.clone(),
            data,
            _dir: dir,
            running: false,
        };
        node.start();
        node.sql(&format!(
            "CREATE ROLE failoverd LOGIN PASSWORD '{PASSWORD}'; CREATE TABLE ticks (at timestamptz DEFAULT now(), n int)"
        ));
        node
    }

    /// A streaming replica of `primary` on `addr` (`pg_basebackup -R`).
    pub fn replica_of(primary: &Self, addr: SocketAddr) -> Self {
        let dir = tempdir_for_server();
        let data = dir.path().join("data");
        give_away(dir.path());
        let mut backup = as_server_user(&primary.bin.program("pg_basebackup"));
        backup
            .args(["-h", &primary.addr.ip().to_string()])
            .args(["-p", &primary.addr.port().to_string()])
            .args([
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "-D",
            ])
            .arg(&data);
        run(backup, "pg_basebackup");
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write;
        writeln!(
            conf,
            "\nlisten_addresses = '{}'\nport = {}",
            addr.ip(),
            addr.port()
        )
        .unwrap();
        drop(conf);
        give_away(dir.path());
        let mut node = Self {
            addr,
            bin: primary.bin.clone(),
            data,
            _dir: dir,
            running: false,
        };
        node.start();
        // Streaming: the replica has replayed the role created on the primary.
        assert!(
            wait_until(Duration::from_secs(20), || {
                node.try_sql("SELECT count(*) FROM pg_roles WHERE rolname = 'failoverd'")
                    .as_deref()
                    == Some("1")
            }),
            "the replica on {addr} does not stream from {}",
            primary.addr
        );
        node
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut command = as_server_user(&self.bin.program("pg_ctl"));
        command.arg("-D").arg(&self.data).args(args);
        run(command, &format!("pg_ctl {args:?}"));
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) {
        let log = self.data.join("server.log");
        self.pg_ctl(&["-w", "-t", "60", "-l", log.to_str().unwrap(), "start"]);
        self.running = true;
    }

    /// `pg_ctl promote` (waits until the promotion is done).
    pub fn promote(&self) {
        self.pg_ctl(&["-w", "-t", "60", "promote"]);
    }

    /// A shell command running `pg_ctl ARGS` on this node (as the server user), for
    /// tools that take a command (`failoverd drill --promote`).
    pub fn pg_ctl_shell(&self, args: &str) -> String {
        let pg_ctl = self.bin.program("pg_ctl");
        let prefix = if is_root() {
            "setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env "
        } else {
            ""
        };
        format!(
            "{prefix}'{}' -D '{}' {args}",
            pg_ctl.display(),
            self.data.display()
        )
    }

    /// Notes that the server was stopped by a command run elsewhere.
    pub fn stopped(&mut self) {
        self.running = false;
    }

    /// Stops the server at once (`-m immediate`: like a crash).
    pub fn kill(&mut self) {
        if self.running {
            self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }

    /// Runs SQL as `postgres`; the first output line (`-At`).
    pub fn try_sql(&self, sql: &str) -> Option<String> {
        let output = Command::new(&self.bin.psql)
            .args(["-h", &self.addr.ip().to_string()])
            .args(["-p", &self.addr.port().to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .ok()?;
        output.status.success().then(|| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
    }

    /// Runs SQL as `postgres`, which must succeed.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|| panic!("psql on {}: {sql} failed", self.addr))
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgNode {
    fn drop(&mut self) {
        if self.running {
            let mut command = as_server_user(&self.bin.program("pg_ctl"));
            command
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = command.output();
        }
    }
}

/// A temporary directory the server user can enter (its parent is world-searchable).
fn tempdir_for_server() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("failoverd-pg-")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}
