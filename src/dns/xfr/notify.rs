//! NOTIFY (RFC 1996): when a zone's serial changes, every secondary serving it is
//! told over UDP, retried with a doubling wait until it answers or the attempts are
//! used up. A newer change supersedes a NOTIFY still being retried for the zone.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::TransferState;
use super::tsig;
use super::wire::Reader;
use crate::config::TsigKey;
use crate::zone::{name, rtype};

/// NOTIFY opcode.
const OPCODE_NOTIFY: u16 = 4;

/// Starts the notifier: it sends NOTIFYs for what [`TransferState::announce`]
/// hands it until `shutdown`. Does nothing if already started.
pub fn spawn(state: Arc<TransferState>, shutdown: CancellationToken) {
    let Some(mut announcements) = state.take_announcements() else {
        return;
    };
    tokio::spawn(async move {
        let mut tasks = JoinSet::new();
        let mut running: HashMap<(String, SocketAddr), tokio::task::AbortHandle> = HashMap::new();
        loop {
            let changes = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(Ok(())) = tasks.join_next(), if !tasks.is_empty() => continue,
                changes = announcements.recv() => match changes {
                    Some(changes) => changes,
                    None => break,
                },
            };
            let settings = state.lock().settings.clone();
            for (zone, serial) in changes {
                for secondary in settings.secondaries.iter().filter(|s| s.serves(&zone)) {
                    let key = secondary.key.map(|k| settings.keys[k].clone());
                    for &target in &secondary.notify {
                        if let Some(previous) = running.remove(&(zone.clone(), target)) {
                            previous.abort();
                        }
                        let job = Notify {
                            zone: zone.clone(),
                            serial,
                            secondary: secondary.name.clone(),
                            target,
                            key: key.clone(),
                            attempts: settings.notify_attempts,
                            timeout: settings.notify_timeout,
                            tsig_window: settings.tsig_window.as_secs(),
                        };
                        let state = state.clone();
                        let handle = tasks.spawn(async move { job.run(&state).await });
                        running.insert((zone.clone(), target), handle);
                    }
                }
            }
            running.retain(|_, handle| !handle.is_finished());
        }
        tasks.abort_all();
    });
}

/// One NOTIFY to one address.
struct Notify {
    zone: String,
    serial: u32,
    secondary: String,
    target: SocketAddr,
    key: Option<TsigKey>,
    attempts: u32,
    timeout: Duration,
    /// Seconds a signed answer's time may be off ([`tsig::on_time`]).
    tsig_window: u64,
}

impl Notify {
    async fn run(self, state: &TransferState) {
        let started = Instant::now();
        let bind: SocketAddr = match self.target.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = match UdpSocket::bind(bind).await {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(%error, zone = %self.zone, "cannot open a socket for NOTIFY");
                return;
            }
        };
        let mut wait = self.timeout;
        for attempt in 1..=self.attempts {
            let id = notify_id(self.serial, attempt);
            let (message, request_mac) = self.message(id);
            let expect = Expect {
                target: self.target,
                id,
                signed: self.key.as_ref().map(|key| (key, request_mac.as_slice())),
                tsig_window: self.tsig_window,
            };
            state.metrics.notify_sent.fetch_add(1, Ordering::Relaxed);
            if let Err(error) = socket.send_to(&message, self.target).await {
                tracing::debug!(%error, target = %self.target, "NOTIFY not sent");
            } else if let Some(code) = await_response(&socket, &expect, wait).await {
                state.metrics.notify_acked.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    zone = %self.zone,
                    serial = self.serial,
                    secondary = %self.secondary,
                    target = %self.target,
                    attempt,
                    rcode = code,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "notify answered"
                );
                return;
            }
            wait = (wait * 2).min(Duration::from_secs(60));
        }
        state.metrics.notify_failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            zone = %self.zone,
            serial = self.serial,
            secondary = %self.secondary,
            target = %self.target,
            attempts = self.attempts,
            "notify not answered; the secondary will find the change at its next refresh"
        );
    }

    /// The NOTIFY: question `zone SOA IN`, AA, signed if the secondary has a key
    /// (then also the request's MAC, which the response's TSIG covers).
    fn message(&self, id: u16) -> (Vec<u8>, Vec<u8>) {
        let mut message = Vec::with_capacity(128);
        message.extend_from_slice(&id.to_be_bytes());
        message.extend_from_slice(&(OPCODE_NOTIFY << 11 | 0x0400).to_be_bytes());
        message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        message.extend_from_slice(&name::wire_from_text(&self.zone).unwrap_or_else(|| vec![0]));
        message.extend_from_slice(&rtype::SOA.to_be_bytes());
        message.extend_from_slice(&1u16.to_be_bytes());
        let request_mac = match &self.key {
            Some(key) => tsig::sign_request(&mut message, key, tsig::unix_now()),
            None => Vec::new(),
        };
        (message, request_mac)
    }
}

/// An id for attempt `attempt` of a NOTIFY (ids only need to tell attempts apart;
/// answers are also matched by source address).
fn notify_id(serial: u32, attempt: u32) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ serial.rotate_left(7) ^ attempt.wrapping_mul(0x9E37)) as u16
}

/// The response a NOTIFY waits for.
struct Expect<'a> {
    target: SocketAddr,
    id: u16,
    /// Signed NOTIFY: the key and the request's MAC the response must be signed over.
    signed: Option<(&'a crate::config::TsigKey, &'a [u8])>,
    /// Seconds the response's signing time may be off.
    tsig_window: u64,
}

/// Waits up to `wait` for the NOTIFY response `expect` describes; its rcode. To a
/// signed NOTIFY only a response signed with the same key counts (RFC 8945 §5.3):
/// an unsigned or forged one would otherwise stop the retries.
async fn await_response(socket: &UdpSocket, expect: &Expect<'_>, wait: Duration) -> Option<u16> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
        let (len, from) = match received {
            Ok(Ok(got)) => got,
            Ok(Err(_)) => continue,
            Err(_) => return None,
        };
        if from != expect.target {
            continue;
        }
        let response = &buf[..len];
        let Ok(header) = Reader::new(response).header() else {
            continue;
        };
        let opcode = (header.flags >> 11) & 0xF;
        if header.id != expect.id || header.flags & 0x8000 == 0 || opcode != OPCODE_NOTIFY {
            continue;
        }
        if let Some((key, request_mac)) = expect.signed {
            if let Err(rejection) = tsig::verify_response(
                response,
                key,
                request_mac,
                tsig::unix_now(),
                expect.tsig_window,
            ) {
                crate::log_limited!(
                    warn,
                    "NOTIFY response not signed with the secondary's key; ignored",
                    target = %expect.target,
                    key = %key.name,
                    ?rejection
                );
                continue;
            }
        }
        return Some(header.flags & 0xF);
    }
}
