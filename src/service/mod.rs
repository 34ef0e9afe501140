//! Wiring for `failoverd serve` and `failoverd probe`: load configuration and zones,
//! restore health, publish a snapshot, serve DNS, run the health plane, the admin API
//! and the reporter; reload on demand (keeping the last good configuration when a
//! reload fails); shut down cleanly.

mod backend;
mod coldstart;
mod plane;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use self::plane::LOCAL_VANTAGE;
use self::plane::{Plane, PlaneHandle, PlaneInput};
use crate::admin::api::Status;
use crate::admin::{self, AdminError};
use crate::config::{Config, ConfigSource, Diagnostics, KeyPath};
use crate::dns::{DnsError, DnsServer, SharedSnapshot, Snapshot};
use crate::health::HealthSnapshot;
use crate::zone;

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration or zones are invalid (every problem listed).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// DNS listeners could not start.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The admin API could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// A validated configuration with its zones, ready to become a snapshot.
pub struct Loaded {
    /// The configuration.
    pub config: Arc<Config>,
    /// The zones, with dynamic names bound.
    pub zones: zone::ZoneSet,
    /// Warnings from the config and zone files.
    pub warnings: Diagnostics,
}

/// Loads and validates a configuration and its zones, collecting every error.
pub fn load(source: ConfigSource) -> Result<Loaded, Diagnostics> {
    let (config, mut diagnostics) = Config::load_partial(source);
    let Some(config) = config else {
        return Err(diagnostics);
    };
    // Zones are loaded even when the config has errors, so their errors (and those of
    // binding records to them) are reported in the same run.
    match zone::load(&config) {
        Ok((zones, zone_warnings)) if !diagnostics.has_errors() => {
            diagnostics.extend(zone_warnings);
            Ok(Loaded {
                config: Arc::new(config),
                zones,
                warnings: diagnostics,
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

/// Start-up choices made outside the configuration file.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// DNS listen addresses replacing the configured ones (kept across reloads).
    pub listen: Option<Vec<SocketAddr>>,
    /// Admin listen address replacing the configured one.
    pub admin_listen: Option<SocketAddr>,
    /// This process's vantage point, replacing `[health] vantage`.
    pub vantage: Option<String>,
}

impl StartOptions {
    /// Applies the options to a configuration.
    fn apply(&self, config: &mut Config) -> Result<(), Diagnostics> {
        if let Some(listen) = &self.listen {
            config.server.listen = listen.clone();
        }
        if let Some(admin) = self.admin_listen {
            config.admin.listen = Some(admin);
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

/// A running server.
pub struct Service {
    shared: SharedSnapshot,
    dns: DnsServer,
    plane: PlaneHandle,
    admin_address: Option<SocketAddr>,
    generation: Arc<AtomicU64>,
    options: StartOptions,
    file_listen: Vec<SocketAddr>,
    shutdown: CancellationToken,
}

impl Service {
    /// Starts serving a loaded configuration. Must run inside a tokio runtime.
    pub async fn start(loaded: Loaded) -> Result<Self, ServiceError> {
        Self::start_with(loaded, StartOptions::default()).await
    }

    /// Starts serving with start-up options: restores health (state file, peers),
    /// builds the answers, then opens the DNS and admin listeners and starts probing.
    pub async fn start_with(
        mut loaded: Loaded,
        options: StartOptions,
    ) -> Result<Self, ServiceError> {
        for warning in &loaded.warnings.warnings {
            tracing::warn!("{warning}");
        }
        let file_listen = loaded.config.server.listen.clone();
        options
            .apply(Arc::make_mut(&mut loaded.config))
            .map_err(ServiceError::Invalid)?;
        let config = loaded.config;
        let (vantage, _, secret) = plane::local_vantage(&config);
        let initial = coldstart::initial(&config, &vantage).await;
        let health = plane::initial_snapshot(&config, &initial);
        let started = std::time::Instant::now();
        let snapshot = Snapshot::build(config.clone(), loaded.zones, health, 1);
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
        let dns = DnsServer::start(
            &config.server.listen,
            config.server.udp_workers,
            config.server.tcp_idle_timeout,
            shared.clone(),
        )?;
        let plane = Plane::start(
            config.clone(),
            shared.clone(),
            generation.clone(),
            initial,
            shutdown.clone(),
        );
        let mut admin_address = None;
        if let Some(addr) = config.admin.listen {
            let backend = backend::ServiceBackend::new(
                shared.clone(),
                &plane,
                dns.metrics.clone(),
                vantage.clone(),
                secret.clone(),
            );
            let (bound, serve) = admin::bind(addr, Arc::new(backend), shutdown.clone()).await?;
            tokio::spawn(serve);
            tracing::info!(admin = %bound, "admin API listening");
            admin_address = Some(bound);
        }
        if let Some(secret) = secret {
            let own = admin_address.map(|a| format!("http://{a}"));
            let servers: Vec<String> = config
                .health
                .servers
                .iter()
                .filter(|s| Some(s.as_str()) != own.as_deref())
                .cloned()
                .collect();
            if !servers.is_empty() {
                tokio::spawn(crate::probe::reporter::run(
                    vantage.clone(),
                    secret,
                    servers,
                    config.health.push_interval,
                    plane.verdicts.clone(),
                    plane.metrics.reporter.clone(),
                    shutdown.clone(),
                ));
            }
        }
        tracing::info!(addresses = ?dns.addresses, vantage = %vantage, "ready");
        Ok(Self {
            shared,
            dns,
            plane,
            admin_address,
            generation,
            options,
            file_listen,
            shutdown,
        })
    }

    /// The bound DNS addresses (UDP and TCP).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.dns.addresses
    }

    /// The bound admin API address, if enabled.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin_address
    }

    /// The shared snapshot.
    pub fn snapshot(&self) -> &SharedSnapshot {
        &self.shared
    }

    /// DNS counters.
    pub fn dns_metrics(&self) -> &crate::metrics::DnsMetrics {
        &self.dns.metrics
    }

    /// Current status (what is answered and why).
    pub fn status(&self) -> Arc<Status> {
        self.plane.status.borrow().clone()
    }

    /// Publishes endpoint health directly, bypassing probes and quorum (tests, tools).
    /// The health plane replaces it at its next change.
    pub fn set_health(&self, health: HealthSnapshot) {
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let current = self.shared.load_full();
        self.shared.store(current.with_health(health, generation));
    }

    /// Reloads configuration and zones. On any error the running configuration stays
    /// in force and the errors are returned. Listen addresses are fixed at start.
    pub async fn reload(&self, source: ConfigSource) -> Result<Diagnostics, Diagnostics> {
        let mut loaded = load(source)?;
        if loaded.config.server.listen != self.file_listen {
            tracing::warn!("listen addresses changed; restart failoverd to apply them");
        }
        let mut options = self.options.clone();
        options.listen = Some(self.dns.addresses.clone());
        options.apply(Arc::make_mut(&mut loaded.config))?;
        let (reply, done) = oneshot::channel();
        let input = PlaneInput::Reload {
            config: loaded.config,
            zones: loaded.zones,
            reply,
        };
        if self.plane.inputs.send(input).await.is_ok() {
            let _ = done.await;
        }
        release_freed_memory();
        tracing::info!("configuration reloaded");
        Ok(loaded.warnings)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.dns.shutdown().await;
    }
}

/// Runs a probe agent (`failoverd probe`): probes from `vantage` and reports to the
/// servers until `shutdown`; no DNS. Returns the admin address if one is enabled.
pub async fn run_agent(
    loaded: Loaded,
    options: StartOptions,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    let mut loaded = loaded;
    options
        .apply(Arc::make_mut(&mut loaded.config))
        .map_err(ServiceError::Invalid)?;
    let config = loaded.config;
    let (vantage, _, secret) = plane::local_vantage(&config);
    let mut problems = Diagnostics::default();
    if config.health.vantage.is_none() {
        problems.error(
            KeyPath::root().key("health").key("vantage"),
            "a probe agent needs a vantage point (--vantage NAME)",
        );
    }
    if secret.is_none() {
        problems.error(
            KeyPath::root().key("vantages"),
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
        return Err(ServiceError::Invalid(problems));
    }
    // The agent runs the same plane as a server (without DNS) so its status and
    // metrics read the same; its verdicts go to every server.
    let health = HealthSnapshot::from_config(&config);
    let shared = SharedSnapshot::new(Snapshot::build(config.clone(), loaded.zones, health, 1));
    let generation = Arc::new(AtomicU64::new(1));
    let plane = Plane::start(
        config.clone(),
        shared.clone(),
        generation,
        plane::Initial::default(),
        shutdown.clone(),
    );
    if let Some(addr) = config.admin.listen {
        let backend = backend::ServiceBackend::new(
            shared,
            &plane,
            crate::metrics::DnsMetrics::default(),
            vantage.clone(),
            secret.clone(),
        );
        let (bound, serve) = admin::bind(addr, Arc::new(backend), shutdown.clone()).await?;
        tokio::spawn(serve);
        tracing::info!(admin = %bound, "admin API listening");
    }
    if let Some(secret) = secret {
        tokio::spawn(crate::probe::reporter::run(
            vantage.clone(),
            secret,
            config.health.servers.clone(),
            config.health.push_interval,
            plane.verdicts.clone(),
            plane.metrics.reporter.clone(),
            shutdown.clone(),
        ));
    }
    tracing::info!(vantage = %vantage, servers = ?config.health.servers, "probe agent ready");
    shutdown.cancelled().await;
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
