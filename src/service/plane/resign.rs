//! The plane's DNSSEC timer: signatures are re-made before they expire (refresh,
//! with jitter) and when a key changes state, off the async workers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Plane, stamp};
use crate::dnssec::keys::unix_now;
use crate::dnssec::refresh::next_resign;

impl Plane {
    /// When the published answers are next due to be re-signed (None: unsigned).
    pub(super) fn resign_due(&self) -> Option<Instant> {
        let snapshot = self.shared.load();
        let signed_at = snapshot.signed_at()?;
        let ring = snapshot.signed_zone_ring()?;
        // Jitter: fixed per process and signing, so each loop turn agrees.
        let random = self.resign_seed ^ signed_at;
        let at = next_resign(
            signed_at,
            ring.settings.refresh,
            random,
            ring.next_event(signed_at),
        );
        let wait = at.saturating_sub(unix_now());
        Some(Instant::now() + Duration::from_secs(wait))
    }

    /// Re-signs the published answers now and publishes them (stamped for transfers:
    /// the new signatures are new transferable content).
    pub(super) async fn resign(&mut self) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let current = self.shared.load_full();
        let transfer = self.transfer.clone();
        let now = unix_now();
        let started = std::time::Instant::now();
        let built = tokio::task::spawn_blocking(move || {
            current
                .resigned(now, generation)
                .map(|s| stamp(transfer.as_deref(), s))
        })
        .await;
        match built {
            Ok(Ok(snapshot)) => {
                self.shared.store(snapshot);
                self.transfer
                    .as_deref()
                    .map(crate::dns::xfr::TransferState::announce);
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "dnssec: signatures refreshed"
                );
            }
            Ok(Err(error)) => {
                // The current signatures stay valid until they expire; retry soon.
                tracing::error!(%error, "dnssec: re-signing failed; keeping the current signatures");
                self.resign_retry = Some(Instant::now() + Duration::from_secs(60));
            }
            Err(error) => tracing::error!(%error, "dnssec: re-signing panicked"),
        }
    }
}
