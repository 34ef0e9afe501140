//! Wiring for `failoverd serve` and `failoverd probe`: load configuration and zones,
//! restore health, publish a snapshot, serve DNS, run the health plane, the admin API
//! and the reporter; reload on demand (keeping the last good configuration when a
//! reload fails); shut down cleanly.

mod backend;
mod coldstart;
mod collector;
use crate::telemetry::events;
mod handover;
mod peers;
mod plane;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub(crate) use self::handover::{Takeover, notify_ready};
use self::plane::{Plane, PlaneHandle, PlaneInput, Role};
use crate::admin::auth::SharedAccess;
use crate::admin::{self, AdminError};
use crate::api::ReloadStatus;
#[cfg(feature = "testing")]
use crate::api::Status;
pub(crate) use crate::config::Reader;
use crate::config::{Config, ConfigSource, Diagnostics, KeyPath, Secret};
use crate::dns::xfr::{TransferState, notify};
use crate::dns::{DnsError, DnsServer, SharedSnapshot, Snapshot};
#[cfg(feature = "testing")]
use crate::health::HealthSnapshot;
use crate::health::board::{Restored, local_identity};
use crate::probe::reporter::{self, ReporterSettings, unix_ms};
use crate::telemetry::events::EventLog;
use crate::zone;
use arc_swap::ArcSwap;

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum ServiceError {
    /// The configuration or zones are invalid (every problem listed).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// DNS listeners could not start.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The admin API could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The zones could not be signed.
    #[error(transparent)]
    Dnssec(#[from] crate::dnssec::DnssecError),
    /// The dnstap writer could not start.
    #[error("cannot start dnstap logging: {0}")]
    Dnstap(std::io::Error),
}

/// A validated configuration with its zones, ready to become a snapshot.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Loaded {
    /// The configuration.
    pub config: Arc<Config>,
    /// The zones, with dynamic names bound.
    pub zones: zone::ZoneSet,
    /// Warnings from the config and zone files.
    pub warnings: Diagnostics,
    /// DNSSEC keys of the signed zones (None: nothing is signed).
    pub keys: Option<Arc<crate::dnssec::KeyRing>>,
}

/// Loads and validates a configuration and its zones, collecting every error.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn load(source: ConfigSource) -> Result<Loaded, Diagnostics> {
    let (config, mut diagnostics) = Config::load_partial(source);
    let Some(config) = config else {
        return Err(diagnostics);
    };
    // Zones are loaded even when the config has errors, so their errors (and those of
    // binding records to them) are reported in the same run.
    match zone::load(&config) {
        Ok((zones, zone_warnings)) if !diagnostics.has_errors() => {
            diagnostics.extend(zone_warnings);
            let keys =
                match crate::dnssec::KeyRing::load(&config.dnssec, crate::dnssec::keys::unix_now())
                {
                    Ok(keys) => keys,
                    Err(error) => {
                        diagnostics.error(
                            KeyPath::root().key("dnssec").key("key_directory"),
                            error.to_string(),
                        );
                        return Err(diagnostics);
                    }
                };
            for zone in &config.dnssec.zones {
                if !zones.zones().iter().any(|z| z.origin_text() == *zone) {
                    diagnostics.error(
                        KeyPath::root().key("dnssec").key("zones"),
                        format!("zone {zone} is not served (no zone file has this origin)"),
                    );
                }
            }
            if diagnostics.has_errors() {
                return Err(diagnostics);
            }
            Ok(Loaded {
                config: Arc::new(config),
                zones,
                warnings: diagnostics,
                keys,
            })
        }
        Ok((_, zone_warnings)) => {
            diagnostics.extend(zone_warnings);
            Err(diagnostics)
        }
        Err(zone_diagnostics) => {
            diagnostics.extend(zone_diagnostics);
            Err(diagnostics)
        }
    }
}

/// What `serve` needs from the host beyond the configuration itself, checked by
/// `check-config`: the state file's directory must be writable (a change that cannot
/// be saved is refused), or creatable.
pub(crate) fn check_host(config: &Config) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    let Some(path) = &config.health.state_file else {
        return diagnostics;
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let problem = if dir.is_dir() {
        // Exactly what a save does first: a temporary file in the directory.
        tempfile::tempfile_in(dir)
            .err()
            .map(|e| format!("cannot write in {}: {e}", dir.display()))
    } else {
        let existing = dir.ancestors().find(|a| a.is_dir());
        match existing {
            Some(ancestor) if !writable(ancestor) => Some(format!(
                "{} does not exist and cannot be created in {}",
                dir.display(),
                ancestor.display()
            )),
            _ => None,
        }
    };
    if let Some(problem) = problem {
        diagnostics.error(
            KeyPath::root().key("health").key("state_file"),
            format!("{problem}: overrides could not be saved, so every change would be refused"),
        );
    }
    diagnostics
}

/// Whether this process may create entries in `dir` (a read-only file system counts
/// as not, even for root).
fn writable(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access() reads a NUL-terminated path we own.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// A reload asked for through the admin API, answered with its outcome.
pub(crate) type ReloadRequest = oneshot::Sender<ReloadStatus>;

/// Start-up choices made outside the configuration file.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct StartOptions {
    /// DNS listen addresses replacing the configured ones (kept across reloads).
    pub listen: Option<Vec<SocketAddr>>,
    /// Admin listen address replacing the configured one.
    pub admin_listen: Option<SocketAddr>,
    /// This process's vantage point, replacing `[health] vantage`.
    pub vantage: Option<String>,
    /// Sockets handed over by the process this one replaces (see
    /// [`Service::hand_over`]).
    pub inherited: Option<Arc<Mutex<crate::runtime::inherit::Inherited>>>,
    /// The state handed over by the process this one replaces (used instead of the
    /// state file).
    pub handed_state: Option<crate::health::persist::SavedState>,
}

impl StartOptions {
    /// What `serve` with these options would refuse in `config` (`check-config` takes
    /// the same options, so a unit's ExecStartPre checks what its ExecStart runs).
    pub(crate) fn check(&self, config: &Config) -> Diagnostics {
        let mut config = config.clone();
        self.apply(&mut config).err().unwrap_or_default()
    }

    /// Applies the options to a configuration.
    fn apply(&self, config: &mut Config) -> Result<(), Diagnostics> {
        if let Some(listen) = &self.listen {
            config.server.listen = listen.clone();
        }
        if let Some(admin) = self.admin_listen {
            config.admin.listen = vec![admin];
        }
        if let Some(name) = &self.vantage {
            match config.vantage_by_name(name) {
                Some(v) => config.health.vantage = Some(v),
                None => {
                    let mut diagnostics = Diagnostics::default();
                    diagnostics.error(
                        KeyPath::root().key("vantages"),
                        format!("--vantage {name}: no [vantages.{name}] in the configuration"),
                    );
                    return Err(diagnostics);
                }
            }
        }
        Ok(())
    }
}

/// A running `serve` or `probe` process.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Service {
    role: Role,
    reader: Reader,
    shared: SharedSnapshot,
    dns: Option<DnsServer>,
    plane: PlaneHandle,
    admin_addresses: Vec<SocketAddr>,
    /// Every listening socket (DNS and admin), for a hand-over.
    listening: Vec<crate::runtime::inherit::Listening>,
    /// Pauses the admin listeners and the override exchange during a hand-over.
    paused: tokio::sync::watch::Sender<bool>,
    /// Admin tokens and public paths (a reload replaces them).
    access: SharedAccess,
    /// Recent events.
    events: Arc<EventLog>,
    reload_requests: tokio::sync::Mutex<mpsc::Receiver<ReloadRequest>>,
    #[cfg_attr(
        not(feature = "testing"),
        expect(dead_code, reason = "read by the integration tests only")
    )]
    generation: Arc<AtomicU64>,
    options: StartOptions,
    /// What the running configuration set that only a restart can change.
    fixed: FixedSettings,
    reporting: Mutex<CancellationToken>,
    session: u64,
    sequence: Arc<AtomicU64>,
    shutdown: CancellationToken,
    /// Zone transfers to secondaries (servers only).
    #[cfg_attr(
        not(feature = "testing"),
        expect(dead_code, reason = "read by the integration tests only")
    )]
    transfer: Option<Arc<TransferState>>,
    /// dnstap logging (servers with `[dnstap]`): the handle and its writer.
    dnstap: Option<(crate::dns::dnstap::Dnstap, crate::dns::dnstap::DnstapWriter)>,
}

/// Settings taken at start that a reload cannot change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FixedSettings {
    listen: Vec<SocketAddr>,
    admin_listen: Vec<SocketAddr>,
    admin_tls: Option<crate::config::TlsFiles>,
    udp_workers: usize,
    tcp_idle_timeout: std::time::Duration,
    tcp_max_connections: (usize, usize),
    rrl: Option<crate::config::RrlConfig>,
    udp_io: crate::config::UdpIo,
    dnstap: Option<crate::config::DnstapConfig>,
}

impl FixedSettings {
    fn of(config: &Config) -> Self {
        Self {
            listen: config.server.listen.clone(),
            admin_listen: config.admin.listen.clone(),
            admin_tls: config.admin.tls.clone(),
            udp_workers: config.server.udp_workers,
            tcp_idle_timeout: config.server.tcp_idle_timeout,
            tcp_max_connections: (
                config.server.tcp_max_connections,
                config.server.tcp_max_connections_per_source,
            ),
            rrl: config.server.rrl.clone(),
            udp_io: config.server.udp_io,
            dnstap: config.dnstap.clone(),
        }
    }

    /// Keys whose new value needs a restart.
    fn changed(&self, new: &Self) -> Vec<String> {
        let mut keys = Vec::new();
        if self.listen != new.listen {
            keys.push("server.listen".to_owned());
        }
        if self.admin_listen != new.admin_listen {
            keys.push("admin.listen".to_owned());
        }
        if self.admin_tls != new.admin_tls {
            keys.push("admin.tls".to_owned());
        }
        if self.udp_workers != new.udp_workers {
            keys.push("server.udp_workers".to_owned());
        }
        if self.udp_io != new.udp_io {
            keys.push("server.udp_io".to_owned());
        }
        if self.dnstap != new.dnstap {
            keys.push("dnstap".to_owned());
        }
        if self.tcp_idle_timeout != new.tcp_idle_timeout {
            keys.push("server.tcp_idle_timeout".to_owned());
        }
        if self.tcp_max_connections.0 != new.tcp_max_connections.0 {
            keys.push("server.tcp_max_connections".to_owned());
        }
        if self.tcp_max_connections.1 != new.tcp_max_connections.1 {
            keys.push("server.tcp_max_connections_per_source".to_owned());
        }
        if self.rrl != new.rrl {
            keys.push("server.rrl".to_owned());
        }
        keys
    }
}

impl Service {
    /// Starts serving with start-up options: restores health (state file, peers),
    /// builds the answers, then opens the DNS and admin listeners and starts probing.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn start_with(
        loaded: Loaded,
        options: StartOptions,
    ) -> Result<Self, ServiceError> {
        Self::launch(Role::Server, loaded, options).await
    }

    /// Starts a probe agent (`failoverd probe`): probes from its vantage point and
    /// reports to the servers; no DNS, and an admin API only with `--admin-listen`.
    /// `loaded` should be read with [`Reader::Agent`] so other vantage points' secrets
    /// may be absent.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn start_agent(
        loaded: Loaded,
        options: StartOptions,
    ) -> Result<Self, ServiceError> {
        Self::launch(Role::Agent, loaded, options).await
    }

    async fn launch(
        role: Role,
        mut loaded: Loaded,
        options: StartOptions,
    ) -> Result<Self, ServiceError> {
        for warning in &loaded.warnings.warnings {
            tracing::warn!("{warning}");
        }
        let fixed = FixedSettings::of(&loaded.config);
        {
            let config = Arc::make_mut(&mut loaded.config);
            options.apply(config).map_err(ServiceError::Invalid)?;
            if role == Role::Agent {
                // The servers' admin port is theirs: an agent listens only when asked.
                config.admin.listen = options.admin_listen.into_iter().collect();
            }
        }
        let config = loaded.config;
        if role == Role::Agent {
            agent_requirements(&config).map_err(ServiceError::Invalid)?;
        }
        let (vantage, _) = local_identity(&config);
        if role == Role::Server && config.health.state_file.is_none() {
            tracing::warn!(
                "no [health] state_file: overrides and decided health are kept in memory only and forgotten when this server restarts (a drain made now is gone after a restart); set [health] state_file"
            );
        }
        if !config.vantages.is_empty() && config.health.vantage.is_none() {
            tracing::warn!(
                "vantage points are configured but this process is none of them (--vantage NAME): it does not probe, and decides from the reports of the vantage points alone"
            );
        }
        let known = crate::health::peering::KnownServers::new();
        let nudge = Arc::new(tokio::sync::Notify::new());
        let restored = match role {
            Role::Server => {
                coldstart::initial(&config, &vantage, &known, options.handed_state.clone()).await
            }
            Role::Agent => Restored::default(),
        };
        let health = plane::initial_snapshot(&config, &restored);
        let started = std::time::Instant::now();
        let build_config = config.clone();
        let zones = loaded.zones;
        let signing = loaded.keys.clone().map(|keys| crate::dnssec::Signing {
            keys,
            now: crate::dnssec::keys::unix_now(),
        });
        let transfer = (role == Role::Server).then(|| TransferState::new(&config.transfer));
        let stamper = transfer.clone();
        let snapshot = tokio::task::spawn_blocking(move || {
            let snapshot =
                Snapshot::build_signed(build_config, zones, health, 1, signing.as_ref())?;
            Ok::<_, crate::dnssec::DnssecError>(match &stamper {
                Some(stamper) => stamper.stamp(snapshot),
                None => snapshot,
            })
        })
        .await
        .expect("building the answers panicked")?;
        tracing::info!(
            zones = snapshot.zones.zones().len(),
            records = snapshot.zones.record_count(),
            dynamic = config.records.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answers built"
        );
        release_freed_memory();
        let shared = SharedSnapshot::new(snapshot);
        let generation = Arc::new(AtomicU64::new(1));
        let shutdown = CancellationToken::new();
        // dnstap: a consumer that is not there yet is retried by the writer; only a
        // thread that cannot start is an error.
        let dnstap = match (&config.dnstap, role) {
            (Some(settings), Role::Server) => Some(
                crate::dns::dnstap::Dnstap::start(settings.clone())
                    .map_err(ServiceError::Dnstap)?,
            ),
            _ => None,
        };
        let mut inherited = options
            .inherited
            .as_ref()
            .map(|i| std::mem::take(&mut *i.lock().unwrap_or_else(|e| e.into_inner())));
        let dns = match role {
            Role::Server => Some(DnsServer::start(
                &config.server,
                shared.clone(),
                transfer
                    .clone()
                    .map(|t| t as Arc<dyn crate::dns::TransferHandler>),
                dnstap.as_ref().map(|(tap, _)| tap.clone()),
                inherited.as_mut(),
            )?),
            Role::Agent => None,
        };
        let mut listening: Vec<crate::runtime::inherit::Listening> = dns
            .as_ref()
            .map(|d| d.listening().to_vec())
            .unwrap_or_default();
        let (paused, paused_rx) = tokio::sync::watch::channel(false);
        let events = Arc::new(match plane::state_file(role, &config) {
            Some(state_file) => {
                let path = events::journal_path(state_file);
                EventLog::with_journal(&path).unwrap_or_else(|error| {
                    tracing::error!(%error, "cannot open the event journal; events are kept in memory only");
                    EventLog::default()
                })
            }
            None => EventLog::default(),
        });
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let plane = Plane::start(
            role,
            config.clone(),
            shared.clone(),
            generation.clone(),
            restored,
            events.clone(),
            transfer.clone(),
            shutdown.clone(),
        );
        if let Some(transfer) = &transfer {
            let listen = dns.as_ref().map_or_else(Vec::new, |d| d.addresses.clone());
            notify::spawn(transfer.clone(), listen, shutdown.clone());
            transfer.announce();
        }
        let mut admin_addresses = Vec::new();
        let access: SharedAccess = Arc::new(ArcSwap::from_pointee(config.admin.access.clone()));
        if !config.admin.listen.is_empty() {
            let secret = secret_of(&config, config.health.vantage);
            let admin_stats = Arc::new(admin::ListenerStats::default());
            let backend = backend::ServiceBackend::new(
                shared.clone(),
                &plane,
                dns.as_ref().map(|d| d.metrics.clone()).unwrap_or_default(),
                vantage.clone(),
                secret,
                events.clone(),
                reload_tx,
            )
            .with_transfer(transfer.clone())
            .with_dnstap(dnstap.as_ref().map(|(tap, _)| tap.clone()))
            .with_admin_stats(admin_stats.clone());
            let backend = match role {
                Role::Server => backend.for_a_server(known.clone(), nudge.clone()),
                Role::Agent => backend,
            };
            let backend: admin::Backend = Arc::new(backend);
            let listeners = admin::bind(
                &config.admin.listen,
                config.admin.tls.as_ref(),
                admin::router(backend, access.clone()),
                config.admin.limits,
                admin_stats.clone(),
                admin::Listen {
                    inherited: inherited.as_mut(),
                    paused: paused_rx.clone(),
                    shutdown: shutdown.clone(),
                },
            )
            .await?;
            let cap = admin::connection_cap(&config.admin.limits);
            for (bound, fd, serve) in listeners {
                tokio::spawn(serve);
                listening.push(crate::runtime::inherit::Listening {
                    kind: crate::runtime::inherit::Kind::Admin,
                    addr: bound,
                    fds: vec![fd],
                });
                tracing::info!(
                    admin = %bound,
                    tls = config.admin.tls.is_some(),
                    max_connections = cap,
                    max_connections_per_source = config.admin.limits.max_connections_per_source,
                    "admin API listening"
                );
                admin_addresses.push(bound);
            }
            if config.admin.access.tokens.is_empty() {
                tracing::info!(
                    "no [[admin.tokens]]: changes are taken from loopback clients only, and only as JSON from this server's own origin"
                );
            }
        }
        if let Some(inherited) = inherited.as_mut() {
            inherited.close_rest();
        }
        let reader = match role {
            Role::Server => Reader::Server,
            Role::Agent => Reader::Agent {
                vantage: options.vantage.clone(),
            },
        };
        let service = Self {
            role,
            reader,
            shared,
            dns,
            plane,
            admin_addresses,
            listening,
            paused,
            access,
            events,
            reload_requests: tokio::sync::Mutex::new(reload_rx),
            generation,
            options,
            fixed,
            reporting: Mutex::new(shutdown.child_token()),
            session: plane::process_nonce() as u64,
            sequence: Arc::new(AtomicU64::new(1)),
            shutdown,
            transfer,
            dnstap,
        };
        service.start_reporters(&config);
        if role == Role::Server {
            let own = service.admin_addresses.clone();
            let exchange = peers::Exchange {
                shared: service.shared.clone(),
                overrides: service.plane.overrides.clone(),
                inputs: service.plane.inputs.clone(),
                known,
                nudge,
                paused: paused_rx,
            };
            peers::spawn(
                exchange,
                move |config| peers_of(config, &own),
                service.shutdown.clone(),
            );
        }
        match &service.dns {
            // "ready" follows once the first health decision is made.
            Some(dns) => tracing::info!(addresses = ?dns.addresses, vantage = %vantage, "serving"),
            None => {
                tracing::info!(vantage = %vantage, servers = ?config.health.servers, "probe agent ready")
            }
        }
        Ok(service)
    }

    /// (Re)starts one reporter per server for `config`, replacing the running ones.
    fn start_reporters(&self, config: &Config) {
        let token = self.shutdown.child_token();
        let old = std::mem::replace(
            &mut *self.reporting.lock().unwrap_or_else(|e| e.into_inner()),
            token.clone(),
        );
        old.cancel();
        let Some(secret) = secret_of(config, config.health.vantage) else {
            return;
        };
        let servers = self.peer_servers(config);
        let (vantage, _) = local_identity(config);
        let settings = ReporterSettings {
            vantage,
            secret,
            session: self.session,
            sequence: self.sequence.clone(),
            push_interval: config.health.push_interval,
            staleness: config.health.staleness,
        };
        reporter::spawn(
            &settings,
            &servers,
            &self.plane.verdicts,
            &self.plane.metrics.reporter,
            &token,
        );
    }

    /// Resolves once the first health decision is made (what `/readyz` reports), or
    /// after `within` (false).
    pub(crate) async fn until_ready(&self, within: std::time::Duration) -> bool {
        let metrics = &self.plane.metrics;
        let wait = async {
            loop {
                let changed = metrics.ready_changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if metrics.ready.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    /// The bound DNS addresses (UDP and TCP); empty for a probe agent.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn addresses(&self) -> &[SocketAddr] {
        self.dns.as_ref().map_or(&[], |d| d.addresses.as_slice())
    }

    /// The first bound admin API address, if enabled.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn admin_address(&self) -> Option<SocketAddr> {
        self.admin_addresses.first().copied()
    }

    /// Every bound admin API address.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn admin_addresses(&self) -> &[SocketAddr] {
        &self.admin_addresses
    }

    /// `[health] servers` but this process's own admin API.
    fn peer_servers(&self, config: &Config) -> Vec<String> {
        peers_of(config, &self.admin_addresses)
    }

    /// The shared snapshot.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn snapshot(&self) -> &SharedSnapshot {
        &self.shared
    }

    /// Zone transfer state (servers only): serials, counters.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn transfer(&self) -> Option<&Arc<TransferState>> {
        self.transfer.as_ref()
    }

    /// DNS counters (a probe agent's stay zero).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn dns_metrics(&self) -> crate::telemetry::metrics::DnsMetrics {
        self.dns
            .as_ref()
            .map(|d| d.metrics.clone())
            .unwrap_or_default()
    }

    /// Current status (what is answered and why).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn status(&self) -> Arc<Status> {
        self.plane.status.borrow().clone()
    }

    /// Publishes endpoint health directly, bypassing probes and quorum (tests, tools).
    /// The health plane replaces it at its next change.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn set_health(&self, health: HealthSnapshot) {
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let current = self.shared.load_full();
        self.shared.store(current.with_health(health, generation));
    }

    /// Reloads configuration and zones (parsed off the async workers). Health, timers
    /// and remote views of endpoints that still exist are kept; every reloadable key
    /// applies (vantage secrets, servers, intervals, checks, pools, records); keys that
    /// need a restart are named in a warning. On any error the running configuration
    /// stays in force and the errors are returned.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) async fn reload(&self, source: ConfigSource) -> Result<Diagnostics, Diagnostics> {
        self.reload_reporting(source).await.0
    }

    /// As `Service::reload` (tests), also returning the outcome as status shows it.
    pub(crate) async fn reload_reporting(
        &self,
        source: ConfigSource,
    ) -> (Result<Diagnostics, Diagnostics>, ReloadStatus) {
        let source = source.read_by(self.reader.clone());
        let loaded = tokio::task::spawn_blocking(move || load(source))
            .await
            .unwrap_or_else(|_| {
                let mut diagnostics = Diagnostics::default();
                diagnostics.error(KeyPath::root(), "loading the configuration panicked");
                Err(diagnostics)
            });
        let result = match loaded {
            Ok(loaded) => self.adopt(loaded).await,
            Err(diagnostics) => Err(diagnostics),
        };
        let outcome = match &result {
            Ok((_, restart_needed)) => {
                crate::event!(
                    self.events,
                    info,
                    "reload",
                    "configuration reloaded",
                    result = "ok",
                    restart_needed = format!("{restart_needed:?}"),
                );
                ReloadStatus {
                    ok: true,
                    at_ms: unix_ms(),
                    errors: Vec::new(),
                    restart_needed: restart_needed.clone(),
                }
            }
            Err(diagnostics) => {
                crate::event!(
                    self.events,
                    error,
                    "reload",
                    "reload failed, keeping the running configuration",
                    result = "failed",
                    errors = diagnostics.errors.len(),
                );
                ReloadStatus {
                    ok: false,
                    at_ms: unix_ms(),
                    errors: diagnostics.errors.iter().map(ToString::to_string).collect(),
                    restart_needed: Vec::new(),
                }
            }
        };
        // Counted here, so the metric is current when the reload returns.
        let counter = if outcome.ok {
            &self.plane.metrics.reloads_ok
        } else {
            &self.plane.metrics.reloads_failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Returned once status shows it.
        let (shown, seen) = oneshot::channel();
        let input = PlaneInput::ReloadOutcome {
            outcome: outcome.clone(),
            shown,
        };
        if self.plane.inputs.send(input).await.is_ok() {
            let _ = seen.await;
        }
        (result.map(|(warnings, _)| warnings), outcome)
    }

    /// The next reload asked for through the admin API (`POST /v1/reload`); whoever
    /// runs the process (and knows where its config is) answers it with the outcome.
    pub(crate) async fn reload_requested(&self) -> Option<ReloadRequest> {
        self.reload_requests.lock().await.recv().await
    }

    async fn adopt(&self, mut loaded: Loaded) -> Result<(Diagnostics, Vec<String>), Diagnostics> {
        let restart_needed = self.fixed.changed(&FixedSettings::of(&loaded.config));
        if !restart_needed.is_empty() {
            tracing::warn!(keys = ?restart_needed, "these settings changed but take effect only after a restart");
        }
        let mut options = self.options.clone();
        if let Some(dns) = &self.dns {
            options.listen = Some(dns.addresses.clone());
        }
        {
            let config = Arc::make_mut(&mut loaded.config);
            options.apply(config)?;
            config.admin.listen = self.admin_addresses.clone();
        }
        if self.role == Role::Agent {
            agent_requirements(&loaded.config)?;
        }
        let config = loaded.config;
        let (reply, done) = oneshot::channel();
        let input = PlaneInput::Reload {
            config: config.clone(),
            zones: loaded.zones,
            keys: loaded.keys,
            reply,
        };
        if self.plane.inputs.send(input).await.is_ok() {
            let _ = done.await;
        }
        // New tokens (a rotation) count from the reload on.
        self.access.store(Arc::new(config.admin.access.clone()));
        self.start_reporters(&config);
        release_freed_memory();
        Ok((loaded.warnings, restart_needed))
    }

    /// Resolves if the health plane stopped for a panic (it is logged and `/readyz`
    /// fails): the process should then exit non-zero, for systemd to restart it.
    pub(crate) async fn plane_failed(&self) {
        self.plane.failed.cancelled().await;
    }

    /// Stops serving: the DNS listeners, then the health plane, joined (its final
    /// state save is on disk when this returns; at most [`PLANE_JOIN_TIMEOUT`]).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(dns) = self.dns.take() {
            dns.shutdown().await;
        }
        if let Some(plane) = self.plane.task.take()
            && tokio::time::timeout(PLANE_JOIN_TIMEOUT, plane)
                .await
                .is_err()
        {
            tracing::error!(
                timeout = ?PLANE_JOIN_TIMEOUT,
                "the health plane did not stop in time; its last state may not be saved"
            );
        }
        self.events.flush_journal().await;
        if let Some((_, writer)) = self.dnstap.take() {
            // Writes what is queued and closes the stream (STOP/FINISH).
            let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
        }
    }

    /// dnstap counters, if dnstap is on.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn dnstap_stats(&self) -> Option<crate::dns::dnstap::DnstapStats> {
        self.dnstap.as_ref().map(|(tap, _)| tap.stats())
    }
}

/// How long shutdown waits for the health plane's final save.
pub(crate) const PLANE_JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The secret of a vantage point, if it has one.
/// `[health] servers` but those at one of `own` addresses.
fn peers_of(config: &Config, own: &[SocketAddr]) -> Vec<String> {
    let own: Vec<String> = own
        .iter()
        .flat_map(|a| [format!("http://{a}"), format!("https://{a}")])
        .collect();
    config
        .health
        .servers
        .iter()
        .filter(|s| !own.iter().any(|o| s.trim_end_matches('/') == o))
        .cloned()
        .collect()
}

fn secret_of(config: &Config, vantage: Option<crate::model::VantageIndex>) -> Option<Secret> {
    vantage.and_then(|v| config.vantages[usize::from(v.0)].secret.clone())
}

/// What a probe agent cannot run without.
fn agent_requirements(config: &Config) -> Result<(), Diagnostics> {
    let (vantage, _) = local_identity(config);
    let mut problems = Diagnostics::default();
    if config.health.vantage.is_none() {
        problems.error(
            KeyPath::root().key("health").key("vantage"),
            "a probe agent needs a vantage point (--vantage NAME)",
        );
    } else if secret_of(config, config.health.vantage).is_none() {
        problems.error(
            KeyPath::root().key("vantages").key(&vantage),
            format!("vantage point {vantage} has no secret to sign its reports"),
        );
    }
    if config.health.servers.is_empty() {
        problems.error(
            KeyPath::root().key("health").key("servers"),
            "a probe agent needs servers to report to",
        );
    }
    if problems.has_errors() {
        return Err(problems);
    }
    Ok(())
}

/// Returns memory freed after loading (parser scratch) to the OS.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
