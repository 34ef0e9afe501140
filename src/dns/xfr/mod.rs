//! Hidden-primary mode: zone transfers (AXFR, RFC 5936; IXFR, RFC 1995) to
//! configured secondaries, TSIG (RFC 8945) and NOTIFY (RFC 1996).
//!
//! ```text
//!  plane publishes a Snapshot ─▶ TransferState::stamp (blocking task, off the DNS path)
//!      │   content = static records + client-independent dynamic answers
//!      │   changed? ─▶ serial+1 (RFC 1982), saved to the serial file, journal push,
//!      │              SOA serial patched into the snapshot (so SOA queries agree)
//!      ▼
//!  SharedSnapshot::store ─▶ TransferState::announce ─▶ notifier task ─▶ NOTIFY/UDP
//!
//!  TCP query AXFR/IXFR ─▶ respond(request, source) ─▶ Reply (messages in order)
//!      TSIG verified, ACL checked; IXFR from the journal, else AXFR-style
//! ```
//!
//! [`transfer`] is the transport-independent entry point (request bytes in, wire
//! messages out); [`TransferState`] is the TCP path's [`TransferHandler`], so the
//! messages go out byte for byte as signed. Over UDP, IXFR is answered here too
//! (RFC 1995 §2): the transfer if it fits in one datagram of the size the query
//! allows, else the current SOA alone, which tells the client to use TCP. The UDP
//! worker never waits on the state's lock: while a stamp holds it, the SOA the
//! snapshot answers with is the reply. AXFR over UDP gets NOTIMP from the
//! responder (RFC 5936 §4.2).

pub(crate) mod content;
pub(crate) mod journal;
pub(crate) mod notify;
pub(crate) mod serial;
pub(crate) mod tsig;
pub(crate) mod wire;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tokio::sync::mpsc;

use self::content::{Record, StaticContent, ZoneContent};
use self::journal::Journal;
use self::serial::{SavedSerial, SerialFile};
use self::tsig::{Rejection, ResponseSigner, TsigRecord};
use self::wire::Reader;
use super::answers::Snapshot;
use super::transfer::TransferHandler;
use super::wire::rcode;
use crate::config::TransferConfig;
use crate::telemetry::names;
use crate::telemetry::registry::{Kind, labelled};
use crate::zone::{Zone, name, rtype};

/// Largest transfer message we build before TSIG (well below 64 KiB).
const MESSAGE_BUDGET: usize = 16 * 1024;

/// Versions a publish looks back through for the same transferable answers (a
/// flapping endpoint moves a zone between two or three), besides the current one.
const RECENT_CONTENTS: usize = 4;

/// Response code NOTAUTH (RFC 2845/8945: TSIG failures; RFC 5936: not our zone).
const NOTAUTH: u16 = rcode::NOTAUTH;

/// Zones (absolute names) whose serial changed, with the new serial.
type Changes = Vec<(String, u32)>;

/// One zone's transfer state.
#[derive(Debug)]
struct ZoneState {
    journal: Journal,
}

/// State behind the lock (taken per publish and per transfer, never per query).
#[derive(Debug)]
struct Inner {
    settings: Arc<TransferConfig>,
    zones: HashMap<Box<[u8]>, ZoneState>,
    /// Static content per loaded zone (weak: a dropped zone's entry is pruned).
    statics: Vec<(Weak<Zone>, Arc<StaticContent>)>,
    saved: SerialFile,
    /// Zones changed since the last announcement, with their serials.
    pending: Vec<(String, u32)>,
}

/// Counters of transfers and NOTIFYs.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct TransferMetrics {
    axfr: AtomicU64,
    ixfr: AtomicU64,
    ixfr_as_axfr: AtomicU64,
    ixfr_current: AtomicU64,
    refused_acl: AtomicU64,
    refused_tsig: AtomicU64,
    refused_zone: AtomicU64,
    malformed: AtomicU64,
    notify_sent: AtomicU64,
    notify_acked: AtomicU64,
    notify_failed: AtomicU64,
    udp_soa_only: AtomicU64,
}

impl TransferMetrics {
    /// Appends the Prometheus text of every counter.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn render(&self, out: &mut String) {
        out.push_str(&crate::telemetry::registry::encode_one(self.values()));
    }

    /// The counters as of now, by label.
    fn values(&self) -> TransferValues {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransferValues {
            served: [
                ("axfr", get(&self.axfr)),
                ("ixfr", get(&self.ixfr)),
                ("ixfr_as_axfr", get(&self.ixfr_as_axfr)),
                ("ixfr_current", get(&self.ixfr_current)),
                ("ixfr_udp_soa_only", get(&self.udp_soa_only)),
            ],
            refused: [
                ("acl", get(&self.refused_acl)),
                ("tsig", get(&self.refused_tsig)),
                ("zone", get(&self.refused_zone)),
                ("malformed", get(&self.malformed)),
            ],
            notify: [
                ("sent", get(&self.notify_sent)),
                ("acked", get(&self.notify_acked)),
                ("failed", get(&self.notify_failed)),
            ],
        }
    }

    /// IXFRs over UDP answered with the current SOA alone (the transfer did not fit
    /// the datagram, or a stamp was under way): the client retries over TCP.
    #[cfg(test)]
    pub(crate) fn udp_soa_only(&self) -> u64 {
        self.udp_soa_only.load(Ordering::Relaxed)
    }

    /// Transfers served: (AXFR, IXFR incremental, IXFR answered AXFR-style, IXFR
    /// already current).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn served(&self) -> (u64, u64, u64, u64) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            get(&self.axfr),
            get(&self.ixfr),
            get(&self.ixfr_as_axfr),
            get(&self.ixfr_current),
        )
    }

    /// NOTIFY messages (sent, acked, failed).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn notifies(&self) -> (u64, u64, u64) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            get(&self.notify_sent),
            get(&self.notify_acked),
            get(&self.notify_failed),
        )
    }
}

/// How the messages of a [`Reply`] are signed.
#[derive(Clone, Debug)]
pub(crate) enum Signing {
    /// Not at all (the request was not signed).
    None,
    /// Each message, chained (RFC 8945 §5.3.1).
    Sign(ResponseSigner),
    /// An unsigned TSIG record carrying an error (BADKEY, BADSIG).
    Error(TsigRecord),
}

impl Signing {
    /// The TSIG record for the next message `unsigned`, if any.
    pub(crate) fn next(&mut self, unsigned: &[u8], now: u64) -> Option<TsigRecord> {
        match self {
            Self::None => None,
            Self::Sign(signer) => Some(signer.sign(unsigned, now)),
            Self::Error(record) => Some(record.clone()),
        }
    }
}

/// The answer to a transfer request: messages to send in order, unsigned, and how
/// to sign them.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    /// Complete DNS messages without TSIG.
    pub messages: Vec<Vec<u8>>,
    /// Signing of each message.
    pub signing: Signing,
    /// For an IXFR: the message holding the current SOA alone, sent instead over
    /// UDP when the messages do not fit one datagram (RFC 1995 §2).
    pub soa_only: Option<Vec<u8>>,
}

impl Reply {
    /// The one datagram answering over UDP: the only message if, signed (and with an
    /// OPT record of `payload` when the query had one), it fits in `limit` bytes;
    /// else the SOA alone. The second value says the SOA alone was sent.
    pub(crate) fn into_datagram(
        self,
        limit: usize,
        payload: Option<u16>,
        now: u64,
    ) -> (Vec<u8>, bool) {
        let finish = |mut message: Vec<u8>| {
            if let Some(payload) = payload {
                append_opt(&mut message, payload);
            }
            if let Some(tsig) = self.signing.clone().next(&message, now) {
                tsig.append_to(&mut message);
            }
            message
        };
        if let [only] = &self.messages[..] {
            let message = finish(only.clone());
            if message.len() <= limit || self.soa_only.is_none() {
                return (message, false);
            }
        }
        match &self.soa_only {
            Some(soa) => (finish(soa.clone()), true),
            None => (
                finish(self.messages.first().cloned().unwrap_or_default()),
                false,
            ),
        }
    }

    /// The messages as they go on the wire (each signed if the request was).
    pub(crate) fn into_wire(mut self, now: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.messages.len());
        for mut message in std::mem::take(&mut self.messages) {
            if let Some(tsig) = self.signing.next(&message, now) {
                tsig.append_to(&mut message);
            }
            out.push(message);
        }
        out
    }
}

/// Answers an AXFR or IXFR request from `source`: the messages to send in order
/// (`None`: drop the request). Transport independent; call it off the async
/// workers (a large zone takes a while to encode).
pub(crate) fn transfer(
    request: &[u8],
    source: IpAddr,
    state: &TransferState,
) -> Option<Vec<Vec<u8>>> {
    state
        .respond(request, source)
        .map(|r| r.into_wire(tsig::unix_now()))
}

impl TransferHandler for TransferState {
    fn wants(&self, query: &[u8]) -> bool {
        wants(query)
    }

    fn answer_udp(
        &self,
        snapshot: &Snapshot,
        query: &[u8],
        client: std::net::SocketAddr,
    ) -> Option<Vec<u8>> {
        // Without secondaries, and for a query the responder would reject (FORMERR,
        // …), the responder answers (NOTAUTH: transfers not offered, as Knot and NSD
        // answer).
        if !snapshot.config.transfer.enabled() {
            return None;
        }
        let super::wire::Parsed::Query(parsed) = super::wire::parse(query) else {
            return None;
        };
        let limit = super::engine::response_limit(
            parsed.edns.as_ref(),
            super::engine::Transport::Udp,
            snapshot.limits.max_udp_payload,
        );
        let payload = parsed.edns.map(|_| snapshot.limits.max_udp_payload);
        let reply = self.respond_via(query, client.ip(), Via::Udp(snapshot))?;
        let (datagram, soa_only) = reply.into_datagram(limit, payload, tsig::unix_now());
        if soa_only {
            self.metrics.udp_soa_only.fetch_add(1, Ordering::Relaxed);
            // UDP sources can be forged: this line is rate limited.
            crate::log_limited!(
                info,
                "IXFR over UDP answered with the SOA alone (the transfer does not fit the datagram, or a publish holds the transfer state): the client is to use TCP",
                %client,
                limit
            );
        }
        Some(datagram)
    }

    fn answer_transfer(
        &self,
        _snapshot: &Snapshot,
        query: &[u8],
        client: std::net::SocketAddr,
    ) -> Option<Vec<Vec<u8>>> {
        transfer(query, client.ip(), self)
    }
}

/// Whether a TCP query is this module's: QTYPE AXFR or IXFR, or a TSIG-signed SOA
/// query (secondaries check the serial with one; its answer must be signed).
pub(crate) fn wants(request: &[u8]) -> bool {
    let mut reader = Reader::new(request);
    let Ok(header) = reader.header() else {
        return false;
    };
    if header.qdcount != 1 || header.flags & 0x8000 != 0 || (header.flags >> 11) & 0xF != 0 {
        return false;
    }
    if reader.name().is_err() {
        return false;
    }
    match reader.u16() {
        Ok(rtype::AXFR | rtype::IXFR) => true,
        Ok(rtype::SOA) => header.arcount > 0 && matches!(tsig::split(request), Ok(Some(_))),
        _ => false,
    }
}

/// The transfer counters on `/metrics`, read at scrape time.
impl Collector for TransferState {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.metrics.values().encode(encoder)
    }
}

/// The transfer counters as read for one scrape, by label value.
#[derive(Debug)]
struct TransferValues {
    served: [(&'static str, u64); 5],
    refused: [(&'static str, u64); 4],
    notify: [(&'static str, u64); 3],
}

impl Collector for TransferValues {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        labelled(
            &mut encoder,
            names::TRANSFERS_TOTAL,
            "Zone transfers served, by kind.",
            Kind::Counter,
            "kind",
            self.served,
        )?;
        labelled(
            &mut encoder,
            names::TRANSFERS_REFUSED_TOTAL,
            "Transfer requests refused, by reason.",
            Kind::Counter,
            "reason",
            self.refused,
        )?;
        labelled(
            &mut encoder,
            names::NOTIFY_TOTAL,
            "NOTIFY messages, by outcome.",
            Kind::Counter,
            "outcome",
            self.notify,
        )
    }
}

/// Transfer state shared by the plane (publishing), the TCP path (serving) and the
/// notifier.
#[derive(Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct TransferState {
    inner: Mutex<Inner>,
    metrics: TransferMetrics,
    announcements: mpsc::UnboundedSender<Changes>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Changes>>>,
}

impl TransferState {
    /// State for `settings`, with the serials saved in its state file (a file that
    /// cannot be read is logged and ignored: serials then start from the zones').
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(settings: &TransferConfig) -> Arc<Self> {
        let saved = match &settings.state_file {
            Some(path) => SerialFile::load(path).unwrap_or_else(|error| {
                tracing::error!(%error, "cannot read the serial file; starting from the zone files' serials");
                SerialFile::default()
            }),
            None => SerialFile::default(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            inner: Mutex::new(Inner {
                settings: Arc::new(settings.clone()),
                zones: HashMap::new(),
                statics: Vec::new(),
                saved,
                pending: Vec::new(),
            }),
            metrics: TransferMetrics::default(),
            announcements: tx,
            receiver: Mutex::new(Some(rx)),
        })
    }

    /// The counters.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn metrics(&self) -> &TransferMetrics {
        &self.metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current serial of a zone (absolute name), if it is transferable.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn serial(&self, zone: &str) -> Option<u32> {
        let origin = name::wire_from_text(zone)?;
        let inner = self.lock();
        inner
            .zones
            .get(origin.as_slice())
            .and_then(|z| z.journal.current())
            .map(|c| c.serial)
    }

    /// Takes in a snapshot about to be published: computes each transferable zone's
    /// content, gives changed content the next serial (saved before it is served),
    /// keeps the version for IXFR and returns the snapshot with its zones' SOA
    /// serials set. Blocking (file I/O, encoding): run it where the snapshot is
    /// built, never on the DNS path.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn stamp(&self, snapshot: Snapshot) -> Snapshot {
        let settings = &snapshot.config.transfer;
        let mut inner = self.lock();
        inner.settings = Arc::new(settings.clone());
        if !settings.enabled() {
            return snapshot;
        }
        inner.statics.retain(|(zone, _)| zone.strong_count() > 0);
        let mut patches = Vec::new();
        let mut dirty = false;
        for (index, zone) in snapshot.zones.zones().iter().enumerate() {
            let zone_name = zone.origin_text();
            if !settings.secondaries.iter().any(|s| s.serves(&zone_name)) {
                continue;
            }
            let statics = match inner
                .statics
                .iter()
                .find(|(z, _)| std::ptr::eq(z.as_ptr(), Arc::as_ptr(zone)))
            {
                Some((_, statics)) => statics.clone(),
                None => {
                    let statics = Arc::new(StaticContent::of(zone, snapshot.signed_zone(index)));
                    inner.statics.push((Arc::downgrade(zone), statics.clone()));
                    statics
                }
            };
            // Nothing transferable changed (a doubt, a pin): the current version
            // stands, unsigned and unsorted work aside.
            let unchanged = inner
                .zones
                .get(zone.origin())
                .and_then(|z| z.journal.current())
                .filter(|current| {
                    current.same_as(
                        &statics,
                        &snapshot.config,
                        &snapshot.dynamic,
                        snapshot.signed_zone(index),
                    )
                })
                .map(|current| current.serial);
            if let Some(serial) = unchanged {
                if zone.soa_serial() != serial {
                    patches.push((index, serial, statics));
                }
                continue;
            }
            // A change back to a recent version's transferable answers (a failover
            // and its return): that version's records serve again.
            let recent = inner.zones.get(zone.origin()).and_then(|z| {
                z.journal
                    .newest(RECENT_CONTENTS + 1)
                    .skip(1)
                    .find(|version| {
                        version.same_as(
                            &statics,
                            &snapshot.config,
                            &snapshot.dynamic,
                            snapshot.signed_zone(index),
                        )
                    })
            });
            let content = match recent {
                Some(version) => version.again(
                    &snapshot.config,
                    &snapshot.dynamic,
                    snapshot.signed_zone(index),
                ),
                None => ZoneContent::build(
                    zone.origin(),
                    statics.clone(),
                    &snapshot.config,
                    &snapshot.dynamic,
                    snapshot.signed_zone(index),
                ),
            };
            let Inner {
                zones,
                saved,
                pending,
                ..
            } = &mut *inner;
            let state = zones
                .entry(zone.origin().into())
                .or_insert_with(|| ZoneState {
                    journal: Journal::new(settings.journal_versions),
                });
            state.journal.set_capacity(settings.journal_versions);
            let last = state
                .journal
                .current()
                .map(|c| SavedSerial {
                    serial: c.serial,
                    hash: c.hash.clone(),
                })
                .or_else(|| saved.zones.get(&zone_name).cloned());
            let serial = serial::choose(statics.file_serial, last.as_ref(), &content.hash);
            let changed = state
                .journal
                .current()
                .is_none_or(|c| c.serial != serial || c.hash != content.hash);
            if changed {
                let previous = state.journal.current().map(|c| c.serial);
                let hash = content.hash.clone();
                state.journal.push(Arc::new(content.with_serial(serial)));
                saved.zones.insert(
                    zone_name.clone(),
                    SavedSerial {
                        serial,
                        hash: hash.clone(),
                    },
                );
                dirty = true;
                tracing::info!(zone = %zone_name, serial, previous = ?previous, "transferable zone content changed");
                pending.push((zone_name, serial));
            }
            if zone.soa_serial() != serial {
                patches.push((index, serial, statics));
            }
        }
        if dirty {
            if let Some(path) = &settings.state_file {
                if let Err(error) = inner.saved.save(path) {
                    tracing::error!(%error, "cannot save the serial file");
                }
            }
        }
        if patches.is_empty() {
            return snapshot;
        }
        let serials: Vec<(usize, u32)> = patches.iter().map(|(i, s, _)| (*i, *s)).collect();
        let snapshot = snapshot.with_zone_serials(&serials);
        for (index, _, statics) in patches {
            if let Some(zone) = snapshot.zones.zones().get(index) {
                inner.statics.push((Arc::downgrade(zone), statics));
            }
        }
        snapshot
    }

    /// Hands the zones changed by the last stamps to the notifier. Call it once the
    /// stamped snapshot is published, so a secondary asking at once sees the serial.
    pub(crate) fn announce(&self) {
        let pending = std::mem::take(&mut self.lock().pending);
        if !pending.is_empty() {
            let _ = self.announcements.send(pending);
        }
    }

    /// The notifier's end of the announcements (taken once).
    fn take_announcements(&self) -> Option<mpsc::UnboundedReceiver<Changes>> {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Answers a transfer request (see [`transfer`]).
    pub(crate) fn respond(&self, request: &[u8], source: IpAddr) -> Option<Reply> {
        self.respond_via(request, source, Via::Tcp)
    }

    /// [`Self::respond`] for a request that came `via` a transport.
    fn respond_via(&self, request: &[u8], source: IpAddr, via: Via<'_>) -> Option<Reply> {
        let mut reader = Reader::new(request);
        let header = reader.header().ok()?;
        if header.flags & 0x8000 != 0 {
            return None; // a response: never answered
        }
        let malformed = |question: &[u8]| {
            self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
            Some(error_reply(
                &header,
                question,
                rcode::FORMERR,
                Signing::None,
            ))
        };
        if header.qdcount != 1 || (header.flags >> 11) & 0xF != 0 {
            return malformed(&[]);
        }
        let Ok(qname) = reader.name() else {
            return malformed(&[]);
        };
        let (Ok(qtype), Ok(qclass)) = (reader.u16(), reader.u16()) else {
            return malformed(&[]);
        };
        let question = request[12..reader.position()].to_vec();
        let Ok(signed) = tsig::split(request) else {
            return malformed(&question);
        };
        let held;
        let settings: &TransferConfig = match via {
            Via::Tcp => {
                held = self.lock().settings.clone();
                &held
            }
            Via::Udp(snapshot) => &snapshot.config.transfer,
        };
        let now = tsig::unix_now();
        let (signing, key) = match &signed {
            None => (Signing::None, None),
            Some(signed) => {
                match tsig::verify(signed, &settings.keys, now, settings.tsig_window.as_secs()) {
                    Ok(key) => (
                        Signing::Sign(ResponseSigner::new(key.clone(), &signed.tsig)),
                        Some(key.name.clone()),
                    ),
                    Err((rejection, key)) => {
                        self.metrics.refused_tsig.fetch_add(1, Ordering::Relaxed);
                        crate::log_limited!(
                            warn,
                            "transfer refused: TSIG",
                            %source,
                            zone = ?name::text_from_wire(&qname),
                            ?rejection
                        );
                        let signing = match (rejection, key) {
                            (Rejection::BadTime, Some(key)) => Signing::Sign(
                                ResponseSigner::bad_time(key.clone(), &signed.tsig, now),
                            ),
                            (Rejection::BadKey, _) => Signing::Error(tsig::error_record(
                                &signed.tsig,
                                tsig::error::BADKEY,
                                now,
                            )),
                            _ => Signing::Error(tsig::error_record(
                                &signed.tsig,
                                tsig::error::BADSIG,
                                now,
                            )),
                        };
                        return Some(error_reply(&header, &question, NOTAUTH, signing));
                    }
                }
            }
        };
        let zone_name = name::text_from_wire(&qname);
        if qclass != 1 || !matches!(qtype, rtype::AXFR | rtype::IXFR | rtype::SOA) {
            self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
            return Some(error_reply(&header, &question, rcode::REFUSED, signing));
        }
        let allowed = settings.secondaries.iter().any(|s| {
            s.serves(&zone_name)
                && s.allow.iter().any(|net| net.contains(&source))
                && s.key
                    .is_none_or(|k| key.as_deref() == Some(settings.keys[k].name.as_str()))
        });
        if !allowed {
            self.metrics.refused_acl.fetch_add(1, Ordering::Relaxed);
            crate::log_limited!(
                warn,
                "transfer refused: not an allowed secondary",
                %source,
                zone = ?zone_name,
                signed = key.is_some()
            );
            return Some(error_reply(&header, &question, rcode::REFUSED, signing));
        }
        let (current, old) = {
            let inner = match via {
                Via::Tcp => self.lock(),
                Via::Udp(snapshot) => match self.inner.try_lock() {
                    Ok(inner) => inner,
                    Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => {
                        // A stamp is under way: the snapshot's SOA sends the client
                        // to TCP (or tells it it is current).
                        let Some(soa) = snapshot_soa(snapshot, &qname) else {
                            self.metrics.refused_zone.fetch_add(1, Ordering::Relaxed);
                            return Some(error_reply(&header, &question, NOTAUTH, signing));
                        };
                        let mut builder = Builder::new(&header, &question);
                        builder.push(&soa);
                        return Some(Reply {
                            messages: Vec::new(),
                            signing,
                            soa_only: builder.finish().pop(),
                        });
                    }
                },
            };
            let Some(state) = inner.zones.get(qname.as_slice()) else {
                drop(inner);
                self.metrics.refused_zone.fetch_add(1, Ordering::Relaxed);
                return Some(error_reply(&header, &question, NOTAUTH, signing));
            };
            let Some(current) = state.journal.current().cloned() else {
                drop(inner);
                self.metrics.refused_zone.fetch_add(1, Ordering::Relaxed);
                return Some(error_reply(&header, &question, rcode::SERVFAIL, signing));
            };
            let old = if qtype == rtype::IXFR {
                match ixfr_serial(request, &header, reader.position()) {
                    Some(client) => Some((client, state.journal.find(client).cloned())),
                    None => {
                        drop(inner);
                        self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
                        return Some(error_reply(&header, &question, rcode::FORMERR, signing));
                    }
                }
            } else {
                None
            };
            (current, old)
        };
        let mut builder = Builder::new(&header, &question);
        let soa = current.soa();
        let kind = match old {
            _ if qtype == rtype::SOA => {
                builder.push(&soa);
                "soa"
            }
            Some((client, _)) if !serial::is_newer(current.serial, client) => {
                builder.push(&soa);
                self.metrics.ixfr_current.fetch_add(1, Ordering::Relaxed);
                "ixfr (current)"
            }
            Some((_, Some(old))) => {
                let difference = journal::difference(&old, &current);
                builder.push(&soa);
                builder.push(&old.soa());
                difference.deleted.iter().for_each(|r| builder.push(r));
                builder.push(&soa);
                difference.added.iter().for_each(|r| builder.push(r));
                builder.push(&soa);
                self.metrics.ixfr.fetch_add(1, Ordering::Relaxed);
                "ixfr"
            }
            old => {
                builder.push(&soa);
                current.records().for_each(|r| builder.push(r));
                builder.push(&soa);
                if old.is_some() {
                    self.metrics.ixfr_as_axfr.fetch_add(1, Ordering::Relaxed);
                    "ixfr (axfr-style)"
                } else {
                    self.metrics.axfr.fetch_add(1, Ordering::Relaxed);
                    "axfr"
                }
            }
        };
        let messages = builder.finish();
        let soa_only = (qtype == rtype::IXFR).then(|| {
            let mut builder = Builder::new(&header, &question);
            builder.push(&soa);
            builder.finish().concat()
        });
        match via {
            Via::Tcp => {
                tracing::info!(%source, zone = %zone_name, serial = current.serial, kind, transport = "tcp", messages = messages.len(), signed = key.is_some(), "transfer served");
            }
            // UDP sources can be forged: rate limited.
            Via::Udp(_) => crate::log_limited!(
                info,
                "transfer served",
                %source,
                zone = %zone_name,
                serial = current.serial,
                kind,
                transport = "udp",
                signed = key.is_some()
            ),
        }
        Some(Reply {
            messages,
            signing,
            soa_only,
        })
    }
}

/// The transport a transfer request came in by.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// TCP (or the transport-independent [`transfer`]): the state's lock is waited
    /// for.
    Tcp,
    /// UDP, on a DNS worker thread: the settings come from the snapshot the worker
    /// answers from, and the lock is only tried.
    Udp(&'a Snapshot),
}

/// The apex SOA `snapshot` answers with for the zone whose origin is `origin`.
fn snapshot_soa(snapshot: &Snapshot, origin: &[u8]) -> Option<Record> {
    let zone = &snapshot.zones.zones()[snapshot.zones.find_zone(origin)?];
    if zone.origin() != origin {
        return None;
    }
    let (_, set) = zone.soa();
    Some(Record {
        owner: origin.into(),
        rtype: rtype::SOA,
        rdata: zone.rdata(set).iter().next()?.into(),
        ttl: set.ttl,
    })
}

/// Appends an OPT record (RFC 6891: our UDP payload size, no flags or options) to
/// a message.
fn append_opt(message: &mut Vec<u8>, payload: u16) {
    message.extend_from_slice(&[0, 0, 41]);
    message.extend_from_slice(&payload.to_be_bytes());
    message.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    wire::bump_count(message, 10);
}

/// The serial of the SOA in an IXFR request's authority section.
fn ixfr_serial(request: &[u8], header: &wire::Header, after_question: usize) -> Option<u32> {
    if header.nscount == 0 {
        return None;
    }
    let mut reader = Reader::at(request, after_question);
    for _ in 0..header.ancount {
        reader.name().ok()?;
        reader.skip(8).ok()?;
        let len = usize::from(reader.u16().ok()?);
        reader.skip(len).ok()?;
    }
    reader.name().ok()?;
    if reader.u16().ok()? != rtype::SOA {
        return None;
    }
    reader.skip(6).ok()?;
    let len = usize::from(reader.u16().ok()?);
    let rdata = reader.bytes(len).ok()?;
    let at = rdata.len().checked_sub(20)?;
    Some(u32::from_be_bytes(rdata[at..at + 4].try_into().ok()?))
}

/// Response flags: QR, AA, RD echoed, `code`.
fn response_flags(request: &wire::Header, code: u16, authoritative: bool) -> u16 {
    0x8000 | if authoritative { 0x0400 } else { 0 } | (request.flags & 0x0100) | (code & 0xF)
}

/// A reply of one message with no records.
fn error_reply(header: &wire::Header, question: &[u8], code: u16, signing: Signing) -> Reply {
    let mut message = Vec::with_capacity(12 + question.len());
    message.extend_from_slice(&header.id.to_be_bytes());
    message.extend_from_slice(&response_flags(header, code, false).to_be_bytes());
    let qdcount = u16::from(!question.is_empty());
    message.extend_from_slice(&qdcount.to_be_bytes());
    message.extend_from_slice(&[0; 6]);
    message.extend_from_slice(question);
    Reply {
        messages: vec![message],
        signing,
        soa_only: None,
    }
}

/// Splits a record stream into messages of at most [`MESSAGE_BUDGET`] bytes.
struct Builder<'r> {
    header: &'r wire::Header,
    question: &'r [u8],
    messages: Vec<Vec<u8>>,
    current: Vec<u8>,
}

impl<'r> Builder<'r> {
    fn new(header: &'r wire::Header, question: &'r [u8]) -> Self {
        let mut builder = Self {
            header,
            question,
            messages: Vec::new(),
            current: Vec::new(),
        };
        builder.start();
        builder
    }

    fn start(&mut self) {
        self.current.clear();
        self.current
            .extend_from_slice(&self.header.id.to_be_bytes());
        self.current
            .extend_from_slice(&response_flags(self.header, 0, true).to_be_bytes());
        self.current.extend_from_slice(&1u16.to_be_bytes());
        self.current.extend_from_slice(&[0; 6]);
        self.current.extend_from_slice(self.question);
    }

    fn ancount(&self) -> u16 {
        u16::from_be_bytes([self.current[6], self.current[7]])
    }

    fn push(&mut self, record: &Record) {
        let len = wire::record_len(&record.owner, &record.rdata);
        if self.ancount() > 0 && self.current.len() + len > MESSAGE_BUDGET {
            self.messages.push(std::mem::take(&mut self.current));
            self.start();
        }
        wire::push_record(
            &mut self.current,
            &record.owner,
            record.rtype,
            record.ttl,
            &record.rdata,
        );
        wire::bump_count(&mut self.current, 6);
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        if self.ancount() > 0 {
            self.messages.push(self.current);
        }
        self.messages
    }
}

#[cfg(test)]
mod tests;
