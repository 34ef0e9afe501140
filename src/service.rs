//! `failoverd serve`: load configuration and zones, publish a snapshot, serve DNS,
//! reload on demand (keeping the last good configuration when a reload fails), and
//! shut down cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{Config, ConfigSource, Diagnostics};
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
    /// Listeners could not start.
    #[error(transparent)]
    Dns(#[from] DnsError),
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
    /// Listen addresses replacing the configured ones (kept across reloads).
    pub listen: Option<Vec<SocketAddr>>,
}

/// A running server.
pub struct Service {
    shared: SharedSnapshot,
    dns: DnsServer,
    generation: AtomicU64,
    options: StartOptions,
    file_listen: Vec<SocketAddr>,
}

impl Service {
    /// Starts serving a loaded configuration. Must run inside a tokio runtime.
    pub fn start(loaded: Loaded) -> Result<Self, ServiceError> {
        Self::start_with(loaded, StartOptions::default())
    }

    /// Starts serving with start-up options.
    pub fn start_with(mut loaded: Loaded, options: StartOptions) -> Result<Self, ServiceError> {
        for warning in &loaded.warnings.warnings {
            tracing::warn!("{warning}");
        }
        let file_listen = loaded.config.server.listen.clone();
        if let Some(listen) = &options.listen {
            Arc::make_mut(&mut loaded.config).server.listen = listen.clone();
        }
        let config = loaded.config;
        let health = HealthSnapshot::from_config(&config);
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
        let dns = DnsServer::start(
            &config.server.listen,
            config.server.udp_workers,
            config.server.tcp_idle_timeout,
            shared.clone(),
        )?;
        tracing::info!(addresses = ?dns.addresses, "ready");
        Ok(Self {
            shared,
            dns,
            generation: AtomicU64::new(1),
            options,
            file_listen,
        })
    }

    /// The bound DNS addresses (UDP and TCP).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.dns.addresses
    }

    /// The shared snapshot (for the health plane and status).
    pub fn snapshot(&self) -> &SharedSnapshot {
        &self.shared
    }

    /// DNS counters.
    pub fn dns_metrics(&self) -> &crate::metrics::DnsMetrics {
        &self.dns.metrics
    }

    /// Publishes new endpoint health.
    pub fn set_health(&self, health: HealthSnapshot) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let current = self.shared.load_full();
        self.shared.store(current.with_health(health, generation));
    }

    /// Reloads configuration and zones. On any error the running configuration stays
    /// in force and the errors are returned. Listen addresses are fixed at start.
    pub fn reload(&self, source: ConfigSource) -> Result<Diagnostics, Diagnostics> {
        let mut loaded = load(source)?;
        if loaded.config.server.listen != self.file_listen {
            tracing::warn!("listen addresses changed; restart failoverd to apply them");
        }
        if let Some(listen) = &self.options.listen {
            Arc::make_mut(&mut loaded.config).server.listen = listen.clone();
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let health = HealthSnapshot::from_config(&loaded.config);
        let snapshot = Snapshot::build(loaded.config, loaded.zones, health, generation);
        self.shared.store(snapshot);
        release_freed_memory();
        tracing::info!(generation, "configuration reloaded");
        Ok(loaded.warnings)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.dns.shutdown().await;
    }
}

/// Returns memory freed after loading (parser scratch) to the OS.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
