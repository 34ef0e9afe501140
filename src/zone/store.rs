//! The indexed store of one zone: every owner name (and every empty non-terminal) is a
//! node in a hash table keyed by its lower-case wire name, so positive answers,
//! NODATA and NXDOMAIN each cost one or two hash probes instead of a scan.
//!
//! ```text
//!   table: hash(name) ─▶ node ─┬─ rrsets[start..start+len] ─▶ packed rdata (arena)
//!                              ├─ wildcard: node of "*.<name>" (if any)
//!                              └─ cut: delegation point at or above (if any)
//! ```
//!
//! Names and rdata live in two byte arenas so a 1M-record zone is a handful of
//! allocations, not millions.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use super::name::{self, Labels};
use crate::model::{DynamicType, RecordIndex};

/// RR type codes (one table for the crate: [`crate::proto::rtype`]).
pub(crate) use crate::proto::rtype;

const NONE: u32 = u32::MAX;

/// Node flags.
mod flag {
    pub(super) const APEX: u8 = 1;
    pub(super) const CNAME: u8 = 2;
    pub(super) const DELEGATION: u8 = 4;
    pub(super) const DYNAMIC: u8 = 8;
}

/// Index of a node in its zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct NodeId(pub u32);

/// Index of an RRset in its zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RrSetId(pub u32);

#[derive(Clone, Debug)]
struct Node {
    name_start: u32,
    name_len: u8,
    flags: u8,
    rrsets_len: u16,
    rrsets_start: u32,
    wildcard: u32,
    cut: u32,
}

/// An RRset: records of one owner and type, sharing one TTL (RFC 2181 §5.2).
#[derive(Clone, Debug)]
pub(crate) struct RrSet {
    /// RR type code.
    pub rtype: u16,
    /// Number of records.
    pub count: u16,
    /// TTL in seconds.
    pub ttl: u32,
    rdata_start: u32,
    rdata_len: u32,
}

/// Records' rdata packed as `[u16 length][bytes]…` (uncompressed wire form).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackedRdata<'a> {
    bytes: &'a [u8],
    #[expect(
        dead_code,
        reason = "never read (found by the issue 22 pub(crate) sweep): use it or remove it"
    )]
    count: u16,
}

impl<'a> PackedRdata<'a> {
    /// Wraps packed bytes holding `count` records.
    pub(crate) const fn new(bytes: &'a [u8], count: u16) -> Self {
        Self { bytes, count }
    }

    /// Each record's rdata.
    pub(crate) fn iter(&self) -> PackedIter<'a> {
        PackedIter {
            bytes: self.bytes,
            pos: 0,
        }
    }

    /// The packed bytes.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Iterator over packed rdata.
#[derive(Clone)]
pub(crate) struct PackedIter<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let header = self.bytes.get(self.pos..self.pos + 2)?;
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        let start = self.pos + 2;
        let data = self.bytes.get(start..start + len)?;
        self.pos = start + len;
        Some(data)
    }
}

/// Appends one record's rdata in packed form.
pub(crate) fn pack_rdata(out: &mut Vec<u8>, rdata: &[u8]) {
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// Dynamic records bound to one name.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DynamicLinks {
    /// Dynamic A record.
    pub a: Option<RecordIndex>,
    /// Dynamic AAAA record.
    pub aaaa: Option<RecordIndex>,
    /// Dynamic CNAME record.
    pub cname: Option<RecordIndex>,
}

impl DynamicLinks {
    /// The record answering `rtype`, if any.
    pub(crate) fn for_type(&self, rtype: u16) -> Option<RecordIndex> {
        match rtype {
            rtype::A => self.a,
            rtype::AAAA => self.aaaa,
            rtype::CNAME => self.cname,
            _ => None,
        }
    }
}

/// Outcome of looking a name up in a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The name exists (possibly as an empty non-terminal, possibly below a cut).
    Node(NodeId),
    /// The name does not exist and falls under a delegation.
    Delegation(NodeId),
    /// The name does not exist; the wildcard `node` synthesizes the answer.
    Wildcard(NodeId),
    /// The name does not exist.
    NxDomain,
}

/// Names and nodes with a hash index over their lower-case wire names.
#[derive(Clone)]
struct NameIndex {
    names: Vec<u8>,
    nodes: Vec<Node>,
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl NameIndex {
    fn new() -> Self {
        Self {
            names: Vec::new(),
            nodes: Vec::new(),
            table: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn name(&self, id: u32) -> &[u8] {
        let node = &self.nodes[id as usize];
        let start = node.name_start as usize;
        &self.names[start..start + usize::from(node.name_len)]
    }

    fn find(&self, wire: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(wire);
        self.table.find(hash, |&id| self.name(id) == wire).copied()
    }

    /// Returns the node of `wire`, creating it and its missing ancestors (empty
    /// non-terminals) down from `origin`. A new node inherits its parent's cut.
    fn intern(&mut self, wire: &[u8], origin: &[u8]) -> u32 {
        if let Some(id) = self.find(wire) {
            return id;
        }
        let mut cut = NONE;
        if wire.len() > origin.len() {
            if let Some(parent) = name::parent(wire) {
                let parent = self.intern(parent, origin);
                let p = &self.nodes[parent as usize];
                cut = if p.cut != NONE {
                    p.cut
                } else if p.flags & flag::DELEGATION != 0 {
                    parent
                } else {
                    NONE
                };
            }
        }
        let id = self.nodes.len() as u32;
        let name_start = self.names.len() as u32;
        self.names.extend_from_slice(wire);
        self.nodes.push(Node {
            name_start,
            name_len: wire.len() as u8,
            flags: 0,
            rrsets_len: 0,
            rrsets_start: 0,
            wildcard: NONE,
            cut,
        });
        let hash = self.hasher.hash_one(wire);
        let (nodes, names, hasher) = (&self.nodes, &self.names, &self.hasher);
        self.table.insert_unique(hash, id, |&other| {
            let node = &nodes[other as usize];
            let start = node.name_start as usize;
            hasher.hash_one(&names[start..start + usize::from(node.name_len)])
        });
        id
    }
}

/// One loaded zone.
///
/// Its data (names, nodes, RRsets, rdata, dynamic bindings) is shared (`Arc`) by
/// every copy: a copy with another SOA serial ([`Zone::with_soa_serial`], one per
/// transferable change) holds its own SOA rdata beside the shared data, so it costs
/// the SOA, not the zone.
#[derive(Clone)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Zone {
    origin: Box<[u8]>,
    apex: NodeId,
    index: Arc<NameIndex>,
    rrsets: Arc<Vec<RrSet>>,
    rdata: Arc<Vec<u8>>,
    dynamic: Arc<HashMap<u32, DynamicLinks>>,
    soa: RrSetId,
    /// The apex SOA's packed rdata when it differs from the shared arena's (a
    /// serial set by [`Zone::with_soa_serial`]).
    soa_rdata: Option<Arc<[u8]>>,
    negative_ttl: u32,
    record_count: usize,
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zone")
            .field("origin", &name::text_from_wire(&self.origin))
            .field("nodes", &self.index.nodes.len())
            .field("records", &self.record_count)
            .finish()
    }
}

/// A borrowed view of a node.
#[derive(Clone, Copy)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct NodeRef<'z> {
    zone: &'z Zone,
    id: NodeId,
    node: &'z Node,
}

impl<'z> NodeRef<'z> {
    /// The node's id.
    pub(crate) fn id(&self) -> NodeId {
        self.id
    }

    /// Lower-case wire name.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn name(&self) -> &'z [u8] {
        let start = self.node.name_start as usize;
        &self.zone.index.names[start..start + usize::from(self.node.name_len)]
    }

    /// Whether this is the zone apex.
    pub(crate) fn is_apex(&self) -> bool {
        self.node.flags & flag::APEX != 0
    }

    /// Whether the node owns a CNAME (static or dynamic).
    pub(crate) fn has_cname(&self) -> bool {
        self.node.flags & flag::CNAME != 0
    }

    /// Whether the node is a delegation point (NS below the apex).
    pub(crate) fn is_delegation(&self) -> bool {
        self.node.flags & flag::DELEGATION != 0
    }

    /// The delegation point at or above this node, if the node is not authoritative.
    pub(crate) fn cut(&self) -> Option<NodeId> {
        (self.node.cut != NONE).then_some(NodeId(self.node.cut))
    }

    /// The `*.<name>` child, if any.
    pub(crate) fn wildcard(&self) -> Option<NodeId> {
        (self.node.wildcard != NONE).then_some(NodeId(self.node.wildcard))
    }

    /// Static RRsets of the node, ordered by type.
    pub(crate) fn rrsets(&self) -> impl Iterator<Item = (RrSetId, &'z RrSet)> + 'z {
        let start = self.node.rrsets_start as usize;
        let len = usize::from(self.node.rrsets_len);
        self.zone.rrsets[start..start + len]
            .iter()
            .enumerate()
            .map(move |(i, set)| (RrSetId((start + i) as u32), set))
    }

    /// The static RRset of a type.
    pub(crate) fn rrset(&self, rtype: u16) -> Option<(RrSetId, &'z RrSet)> {
        self.rrsets().find(|(_, set)| set.rtype == rtype)
    }

    /// Whether the node has no static data (an empty non-terminal, or a name that
    /// only has dynamic records).
    pub(crate) fn is_empty(&self) -> bool {
        self.node.rrsets_len == 0
    }

    /// Dynamic records bound here.
    pub(crate) fn dynamic(&self) -> Option<&'z DynamicLinks> {
        if self.node.flags & flag::DYNAMIC == 0 {
            return None;
        }
        self.zone.dynamic.get(&self.id.0)
    }
}

impl Zone {
    /// Lower-case wire name of the apex.
    pub(crate) fn origin(&self) -> &[u8] {
        &self.origin
    }

    /// Text form of the origin.
    pub(crate) fn origin_text(&self) -> String {
        name::text_from_wire(&self.origin)
    }

    /// The apex node.
    pub(crate) fn apex(&self) -> NodeRef<'_> {
        self.node(self.apex)
    }

    /// A node by id.
    pub(crate) fn node(&self, id: NodeId) -> NodeRef<'_> {
        NodeRef {
            zone: self,
            id,
            node: &self.index.nodes[id.0 as usize],
        }
    }

    /// An RRset by id.
    pub(crate) fn rrset(&self, id: RrSetId) -> &RrSet {
        &self.rrsets[id.0 as usize]
    }

    /// Number of RRsets (ids run from 0 to this).
    pub(crate) fn rrset_count(&self) -> usize {
        self.rrsets.len()
    }

    /// Number of nodes.
    pub(crate) fn node_count(&self) -> usize {
        self.index.nodes.len()
    }

    /// Number of records.
    pub(crate) fn record_count(&self) -> usize {
        self.record_count
    }

    /// The rdata of an RRset.
    pub(crate) fn rdata(&self, set: &RrSet) -> PackedRdata<'_> {
        if let Some(soa) = &self.soa_rdata {
            if set.rtype == rtype::SOA
                && set.rdata_start == self.rrsets[self.soa.0 as usize].rdata_start
            {
                return PackedRdata::new(soa, set.count);
            }
        }
        let start = set.rdata_start as usize;
        PackedRdata::new(
            &self.rdata[start..start + set.rdata_len as usize],
            set.count,
        )
    }

    /// The SOA RRset.
    pub(crate) fn soa(&self) -> (RrSetId, &RrSet) {
        (self.soa, self.rrset(self.soa))
    }

    /// The SOA serial.
    pub(crate) fn soa_serial(&self) -> u32 {
        let (_, set) = self.soa();
        let rdata = self.rdata(set).iter().next().unwrap_or_default();
        match rdata
            .len()
            .checked_sub(20)
            .and_then(|at| rdata.get(at..at + 4))
        {
            Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            None => 0,
        }
    }

    /// A copy of the zone with another SOA serial (for zone transfers: every change
    /// of the transferable content bumps it). The zone's data is shared, not copied:
    /// the copy holds its SOA rdata alone.
    pub(crate) fn with_soa_serial(&self, serial: u32) -> Self {
        let mut zone = self.clone();
        let (_, set) = self.soa();
        let mut packed = self.rdata(set).bytes().to_vec();
        // Packed as [u16 length][rdata]; the serial is the first of the five
        // trailing 32-bit fields.
        let end = packed.len();
        if end >= 2 + 20 {
            packed[end - 20..end - 16].copy_from_slice(&serial.to_be_bytes());
        }
        zone.soa_rdata = Some(packed.into());
        zone
    }

    /// A copy of the zone whose apex holds these RRsets (type, TTL, rdata of each
    /// record) in place of any it had of the same types (DNSSEC: DNSKEY, CDS,
    /// CDNSKEY, NSEC3PARAM are added when the zone is signed). The apex's RRsets get
    /// new ids; every other id stays.
    pub(crate) fn with_apex_rrsets(&self, sets: &[(u16, u32, Vec<Vec<u8>>)]) -> Self {
        let mut zone = self.clone();
        let apex = zone.apex.0 as usize;
        let node = zone.index.nodes[apex].clone();
        let rdata = Arc::make_mut(&mut zone.rdata);
        let old =
            node.rrsets_start as usize..node.rrsets_start as usize + usize::from(node.rrsets_len);
        let mut kept: Vec<RrSet> = zone.rrsets[old]
            .iter()
            .filter(|set| !sets.iter().any(|(t, _, _)| *t == set.rtype))
            .cloned()
            .collect();
        for (rtype, ttl, records) in sets {
            if records.is_empty() {
                continue;
            }
            let start = rdata.len();
            for r in records {
                pack_rdata(rdata, r);
            }
            kept.push(RrSet {
                rtype: *rtype,
                count: records.len() as u16,
                ttl: *ttl,
                rdata_start: start as u32,
                rdata_len: (rdata.len() - start) as u32,
            });
        }
        kept.sort_by_key(|set| set.rtype);
        let start = zone.rrsets.len();
        for (i, set) in kept.iter().enumerate() {
            if set.rtype == rtype::SOA {
                zone.soa = RrSetId((start + i) as u32);
            }
        }
        let removed: usize = zone.rrsets[node.rrsets_start as usize..]
            [..usize::from(node.rrsets_len)]
            .iter()
            .map(|s| usize::from(s.count))
            .sum();
        zone.record_count =
            zone.record_count - removed + kept.iter().map(|s| usize::from(s.count)).sum::<usize>();
        let apex_node = &mut Arc::make_mut(&mut zone.index).nodes[apex];
        apex_node.rrsets_start = start as u32;
        apex_node.rrsets_len = kept.len() as u16;
        Arc::make_mut(&mut zone.rrsets).extend(kept);
        zone
    }

    /// TTL of negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
    pub(crate) fn negative_ttl(&self) -> u32 {
        self.negative_ttl
    }

    /// Looks up an exact name (lower-case wire).
    pub(crate) fn get(&self, wire: &[u8]) -> Option<NodeId> {
        self.index.find(wire).map(NodeId)
    }

    /// Binds a dynamic record to a name, creating the node (and empty non-terminals)
    /// if needed. Fails if the name is not authoritative data of this zone or a CNAME
    /// would share its name with other data.
    pub(crate) fn bind_dynamic(
        &mut self,
        owner: &[u8],
        record_type: DynamicType,
        record: RecordIndex,
    ) -> Result<(), String> {
        if !name::is_at_or_below(owner, &self.origin) {
            return Err("outside the zone".into());
        }
        let id = Arc::make_mut(&mut self.index).intern(owner, &self.origin);
        let node = &self.index.nodes[id as usize];
        if node.cut != NONE {
            return Err(format!(
                "at or below the delegation to {}, where this server is not authoritative",
                name::text_from_wire(self.index.name(node.cut))
            ));
        }
        let start = node.rrsets_start as usize;
        let sets = &self.rrsets[start..start + usize::from(node.rrsets_len)];
        if let Some(set) = sets.iter().find(|s| s.rtype == record_type.code()) {
            return Err(format!(
                "clashes with the static {} record at the same name in the zone file",
                type_name(set.rtype)
            ));
        }
        if record_type == DynamicType::Cname && !sets.is_empty() {
            let types: Vec<String> = sets.iter().map(|s| type_name(s.rtype)).collect();
            return Err(format!(
                "a CNAME cannot share its name with other data (zone file has {})",
                types.join(", ")
            ));
        }
        if sets.iter().any(|s| s.rtype == rtype::CNAME) {
            return Err(
                "the zone file has a CNAME at this name; no other data may share it".into(),
            );
        }
        let node = &mut Arc::make_mut(&mut self.index).nodes[id as usize];
        node.flags |= flag::DYNAMIC;
        let links = Arc::make_mut(&mut self.dynamic).entry(id).or_default();
        match record_type {
            DynamicType::A => links.a = Some(record),
            DynamicType::Aaaa => links.aaaa = Some(record),
            DynamicType::Cname => {
                links.cname = Some(record);
                node.flags |= flag::CNAME;
            }
        }
        Ok(())
    }

    /// Finds a name (lower-case wire, at or below the origin). `label_starts` holds
    /// the offset of every label of `qname`, first label first.
    pub(crate) fn find(&self, qname: &[u8], label_starts: &[u8]) -> Lookup {
        if let Some(id) = self.get(qname) {
            return Lookup::Node(id);
        }
        // Closest encloser: the longest existing ancestor (empty non-terminals are
        // nodes too, so a wildcard never synthesizes across an existing name).
        let mut encloser = self.apex;
        for &start in label_starts.iter().skip(1) {
            let suffix = &qname[usize::from(start)..];
            if suffix.len() <= self.origin.len() {
                break;
            }
            if let Some(id) = self.get(suffix) {
                encloser = id;
                break;
            }
        }
        let node = self.node(encloser);
        if let Some(cut) = node.cut() {
            return Lookup::Delegation(cut);
        }
        match node.wildcard() {
            Some(wildcard) => Lookup::Wildcard(wildcard),
            None => Lookup::NxDomain,
        }
    }

    /// Every node, for tools and pre-computation.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn nodes(&self) -> impl Iterator<Item = NodeRef<'_>> + '_ {
        (0..self.index.nodes.len()).map(|i| self.node(NodeId(i as u32)))
    }
}

/// A problem found while building a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildIssue {
    /// Whether the zone cannot be served because of it.
    pub fatal: bool,
    /// What is wrong.
    pub message: String,
}

struct Pending {
    node: u32,
    rtype: u16,
    ttl: u32,
    rdata_start: u32,
    rdata_len: u16,
}

/// Builds a [`Zone`] from records added one at a time.
pub(crate) struct ZoneBuilder {
    origin: Vec<u8>,
    index: NameIndex,
    pending: Vec<Pending>,
    raw_rdata: Vec<u8>,
}

impl ZoneBuilder {
    /// Starts a zone with the given lower-case wire origin.
    pub(crate) fn new(origin: &[u8]) -> Self {
        let mut builder = Self {
            origin: origin.to_vec(),
            index: NameIndex::new(),
            pending: Vec::new(),
            raw_rdata: Vec::new(),
        };
        let apex = builder.index.intern(origin, origin);
        builder.index.nodes[apex as usize].flags |= flag::APEX;
        builder
    }

    /// Makes room for about `records` records with as many names, so a big zone's
    /// name table is not rebuilt (every name hashed again) each time it doubles.
    pub(crate) fn reserve(&mut self, records: usize) {
        let index = &mut self.index;
        index.nodes.reserve(records);
        let (nodes, names, hasher) = (&index.nodes, &index.names, &index.hasher);
        index.table.reserve(records, |&id| {
            let node = &nodes[id as usize];
            let start = node.name_start as usize;
            hasher.hash_one(&names[start..start + usize::from(node.name_len)])
        });
        self.pending.reserve(records);
    }

    /// Adds one record. `owner` is lower-case wire; `rdata` is uncompressed wire.
    pub(crate) fn add(
        &mut self,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<(), String> {
        if !name::is_at_or_below(owner, &self.origin) {
            return Err(format!(
                "{} is outside the zone {}",
                name::text_from_wire(owner),
                name::text_from_wire(&self.origin)
            ));
        }
        if rdata.len() > usize::from(u16::MAX) {
            return Err("rdata longer than 65535 bytes".into());
        }
        let node = self.index.intern(owner, &self.origin);
        let rdata_start = self.raw_rdata.len() as u32;
        self.raw_rdata.extend_from_slice(rdata);
        self.pending.push(Pending {
            node,
            rtype,
            ttl,
            rdata_start,
            rdata_len: rdata.len() as u16,
        });
        Ok(())
    }

    /// Finishes the zone. Returns it with non-fatal issues, or every issue if one is
    /// fatal.
    pub(crate) fn finish(mut self) -> Result<(Zone, Vec<BuildIssue>), Vec<BuildIssue>> {
        let mut issues = Vec::new();
        let (rrsets, rdata, record_count) = self.group_rrsets(&mut issues);
        let apex = 0u32; // interned first in `new`
        let mut soa = None;
        let mut negative_ttl = 0;
        for id in 0..self.index.nodes.len() as u32 {
            let node = &self.index.nodes[id as usize];
            let first = node.rrsets_start as usize;
            let sets = &rrsets[first..first + usize::from(node.rrsets_len)];
            let position = |t: u16| sets.iter().position(|s| s.rtype == t);
            let is_apex = id == apex;
            let mut flags = node.flags;
            if let Some(i) = position(rtype::CNAME) {
                flags |= flag::CNAME;
                if sets[i].count > 1 {
                    issues.push(fatal(format!(
                        "{}: more than one CNAME record",
                        self.text(id)
                    )));
                }
                if sets.len() > 1 {
                    issues.push(fatal(format!(
                        "{}: CNAME and other data at the same name (RFC 1034 §3.6.2)",
                        self.text(id)
                    )));
                }
            }
            if position(rtype::NS).is_some() && !is_apex {
                flags |= flag::DELEGATION;
            }
            if let Some(i) = position(rtype::SOA) {
                let set = &sets[i];
                if !is_apex {
                    issues.push(fatal(format!(
                        "{}: SOA record below the apex",
                        self.text(id)
                    )));
                } else if set.count != 1 {
                    issues.push(fatal("more than one SOA record at the apex".into()));
                } else {
                    soa = Some(RrSetId((first + i) as u32));
                    let start = set.rdata_start as usize;
                    let bytes = &rdata[start..start + set.rdata_len as usize];
                    // Packed form: skip the 2-byte length prefix.
                    let minimum = soa_minimum(&bytes[2..]).unwrap_or(set.ttl);
                    negative_ttl = set.ttl.min(minimum);
                }
            }
            if is_apex && position(rtype::NS).is_none() {
                issues.push(BuildIssue {
                    fatal: false,
                    message: "no NS records at the apex".into(),
                });
            }
            self.index.nodes[id as usize].flags = flags;
        }
        let Some(soa) = soa else {
            issues.push(fatal("no SOA record at the apex".into()));
            return Err(issues);
        };
        self.link_wildcards_and_cuts(&rrsets, &mut issues);
        if issues.iter().any(|i| i.fatal) {
            return Err(issues);
        }
        let zone = Zone {
            origin: self.origin.into_boxed_slice(),
            apex: NodeId(apex),
            index: Arc::new(self.index),
            rrsets: Arc::new(rrsets),
            rdata: Arc::new(rdata),
            dynamic: Arc::default(),
            soa,
            soa_rdata: None,
            negative_ttl,
            record_count,
        };
        Ok((zone, issues))
    }

    /// Groups pending records into RRsets (sorted by node, then type) and packs their
    /// rdata contiguously.
    fn group_rrsets(&mut self, issues: &mut Vec<BuildIssue>) -> (Vec<RrSet>, Vec<u8>, usize) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|p| (p.node, p.rtype));
        let mut rrsets: Vec<RrSet> = Vec::with_capacity(pending.len());
        let mut rdata = Vec::with_capacity(self.raw_rdata.len() + pending.len() * 2);
        let mut record_count = 0;
        let mut i = 0;
        while i < pending.len() {
            let (node, rtype) = (pending[i].node, pending[i].rtype);
            let rdata_start = rdata.len();
            let mut ttl = pending[i].ttl;
            let mut count = 0u16;
            let mut ttl_mismatch = false;
            let mut j = i;
            while j < pending.len() && pending[j].node == node && pending[j].rtype == rtype {
                let p = &pending[j];
                let start = p.rdata_start as usize;
                let bytes = &self.raw_rdata[start..start + usize::from(p.rdata_len)];
                // Identical records collapse into one (RFC 2181 §5).
                let existing = PackedRdata::new(&rdata[rdata_start..], count);
                if !existing.iter().any(|r| r == bytes) && count < u16::MAX {
                    pack_rdata(&mut rdata, bytes);
                    count += 1;
                    record_count += 1;
                }
                ttl_mismatch |= p.ttl != ttl;
                ttl = ttl.min(p.ttl);
                j += 1;
            }
            if ttl_mismatch {
                issues.push(BuildIssue {
                    fatal: false,
                    message: format!(
                        "{} {}: records differ in TTL; using the lowest, {ttl} (RFC 2181 §5.2)",
                        self.text(node),
                        type_name(rtype)
                    ),
                });
            }
            let n = &mut self.index.nodes[node as usize];
            if n.rrsets_len == 0 {
                n.rrsets_start = rrsets.len() as u32;
            }
            n.rrsets_len += 1;
            rrsets.push(RrSet {
                rtype,
                count,
                ttl,
                rdata_start: rdata_start as u32,
                rdata_len: (rdata.len() - rdata_start) as u32,
            });
            i = j;
        }
        self.raw_rdata = Vec::new();
        (rrsets, rdata, record_count)
    }

    /// Sets each node's wildcard child and enclosing delegation. Parents are interned
    /// before their children, so one pass in id order sees every parent's cut first.
    fn link_wildcards_and_cuts(&mut self, rrsets: &[RrSet], issues: &mut Vec<BuildIssue>) {
        for id in 1..self.index.nodes.len() as u32 {
            let wire = self.index.name(id).to_vec();
            let Some(parent) = name::parent(&wire).and_then(|p| self.index.find(p)) else {
                continue;
            };
            if name::is_wildcard(&wire) {
                self.index.nodes[parent as usize].wildcard = id;
            }
            let p = &self.index.nodes[parent as usize];
            let parent_cut = if p.cut != NONE {
                p.cut
            } else if p.flags & flag::DELEGATION != 0 {
                parent
            } else {
                NONE
            };
            let node = &mut self.index.nodes[id as usize];
            node.cut = if parent_cut != NONE {
                parent_cut
            } else if node.flags & flag::DELEGATION != 0 {
                id
            } else {
                NONE
            };
            let start = node.rrsets_start as usize;
            let occluded = node.cut != NONE
                && node.cut != id
                && rrsets[start..start + usize::from(node.rrsets_len)]
                    .iter()
                    .any(|s| !matches!(s.rtype, rtype::A | rtype::AAAA));
            if occluded {
                let cut = node.cut;
                issues.push(BuildIssue {
                    fatal: false,
                    message: format!(
                        "{}: data below the delegation at {} is not served (only glue is)",
                        self.text(id),
                        self.text(cut)
                    ),
                });
            }
        }
    }

    fn text(&self, id: u32) -> String {
        name::text_from_wire(self.index.name(id))
    }
}

fn fatal(message: String) -> BuildIssue {
    BuildIssue {
        fatal: true,
        message,
    }
}

/// The MINIMUM field of SOA rdata (uncompressed wire).
fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    let tail = rdata.get(rdata.len().checked_sub(4)?..)?;
    Some(u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]))
}

/// Mnemonic of an RR type.
pub(crate) fn type_name(rtype: u16) -> String {
    hickory_proto::rr::RecordType::from(rtype).to_string()
}

/// Each label start offset of a wire name, as `u8` (names are ≤ 255 bytes).
pub(crate) fn label_starts(wire: &[u8]) -> Vec<u8> {
    Labels::new(wire).map(|(start, _)| start as u8).collect()
}

/// Most labels of a name (255 octets, each label at least two).
pub(crate) const MAX_LABELS: usize = 128;

/// [`label_starts`] into a caller's buffer, for the hot path: the offsets written
/// (no allocation).
pub(crate) fn label_starts_into<'b>(wire: &[u8], out: &'b mut [u8; MAX_LABELS]) -> &'b [u8] {
    let mut count = 0;
    for ((start, _), slot) in Labels::new(wire).zip(out.iter_mut()) {
        *slot = start as u8;
        count += 1;
    }
    &out[..count]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::name::wire_from_text;

    fn w(text: &str) -> Vec<u8> {
        wire_from_text(text).unwrap()
    }

    fn soa_rdata() -> Vec<u8> {
        let mut r = w("ns1.example.");
        r.extend(w("hostmaster.example."));
        for v in [1u32, 3600, 900, 604_800, 60] {
            r.extend(v.to_be_bytes());
        }
        r
    }

    fn sample() -> Zone {
        let mut b = ZoneBuilder::new(&w("example."));
        b.add(&w("example."), rtype::SOA, 300, &soa_rdata())
            .unwrap();
        b.add(&w("example."), rtype::NS, 300, &w("ns1.example."))
            .unwrap();
        b.add(&w("www.example."), rtype::A, 300, &[192, 0, 2, 1])
            .unwrap();
        b.add(&w("www.example."), rtype::A, 300, &[192, 0, 2, 2])
            .unwrap();
        b.add(&w("a.b.c.example."), rtype::A, 300, &[192, 0, 2, 3])
            .unwrap();
        b.add(&w("*.wild.example."), rtype::A, 300, &[192, 0, 2, 4])
            .unwrap();
        b.add(&w("sub.example."), rtype::NS, 300, &w("ns.sub.example."))
            .unwrap();
        b.add(&w("ns.sub.example."), rtype::A, 300, &[192, 0, 2, 5])
            .unwrap();
        b.finish().unwrap().0
    }

    fn find(zone: &Zone, text: &str) -> Lookup {
        let q = w(text);
        zone.find(&q, &label_starts(&q))
    }

    #[test]
    fn lookups_classify_names() {
        let zone = sample();
        assert_eq!(zone.negative_ttl(), 60);
        let Lookup::Node(www) = find(&zone, "www.example.") else {
            panic!()
        };
        assert_eq!(zone.node(www).rrset(rtype::A).unwrap().1.count, 2);
        // Empty non-terminal exists as a node without data.
        let Lookup::Node(ent) = find(&zone, "b.c.example.") else {
            panic!()
        };
        assert!(zone.node(ent).is_empty());
        assert_eq!(find(&zone, "nope.example."), Lookup::NxDomain);
        assert!(matches!(
            find(&zone, "x.wild.example."),
            Lookup::Wildcard(_)
        ));
        assert!(matches!(
            find(&zone, "y.x.wild.example."),
            Lookup::Wildcard(_)
        ));
        assert!(matches!(
            find(&zone, "deep.sub.example."),
            Lookup::Delegation(_)
        ));
        let Lookup::Node(glue) = find(&zone, "ns.sub.example.") else {
            panic!()
        };
        assert!(zone.node(glue).cut().is_some());
    }

    #[test]
    fn a_new_serial_shares_the_zone_data_and_patches_the_soa_alone() {
        let zone = sample();
        let before = zone.soa_serial();
        let copy = zone.with_soa_serial(before.wrapping_add(7));
        assert_eq!(copy.soa_serial(), before.wrapping_add(7));
        assert_eq!(zone.soa_serial(), before, "the original keeps its serial");
        assert!(Arc::ptr_eq(&zone.rdata, &copy.rdata));
        assert!(Arc::ptr_eq(&zone.index, &copy.index));
        assert!(Arc::ptr_eq(&zone.rrsets, &copy.rrsets));
        // Everything but the serial reads as before.
        let (_, soa) = zone.soa();
        let (old, new) = (zone.rdata(soa).bytes(), copy.rdata(soa).bytes());
        assert_eq!(old.len(), new.len());
        let at = old.len() - 20;
        assert_eq!((&old[..at], &old[at + 4..]), (&new[..at], &new[at + 4..]));
        for node in zone.nodes() {
            for (_, set) in node.rrsets().filter(|(_, s)| s.rtype != rtype::SOA) {
                assert_eq!(zone.rdata(set).bytes(), copy.rdata(set).bytes());
            }
        }
        // A copy of the copy patches again from the copy's SOA.
        assert_eq!(copy.with_soa_serial(3).soa_serial(), 3);
    }

    #[test]
    fn dynamic_binding_checks_clashes() {
        let mut zone = sample();
        assert!(
            zone.bind_dynamic(&w("www.example."), DynamicType::A, RecordIndex(0))
                .is_err()
        );
        assert!(
            zone.bind_dynamic(&w("www.example."), DynamicType::Cname, RecordIndex(0))
                .is_err()
        );
        assert!(
            zone.bind_dynamic(&w("x.sub.example."), DynamicType::A, RecordIndex(0))
                .is_err()
        );
        zone.bind_dynamic(&w("www.example."), DynamicType::Aaaa, RecordIndex(1))
            .unwrap();
        zone.bind_dynamic(&w("gslb.new.example."), DynamicType::A, RecordIndex(2))
            .unwrap();
        let q = w("gslb.new.example.");
        let Lookup::Node(id) = zone.find(&q, &label_starts(&q)) else {
            panic!()
        };
        assert_eq!(zone.node(id).dynamic().unwrap().a, Some(RecordIndex(2)));
        let parent = w("new.example.");
        assert!(matches!(
            zone.find(&parent, &label_starts(&parent)),
            Lookup::Node(_)
        ));
    }

    #[test]
    fn cname_beside_data_is_fatal() {
        let mut b = ZoneBuilder::new(&w("example."));
        b.add(&w("example."), rtype::SOA, 300, &soa_rdata())
            .unwrap();
        b.add(&w("x.example."), rtype::CNAME, 300, &w("y.example."))
            .unwrap();
        b.add(&w("x.example."), rtype::A, 300, &[1, 2, 3, 4])
            .unwrap();
        let issues = b.finish().unwrap_err();
        assert!(
            issues
                .iter()
                .any(|i| i.fatal && i.message.contains("CNAME"))
        );
    }

    #[test]
    fn missing_soa_and_out_of_zone_are_reported() {
        let mut b = ZoneBuilder::new(&w("example."));
        assert!(b.add(&w("other."), rtype::A, 1, &[1, 2, 3, 4]).is_err());
        assert!(b.finish().is_err());
    }
}
