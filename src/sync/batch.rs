//! Splitting a zone's changes into ChangeResourceRecordSets batches. Pure.
//!
//! Route 53's limits per request, enforced here because moto does not enforce all of
//! them: at most 1,000 `ResourceRecord` elements and 32,000 characters of values, an
//! UPSERT counting twice for both; a single value at most 4,000 characters; a TXT
//! character-string at most 255 bytes.
//!
//! Order (each batch is applied atomically by Route 53, in order):
//!
//! ```text
//!   groups = changes by owner name (a record and its ownership marker together)
//!   inside a group: marker creates → record deletes → record creates/upserts → marker deletes
//!   groups with creates/updates: alias targets first (depth ascending)
//!   groups that only delete: last, aliases before their targets (depth descending)
//! ```
//!
//! A group is packed into one batch whenever it fits, so a record set and its marker
//! are created or deleted together, and a record set whose routing changes (DELETE of
//! the old set, CREATE of the new one at the same name) is replaced atomically. A
//! DELETE always carries the record set exactly as read from Route 53.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::model::RecordKey;
use super::model::{HealthCheckRef, RecordSet, RecordType, Routing, txt_strings};
use super::owner::{MARKER_LABEL, is_marker_name, parse_marker};
use super::plan::{RecordChange, ZonePlan};

/// Most `ResourceRecord` elements per request (UPSERT counts twice).
pub(crate) const MAX_RESOURCE_RECORDS: usize = 1000;
/// Most characters of values per request (UPSERT counts twice).
pub(crate) const MAX_VALUE_CHARS: usize = 32_000;
/// Longest single value.
pub(crate) const MAX_VALUE_LEN: usize = 4000;
/// Longest TXT character-string.
pub(crate) const MAX_TXT_STRING: usize = 255;
/// Longest set identifier.
pub(crate) const MAX_SET_IDENTIFIER_LEN: usize = 128;

/// A ChangeResourceRecordSets action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Action {
    /// Create; fails if the record set exists.
    Create,
    /// Create or replace.
    Upsert,
    /// Delete; the record set must match exactly.
    Delete,
}

impl Action {
    /// Route 53's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Upsert => "UPSERT",
            Self::Delete => "DELETE",
        }
    }
}

/// One change of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Change {
    /// What to do.
    pub action: Action,
    /// The record set (for DELETE: exactly as read).
    pub record: RecordSet,
}

impl Change {
    /// The request change for a planned change: CREATE the new set, UPSERT the new set
    /// over the old one, or DELETE the set as read.
    pub(crate) fn from_planned(change: &RecordChange) -> Self {
        match change {
            RecordChange::Create { new } => Self {
                action: Action::Create,
                record: new.clone(),
            },
            RecordChange::Update { new, .. } => Self {
                action: Action::Upsert,
                record: new.clone(),
            },
            RecordChange::Delete { old } => Self {
                action: Action::Delete,
                record: old.clone(),
            },
        }
    }

    /// `ResourceRecord` elements counted against the request limit.
    pub(crate) fn resource_record_cost(&self) -> usize {
        self.record.resource_record_count() * self.multiplier()
    }

    /// Value characters counted against the request limit.
    pub(crate) fn value_char_cost(&self) -> usize {
        self.record.value_chars() * self.multiplier()
    }

    fn multiplier(&self) -> usize {
        if self.action == Action::Upsert { 2 } else { 1 }
    }

    fn is_marker(&self) -> bool {
        self.record.key.record_type == RecordType::Txt && is_marker_name(&self.record.key.name)
    }

    /// The record set this change is about: its own key, or for a marker the key of
    /// the record set it claims. A record set's change and its marker's change share
    /// a unit, and a unit is never split across requests.
    fn unit(&self) -> RecordKey {
        if self.is_marker()
            && let Some(claim) = parse_marker(&self.record).and_then(|c| c.into_iter().next())
        {
            return claim.key;
        }
        self.record.key.clone()
    }

    /// The name whose group this change belongs to (a marker joins its record's).
    fn owner_name(&self) -> &str {
        if self.is_marker() {
            &self.record.key.name[MARKER_LABEL.len() + 1..]
        } else {
            &self.record.key.name
        }
    }

    /// Position inside a group.
    fn phase(&self) -> u8 {
        match (self.is_marker(), self.action) {
            (true, Action::Create | Action::Upsert) => 0,
            (false, Action::Delete) => 1,
            (false, _) => 2,
            (true, Action::Delete) => 3,
        }
    }
}

/// Changes that belong together: one owner name's record sets and markers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ChangeGroup {
    /// The owner name.
    pub name: String,
    /// Whether the group must not be split (it replaces record sets at one name:
    /// deletes and creates must land together).
    pub atomic: bool,
    /// The changes, in order.
    pub changes: Vec<Change>,
}

impl ChangeGroup {
    fn cost(&self) -> (usize, usize) {
        self.changes.iter().fold((0, 0), |(rr, chars), c| {
            (rr + c.resource_record_cost(), chars + c.value_char_cost())
        })
    }

    /// The group's units (a record set with its marker) in order of first change,
    /// with what each costs against the request limits.
    fn units(&self) -> Vec<(RecordKey, (usize, usize))> {
        let mut units: Vec<(RecordKey, (usize, usize))> = Vec::new();
        let mut index: BTreeMap<RecordKey, usize> = BTreeMap::new();
        for change in &self.changes {
            let unit = change.unit();
            let at = *index.entry(unit.clone()).or_insert_with(|| {
                units.push((unit, (0, 0)));
                units.len() - 1
            });
            let cost = &mut units[at].1;
            cost.0 += change.resource_record_cost();
            cost.1 += change.value_char_cost();
        }
        units
    }

    /// The part of the group made of `units`, changes in the group's order.
    fn part(&self, units: &BTreeSet<RecordKey>) -> Self {
        Self {
            name: self.name.clone(),
            atomic: false,
            changes: self
                .changes
                .iter()
                .filter(|c| units.contains(&c.unit()))
                .cloned()
                .collect(),
        }
    }
}

/// Splits rejected groups in two halves to find the change Route 53 refuses: by
/// groups, or inside a single group along its units, so a record set is never
/// separated from its marker. None when the rejected part cannot be split further
/// (one unit, or a group that replaces record sets at one name and must land whole).
pub(crate) fn bisect(mut groups: Vec<ChangeGroup>) -> Option<(Vec<ChangeGroup>, Vec<ChangeGroup>)> {
    if groups.len() > 1 {
        let right = groups.split_off(groups.len() / 2);
        return Some((groups, right));
    }
    let group = groups.pop()?;
    let units: Vec<RecordKey> = group.units().into_iter().map(|(key, _)| key).collect();
    if group.atomic || units.len() < 2 {
        return None;
    }
    let (left, right) = units.split_at(units.len() / 2);
    let left: BTreeSet<RecordKey> = left.iter().cloned().collect();
    let right: BTreeSet<RecordKey> = right.iter().cloned().collect();
    Some((vec![group.part(&left)], vec![group.part(&right)]))
}

/// Takes out of the batches every unit (a record set with its marker) whose record
/// set refers to a health check that could not be created, so a marker is never
/// written or removed without its record. Returns the batches left and the changes
/// taken out.
pub(crate) fn drop_unresolved(batches: Vec<Batch>) -> (Vec<Batch>, Vec<Change>) {
    let mut dropped = Vec::new();
    let batches = batches
        .into_iter()
        .map(|mut batch| {
            for group in &mut batch.groups {
                let unresolved: Vec<RecordKey> = group
                    .changes
                    .iter()
                    .filter(|c| matches!(c.record.health_check, Some(HealthCheckRef::Key(_))))
                    .map(Change::unit)
                    .collect();
                if unresolved.is_empty() {
                    continue;
                }
                let (drop, keep): (Vec<Change>, Vec<Change>) = group
                    .changes
                    .drain(..)
                    .partition(|c| unresolved.contains(&c.unit()));
                group.changes = keep;
                dropped.extend(drop);
            }
            batch.groups.retain(|g| !g.changes.is_empty());
            batch
        })
        .filter(|b| !b.groups.is_empty())
        .collect();
    (batches, dropped)
}

/// One ChangeResourceRecordSets request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Batch {
    /// Groups, in order.
    pub groups: Vec<ChangeGroup>,
}

impl Batch {
    /// Every change, in order.
    #[cfg(test)]
    pub(crate) fn changes(&self) -> impl Iterator<Item = &Change> {
        self.groups.iter().flat_map(|g| g.changes.iter())
    }

    /// (`ResourceRecord` elements, value characters) counted against the limits.
    pub(crate) fn cost(&self) -> (usize, usize) {
        self.groups.iter().fold((0, 0), |(rr, chars), g| {
            let (r, c) = g.cost();
            (rr + r, chars + c)
        })
    }

    /// Whether the batch is within Route 53's request limits.
    #[cfg(test)]
    pub(crate) fn within_limits(&self) -> bool {
        let (rr, chars) = self.cost();
        rr <= MAX_RESOURCE_RECORDS && chars <= MAX_VALUE_CHARS
    }
}

/// A change that breaks a Route 53 rule, so it is never sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct RejectedChange {
    /// The change.
    pub change: Change,
    /// The rule broken.
    pub reason: String,
}

/// Checks one change against Route 53's rules for a single record set.
pub(crate) fn validate(change: &Change) -> Result<(), String> {
    let record = &change.record;
    let key = &record.key;
    let wire_len: usize = key
        .name
        .trim_end_matches('.')
        .split('.')
        .map(|label| label_wire_len(label) + 1)
        .sum::<usize>()
        + 1;
    if wire_len > 255 {
        return Err(format!("name is {wire_len} octets long (max 255)"));
    }
    if let Some(label) = key.name.split('.').find(|l| label_wire_len(l) > 63) {
        return Err(format!("label {label:?} is longer than 63 octets"));
    }
    match (&key.set_identifier, &record.routing) {
        (None, Routing::Simple) => {}
        (None, routing) => {
            return Err(format!("a {routing} record set needs a set identifier"));
        }
        (Some(_), Routing::Simple) => {
            return Err("a set identifier needs a routing policy".into());
        }
        (Some(set), _) if set.is_empty() || set.len() > MAX_SET_IDENTIFIER_LEN => {
            return Err(format!(
                "set identifier is {} characters (1 to {MAX_SET_IDENTIFIER_LEN})",
                set.len()
            ));
        }
        _ => {}
    }
    if record.routing == Routing::MultiValue && key.record_type == RecordType::Cname {
        return Err("CNAME record sets cannot use multivalue answer routing".into());
    }
    match (&record.alias, record.ttl, record.values.is_empty()) {
        (Some(_), None, true) => {}
        (Some(_), _, _) => return Err("an alias record set has no TTL and no values".into()),
        (None, Some(_), false) => {}
        (None, None, _) => return Err("a record set needs a TTL".into()),
        (None, _, true) => return Err("a record set needs at least one value".into()),
    }
    if let Some(ttl) = record.ttl
        && ttl > 2_147_483_647
    {
        return Err(format!("TTL {ttl} is out of range"));
    }
    if key.record_type == RecordType::Cname && record.values.len() > 1 {
        return Err("a CNAME record set has exactly one value".into());
    }
    for value in &record.values {
        if value.len() > MAX_VALUE_LEN {
            return Err(format!(
                "a value is {} characters long (max {MAX_VALUE_LEN})",
                value.len()
            ));
        }
        match key.record_type {
            RecordType::A if value.parse::<std::net::Ipv4Addr>().is_err() => {
                return Err(format!("{value:?} is not an IPv4 address"));
            }
            RecordType::Aaaa if value.parse::<std::net::Ipv6Addr>().is_err() => {
                return Err(format!("{value:?} is not an IPv6 address"));
            }
            RecordType::Txt | RecordType::Spf => match txt_strings(value) {
                None => return Err(format!("TXT value {value:?} is not quoted strings")),
                Some(strings) if strings.iter().any(|s| s.len() > MAX_TXT_STRING) => {
                    return Err(format!(
                        "a TXT string is longer than {MAX_TXT_STRING} characters; split it"
                    ));
                }
                Some(_) => {}
            },
            _ => {}
        }
    }
    if change.resource_record_cost() > MAX_RESOURCE_RECORDS
        || change.value_char_cost() > MAX_VALUE_CHARS
    {
        return Err("the record set alone exceeds the per-request limits".into());
    }
    Ok(())
}

fn label_wire_len(label: &str) -> usize {
    // `\ooo` escapes stand for one octet.
    label.len() - 3 * label.matches('\\').count()
}

/// Splits a zone plan into batches within Route 53's limits, in dependency order,
/// and returns the changes that break a rule (never sent).
pub(crate) fn batches(zone: &ZonePlan) -> (Vec<Batch>, Vec<RejectedChange>) {
    let mut rejected = Vec::new();
    let mut changes: Vec<Change> = Vec::new();
    for planned in &zone.changes {
        let change = Change::from_planned(planned);
        match validate(&change) {
            Ok(()) => changes.push(change),
            Err(reason) => rejected.push(RejectedChange { change, reason }),
        }
    }
    (pack(order_groups(changes)), rejected)
}

/// Groups changes by owner name and orders the groups by dependency.
pub(crate) fn order_groups(changes: Vec<Change>) -> Vec<ChangeGroup> {
    let mut by_name: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for change in changes {
        by_name
            .entry(change.owner_name().to_owned())
            .or_default()
            .push(change);
    }
    let mut groups: Vec<ChangeGroup> = by_name
        .into_iter()
        .map(|(name, mut changes)| {
            changes.sort_by_key(Change::phase);
            let replaces =
                changes.iter().any(|c| c.phase() == 1) && changes.iter().any(|c| c.phase() == 2);
            ChangeGroup {
                name,
                atomic: replaces,
                changes,
            }
        })
        .collect();
    let only_deletes = |g: &ChangeGroup| g.changes.iter().all(|c| c.action == Action::Delete);
    // Alias edges between groups of the same kind.
    let names_creating: BTreeSet<String> = groups
        .iter()
        .filter(|g| !only_deletes(g))
        .map(|g| g.name.clone())
        .collect();
    let names_deleting: BTreeSet<String> = groups
        .iter()
        .filter(|g| only_deletes(g))
        .map(|g| g.name.clone())
        .collect();
    let targets: BTreeMap<String, Vec<String>> = groups
        .iter()
        .map(|g| {
            let within = if only_deletes(g) {
                &names_deleting
            } else {
                &names_creating
            };
            let targets = g
                .changes
                .iter()
                .filter(|c| only_deletes(g) || c.action != Action::Delete)
                .filter_map(|c| c.record.alias.as_ref())
                .map(|a| super::model::canonical_name(&a.dns_name))
                .filter(|t| within.contains(t) && *t != g.name)
                .collect();
            (g.name.clone(), targets)
        })
        .collect();
    let mut depth_memo: BTreeMap<String, usize> = BTreeMap::new();
    for g in &groups {
        depth(&g.name, &targets, &mut depth_memo, 0);
    }
    let depth_of = |name: &str| depth_memo.get(name).copied().unwrap_or(0);
    groups.sort_by(|a, b| {
        let (da, db) = (only_deletes(a), only_deletes(b));
        da.cmp(&db).then_with(|| {
            if da {
                depth_of(&b.name).cmp(&depth_of(&a.name))
            } else {
                depth_of(&a.name).cmp(&depth_of(&b.name))
            }
            .then_with(|| a.name.cmp(&b.name))
        })
    });
    groups
}

fn depth(
    name: &str,
    targets: &BTreeMap<String, Vec<String>>,
    memo: &mut BTreeMap<String, usize>,
    level: usize,
) -> usize {
    if let Some(&d) = memo.get(name) {
        return d;
    }
    if level > 64 {
        return 0;
    }
    let d = targets
        .get(name)
        .map(|ts| {
            ts.iter()
                .map(|t| depth(t, targets, memo, level + 1) + 1)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    memo.insert(name.to_owned(), d);
    d
}

/// Packs ordered groups into batches within the limits, keeping each group whole
/// when it fits in one request.
pub(crate) fn pack(groups: Vec<ChangeGroup>) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    let mut current = Batch::default();
    let fits = |batch: &Batch, (rr, chars): (usize, usize)| {
        let (brr, bchars) = batch.cost();
        brr + rr <= MAX_RESOURCE_RECORDS && bchars + chars <= MAX_VALUE_CHARS
    };
    for group in groups {
        let cost = group.cost();
        if fits(&current, cost) {
            current.groups.push(group);
            continue;
        }
        if !current.groups.is_empty() {
            batches.push(std::mem::take(&mut current));
        }
        if fits(&current, cost) {
            current.groups.push(group);
            continue;
        }
        // Too large for one request: split it along its units (a record set with its
        // marker, kept together), in order (markers are created before their records
        // and deleted after them, so every part leaves a state the next plan
        // converges from).
        let mut taken: BTreeSet<RecordKey> = BTreeSet::new();
        let mut taken_cost = (0, 0);
        for (unit, (rr, chars)) in group.units() {
            if !taken.is_empty()
                && (taken_cost.0 + rr > MAX_RESOURCE_RECORDS
                    || taken_cost.1 + chars > MAX_VALUE_CHARS)
            {
                current.groups.push(group.part(&std::mem::take(&mut taken)));
                batches.push(std::mem::take(&mut current));
                taken_cost = (0, 0);
            }
            taken.insert(unit);
            taken_cost = (taken_cost.0 + rr, taken_cost.1 + chars);
        }
        if !taken.is_empty() {
            current.groups.push(group.part(&taken));
        }
    }
    if !current.groups.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests;
