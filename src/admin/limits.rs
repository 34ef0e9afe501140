//! Who may hold an admin connection (pure: time is passed in).
//!
//! Every accepted connection asks the [`Table`] for a place before anything else is
//! done with it. A place is refused when the client's address already holds its share
//! (`max_connections_per_source`); when every place is taken, the connection that has
//! waited longest for a request on the address holding the most places is evicted
//! (a client that connects and says nothing gives its place to one that speaks), and
//! only when every connection is in the middle of a request is the newcomer refused.
//! So a flood of silent or trickling connections, from one address or many, cannot
//! keep an operator out, and never holds more than `max_connections` descriptors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Why a connection was refused or closed early; the label of
/// `failoverd_admin_connections_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Refused {
    /// Every place was taken by a connection in the middle of a request.
    Limit,
    /// The client's address already held its share.
    SourceLimit,
    /// Closed, idle, to give its place to a new connection.
    Evicted,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// The TLS handshake failed.
    HandshakeFailed,
    /// A request's headers did not arrive in time (or nothing came after the last
    /// answer on a kept-alive connection).
    HeaderTimeout,
    /// The connection made no progress at all for the idle timeout.
    IdleTimeout,
}

impl Refused {
    /// Every reason, in label order.
    pub(crate) const ALL: [Self; 7] = [
        Self::Limit,
        Self::SourceLimit,
        Self::Evicted,
        Self::HandshakeTimeout,
        Self::HandshakeFailed,
        Self::HeaderTimeout,
        Self::IdleTimeout,
    ];

    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Limit => "limit",
            Self::SourceLimit => "source_limit",
            Self::Evicted => "evicted",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::HandshakeFailed => "handshake_failed",
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
        }
    }
}

/// A place in the table.
pub(crate) type Id = u64;

/// One held place.
#[derive(Clone, Copy, Debug)]
struct Place {
    source: IpAddr,
    /// Requests being answered now (a connection with none may be evicted).
    busy: u32,
    /// Since when it has had no request in hand.
    idle_since: Duration,
}

/// The open admin connections of one listener.
#[derive(Debug)]
pub(crate) struct Table {
    max_total: usize,
    max_per_source: usize,
    places: HashMap<Id, Place>,
    per_source: HashMap<IpAddr, usize>,
    next: Id,
}

/// What [`Table::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// The new connection's place.
    pub(crate) id: Id,
    /// A connection to close to make room, if any.
    pub(crate) evict: Option<Id>,
}

impl Table {
    /// An empty table.
    pub(crate) fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            places: HashMap::new(),
            per_source: HashMap::new(),
            next: 0,
        }
    }

    /// Connections held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.places.len()
    }

    /// Gives a new connection from `source` a place at `now`, evicting an idle one if
    /// the table is full.
    pub(crate) fn admit(&mut self, source: IpAddr, now: Duration) -> Result<Admitted, Refused> {
        let mut evict = None;
        let held = self.per_source.get(&source).copied().unwrap_or(0);
        if held >= self.max_per_source {
            // A client at its share gives up its own oldest idle connection, if any.
            evict = Some(
                self.oldest_idle(|p| p.source == source)
                    .ok_or(Refused::SourceLimit)?,
            );
        } else if self.places.len() >= self.max_total {
            evict = Some(self.crowded_idle().ok_or(Refused::Limit)?);
        }
        if let Some(victim) = evict {
            self.release(victim);
        }
        let id = self.next;
        self.next += 1;
        self.places.insert(
            id,
            Place {
                source,
                busy: 0,
                idle_since: now,
            },
        );
        *self.per_source.entry(source).or_default() += 1;
        Ok(Admitted { id, evict })
    }

    /// The idle place (no request in hand) that has waited longest among `which`.
    fn oldest_idle(&self, which: impl Fn(&Place) -> bool) -> Option<Id> {
        self.places
            .iter()
            .filter(|(_, p)| p.busy == 0 && which(p))
            .min_by_key(|(id, p)| (p.idle_since, **id))
            .map(|(id, _)| *id)
    }

    /// The oldest idle place of the address holding the most places (among those with
    /// an idle one): a flood gives up its own connections first.
    fn crowded_idle(&self) -> Option<Id> {
        let mut oldest: HashMap<IpAddr, (Duration, Id)> = HashMap::new();
        for (&id, place) in self.places.iter().filter(|(_, p)| p.busy == 0) {
            let entry = oldest.entry(place.source).or_insert((place.idle_since, id));
            *entry = (*entry).min((place.idle_since, id));
        }
        oldest
            .into_iter()
            .max_by_key(|(ip, (since, id))| {
                let held = self.per_source.get(ip).copied().unwrap_or(0);
                (held, std::cmp::Reverse((*since, *id)))
            })
            .map(|(_, (_, id))| id)
    }

    /// A request began on `id`.
    pub(crate) fn request_started(&mut self, id: Id) {
        if let Some(place) = self.places.get_mut(&id) {
            place.busy += 1;
        }
    }

    /// A request on `id` was answered at `now`.
    pub(crate) fn request_ended(&mut self, id: Id, now: Duration) {
        if let Some(place) = self.places.get_mut(&id) {
            place.busy = place.busy.saturating_sub(1);
            if place.busy == 0 {
                place.idle_since = now;
            }
        }
    }

    /// Frees the place of a closed (or evicted) connection. Idempotent.
    pub(crate) fn release(&mut self, id: Id) {
        if let Some(place) = self.places.remove(&id) {
            if let Some(n) = self.per_source.get_mut(&place.source) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&place.source);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_source_at_its_share_gives_up_its_own_idle_connection_or_is_refused() {
        let mut table = Table::new(10, 2);
        let a = table.admit(ip(2), at(0)).unwrap();
        let b = table.admit(ip(2), at(1)).unwrap();
        assert_eq!((a.evict, b.evict), (None, None));
        // The third from the same address evicts its oldest idle one.
        let c = table.admit(ip(2), at(2)).unwrap();
        assert_eq!(c.evict, Some(a.id));
        assert_eq!(table.len(), 2);
        // With both busy, it is refused.
        table.request_started(b.id);
        table.request_started(c.id);
        assert_eq!(table.admit(ip(2), at(3)), Err(Refused::SourceLimit));
        // Another address is not affected.
        assert!(table.admit(ip(3), at(3)).is_ok());
    }

    #[test]
    fn a_full_table_evicts_the_oldest_idle_connection_of_the_most_crowded_address() {
        let mut table = Table::new(4, 4);
        let flood: Vec<Admitted> = (0..3).map(|i| table.admit(ip(9), at(i)).unwrap()).collect();
        let operator = table.admit(ip(1), at(10)).unwrap();
        table.request_started(operator.id);
        let next = table.admit(ip(7), at(11)).unwrap();
        assert_eq!(next.evict, Some(flood[0].id));
        // The operator's connection, mid-request, is never the victim.
        for i in 0..20 {
            let admitted = table.admit(ip(9), at(20 + i)).unwrap();
            assert_ne!(admitted.evict, Some(operator.id));
        }
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn a_table_of_busy_connections_refuses() {
        let mut table = Table::new(2, 2);
        for i in 0..2 {
            let a = table.admit(ip(i + 1), at(0)).unwrap();
            table.request_started(a.id);
        }
        assert_eq!(table.admit(ip(5), at(1)), Err(Refused::Limit));
    }

    #[test]
    fn places_are_freed_once() {
        let mut table = Table::new(2, 1);
        let a = table.admit(ip(1), at(0)).unwrap();
        table.release(a.id);
        table.release(a.id);
        assert_eq!(table.len(), 0);
        assert!(table.admit(ip(1), at(1)).is_ok());
        let b = table.admit(ip(2), at(2)).unwrap();
        table.request_started(b.id);
        table.request_ended(b.id, at(3));
        assert_eq!(table.admit(ip(2), at(4)).unwrap().evict, Some(b.id));
    }
}
