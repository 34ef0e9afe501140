//! The IXFR journal: the last N versions of a zone's content, and the difference
//! between two of them (RFC 1995).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::content::{Record, ZoneContent};

/// The last versions of one zone, oldest first.
#[derive(Debug)]
pub(crate) struct Journal {
    versions: VecDeque<Arc<ZoneContent>>,
    capacity: usize,
}

/// Records deleted and added between two versions.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Difference {
    /// In the old version only.
    pub deleted: Vec<Record>,
    /// In the new version only.
    pub added: Vec<Record>,
}

impl Journal {
    /// An empty journal keeping `capacity` versions (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            versions: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Changes how many versions are kept (the oldest go first).
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.trim();
    }

    /// Adds the newest version; the oldest are evicted beyond the capacity.
    pub(crate) fn push(&mut self, version: Arc<ZoneContent>) {
        self.versions.push_back(version);
        self.trim();
    }

    fn trim(&mut self) {
        while self.versions.len() > self.capacity {
            self.versions.pop_front();
        }
    }

    /// The newest version.
    pub(crate) fn current(&self) -> Option<&Arc<ZoneContent>> {
        self.versions.back()
    }

    /// The `n` newest versions, newest first.
    pub(crate) fn newest(&self, n: usize) -> impl Iterator<Item = &Arc<ZoneContent>> {
        self.versions.iter().rev().take(n)
    }

    /// The version with `serial`, if still kept.
    pub(crate) fn find(&self, serial: u32) -> Option<&Arc<ZoneContent>> {
        self.versions.iter().rev().find(|v| v.serial == serial)
    }

    /// Serials kept, oldest first.
    #[cfg(test)]
    pub(crate) fn serials(&self) -> Vec<u32> {
        self.versions.iter().map(|v| v.serial).collect()
    }
}

/// What changed from `old` to `new` (both sorted sets of records; the SOA is not
/// included).
pub(crate) fn difference(old: &ZoneContent, new: &ZoneContent) -> Difference {
    if Arc::ptr_eq(&old.statics, &new.statics) {
        let mut difference = if Arc::ptr_eq(&old.dynamic, &new.dynamic) {
            Difference::default()
        } else {
            sorted_difference(&old.dynamic, &new.dynamic)
        };
        let soa = sorted_difference(&old.soa_sigs, &new.soa_sigs);
        difference.deleted.extend(soa.deleted);
        difference.added.extend(soa.added);
        // Static chain records one version hides (replaced in its dynamic part) and
        // the other serves.
        let newly = |a: &ZoneContent, b: &ZoneContent| -> Vec<Record> {
            b.hidden
                .iter()
                .filter(|o| a.hidden.binary_search(o).is_err())
                .flat_map(|o| b.static_chain_at(o).cloned())
                .collect()
        };
        difference.deleted.extend(newly(old, new));
        difference.added.extend(newly(new, old));
        difference.deleted.sort();
        difference.added.sort();
        return difference;
    }
    let before: BTreeSet<&Record> = old.records().collect();
    let after: BTreeSet<&Record> = new.records().collect();
    Difference {
        deleted: before.difference(&after).map(|r| (*r).clone()).collect(),
        added: after.difference(&before).map(|r| (*r).clone()).collect(),
    }
}

/// Difference of two sorted, duplicate-free lists.
fn sorted_difference(old: &[Record], new: &[Record]) -> Difference {
    let mut out = Difference::default();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                out.deleted.push(a.clone());
                i += 1;
            }
            (Some(_), Some(b)) => {
                out.added.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                out.deleted.push(a.clone());
                i += 1;
            }
            (None, Some(b)) => {
                out.added.push(b.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::xfr::content::StaticContent;

    fn a(owner: &str, last: u8) -> Record {
        Record {
            owner: crate::zone::name::wire_from_text(owner).unwrap().into(),
            rtype: 1,
            rdata: vec![192, 0, 2, last].into(),
            ttl: 60,
        }
    }

    fn statics(records: Vec<Record>) -> Arc<StaticContent> {
        Arc::new(StaticContent {
            records,
            soa_rdata: vec![0; 22].into(),
            soa_ttl: 60,
            file_serial: 1,
            hash: [0; 32],
            dynamic_owners: Vec::new(),
            hollow: Vec::new(),
        })
    }

    fn version(
        serial: u32,
        statics: &Arc<StaticContent>,
        mut dynamic: Vec<Record>,
    ) -> Arc<ZoneContent> {
        dynamic.sort();
        Arc::new(ZoneContent {
            origin: vec![0].into(),
            serial,
            statics: statics.clone(),
            dynamic: dynamic.into(),
            soa_sigs: Vec::new(),
            hash: String::new(),
            signer: None,
            hidden: Vec::new(),
            unsigned_hash: [0; 32],
            sources: None,
        })
    }

    #[test]
    fn dynamic_difference() {
        let s = statics(vec![a("www.example.", 80)]);
        let v1 = version(1, &s, vec![a("app.example.", 2), a("app.example.", 3)]);
        let v2 = version(2, &s, vec![a("app.example.", 3), a("app.example.", 4)]);
        let d = difference(&v1, &v2);
        assert_eq!(d.deleted, vec![a("app.example.", 2)]);
        assert_eq!(d.added, vec![a("app.example.", 4)]);
        assert_eq!(difference(&v2, &v2), Difference::default());
        // A TTL change is a deletion and an addition.
        let mut longer = a("app.example.", 3);
        longer.ttl = 300;
        let v3 = version(3, &s, vec![longer.clone(), a("app.example.", 4)]);
        let d = difference(&v2, &v3);
        assert_eq!(d.deleted, vec![a("app.example.", 3)]);
        assert_eq!(d.added, vec![longer]);
    }

    #[test]
    fn a_chain_record_replaced_in_one_version_is_deleted_and_added_back() {
        let nsec = |owner: &str, bitmap: u8| Record {
            owner: crate::zone::name::wire_from_text(owner).unwrap().into(),
            rtype: crate::dnssec::rtype::NSEC,
            rdata: vec![0, 0, 1, bitmap].into(),
            ttl: 60,
        };
        let mut rrsig_rdata = crate::dnssec::rtype::NSEC.to_be_bytes().to_vec();
        rrsig_rdata.extend_from_slice(&[15, 2]);
        let rrsig = Record {
            owner: nsec("app.example.", 0).owner,
            rtype: crate::dnssec::rtype::RRSIG,
            rdata: rrsig_rdata.into(),
            ttl: 60,
        };
        let mut all = vec![
            a("www.example.", 80),
            nsec("app.example.", 0x40),
            rrsig.clone(),
        ];
        all.sort();
        let s = statics(all);
        let up = version(1, &s, vec![a("app.example.", 2)]);
        let mut down = version(2, &s, vec![nsec("app.example.", 0)]);
        Arc::get_mut(&mut down).unwrap().hidden = vec![nsec("app.example.", 0).owner];
        let served: Vec<&Record> = down.records().collect();
        assert!(!served.contains(&&rrsig) && !served.contains(&&nsec("app.example.", 0x40)));
        let d = difference(&up, &down);
        let mut deleted = vec![a("app.example.", 2), nsec("app.example.", 0x40), rrsig];
        deleted.sort();
        assert_eq!(d.deleted, deleted);
        assert_eq!(d.added, vec![nsec("app.example.", 0)]);
        let back = difference(&down, &up);
        assert_eq!((back.deleted, back.added), (d.added, d.deleted));
    }

    #[test]
    fn static_difference_after_reload() {
        let s1 = statics(vec![a("www.example.", 80), a("www.example.", 81)]);
        let s2 = statics(vec![a("www.example.", 81), a("www.example.", 82)]);
        let v1 = version(1, &s1, vec![a("app.example.", 2)]);
        let v2 = version(2, &s2, vec![a("app.example.", 2)]);
        let d = difference(&v1, &v2);
        assert_eq!(d.deleted, vec![a("www.example.", 80)]);
        assert_eq!(d.added, vec![a("www.example.", 82)]);
    }

    #[test]
    fn eviction_keeps_the_newest() {
        let s = statics(Vec::new());
        let mut journal = Journal::new(3);
        for serial in 1..=5 {
            journal.push(version(serial, &s, vec![a("app.example.", serial as u8)]));
        }
        assert_eq!(journal.serials(), vec![3, 4, 5]);
        assert!(journal.find(2).is_none());
        assert_eq!(journal.find(4).map(|v| v.serial), Some(4));
        assert_eq!(journal.current().map(|v| v.serial), Some(5));
        journal.set_capacity(1);
        assert_eq!(journal.serials(), vec![5]);
    }
}
