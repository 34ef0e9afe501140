//! NOTIFY (RFC 1996): when a zone's serial changes, every secondary serving it is
//! told over UDP, retried with a doubling wait until it answers or the attempts are
//! used up. A newer change supersedes a NOTIFY still being retried for the zone.
//!
//! NOTIFYs leave from the server's own address, as secondaries' ACLs expect (they
//! key NOTIFY acceptance on the primary's address): `[transfer] notify_source`, or
//! else a DNS listen address of the target's family ([`source_for`]), from an
//! ephemeral port.

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
/// hands it until `shutdown`, from addresses chosen among `listen` (the DNS listen
/// addresses, as bound) by [`source_for`]. Does nothing if already started.
pub(crate) fn spawn(
    state: Arc<TransferState>,
    listen: Vec<SocketAddr>,
    shutdown: CancellationToken,
) {
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
                        let source = source_for(
                            target,
                            settings.notify_source,
                            &listen,
                            route_source(target),
                        );
                        let job = Notify {
                            source,
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
    /// The address it leaves from (port 0: an ephemeral one).
    source: IpAddr,
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
        let socket = match UdpSocket::bind((self.source, 0)).await {
            Ok(socket) => socket,
            Err(error) => {
                state.metrics.notify_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, zone = %self.zone, source = %self.source, target = %self.target, "cannot open a socket for NOTIFY from this address");
                return;
            }
        };
        let mut wait = self.timeout;
        for attempt in 1..=self.attempts {
            let id = notify_id();
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
                    source = %self.source,
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

/// The address NOTIFYs to `target` leave from: `configured` (`[transfer]
/// notify_source`) if it is of the target's family; else the DNS listen address of
/// that family the route to the target leaves from (`route`, as the kernel picks
/// it), if the server listens there; else the first specific (non-wildcard) listen
/// address of that family; else the wildcard (the kernel's choice).
pub(crate) fn source_for(
    target: SocketAddr,
    configured: Option<IpAddr>,
    listen: &[SocketAddr],
    route: Option<IpAddr>,
) -> IpAddr {
    let family = |ip: &IpAddr| ip.is_ipv4() == target.is_ipv4();
    if let Some(ip) = configured.filter(family) {
        return ip;
    }
    let same: Vec<IpAddr> = listen.iter().map(SocketAddr::ip).filter(family).collect();
    if let Some(ip) = route.filter(|r| same.contains(r)) {
        return ip;
    }
    if let Some(ip) = same.iter().find(|ip| !ip.is_unspecified()) {
        return *ip;
    }
    match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// The source address the kernel's route to `target` uses (a connected UDP socket's
/// local address; nothing is sent).
fn route_source(target: SocketAddr) -> Option<IpAddr> {
    let wildcard: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(wildcard).ok()?;
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

/// An id for a NOTIFY attempt: random, so an off-path attacker cannot
/// answer for the secondary (answers are also matched by source address).
fn notify_id() -> u16 {
    crate::runtime::random::u16()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn notifies_leave_from_a_listen_address_of_the_targets_family() {
        let target = addr("192.0.2.53:53");
        let v6_target = addr("[2001:db8::53]:53");
        let listen = [
            addr("0.0.0.0:53"),
            addr("198.51.100.1:53"),
            addr("203.0.113.1:53"),
            addr("[2001:db8::1]:53"),
        ];
        // The listen address the route leaves from.
        let route = Some(ip("203.0.113.1"));
        assert_eq!(source_for(target, None, &listen, route), ip("203.0.113.1"));
        // A route from an address we do not listen on: the first specific one.
        let elsewhere = Some(ip("10.0.0.1"));
        assert_eq!(
            source_for(target, None, &listen, elsewhere),
            ip("198.51.100.1")
        );
        assert_eq!(
            source_for(v6_target, None, &listen, None),
            ip("2001:db8::1")
        );
        // Only a wildcard of that family: the wildcard (the kernel picks).
        let wild = [addr("0.0.0.0:53"), addr("[::]:53")];
        assert_eq!(source_for(target, None, &wild, route), ip("0.0.0.0"));
        assert_eq!(source_for(v6_target, None, &wild, None), ip("::"));
        // No listen address of the family at all: the wildcard.
        assert_eq!(source_for(v6_target, None, &listen[..3], None), ip("::"));
        // notify_source wins for its family only.
        let configured = Some(ip("198.51.100.9"));
        assert_eq!(
            source_for(target, configured, &listen, route),
            ip("198.51.100.9")
        );
        assert_eq!(
            source_for(v6_target, configured, &listen, None),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn the_route_source_to_loopback_is_loopback() {
        assert_eq!(route_source(addr("127.0.0.1:53")), Some(ip("127.0.0.1")));
    }
}
