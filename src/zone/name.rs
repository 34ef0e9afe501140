//! Domain names in wire format (length-prefixed labels ending in a zero byte).
//!
//! The store keys every name by its lower-case wire form so a query name can be
//! looked up after one pass of ASCII lower-casing, without building a `Name`.

use hickory_proto::rr::Name;

/// Longest name in wire form (RFC 1035 §2.3.4).
pub(crate) const MAX_NAME_LEN: usize = 255;

/// Most labels a name can have (including the root label).
pub(crate) const MAX_LABELS: usize = 128;

/// Lower-case wire form of a hickory name.
pub(crate) fn wire_from_name(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

/// Lower-case wire form of a textual name (taken as absolute).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn wire_from_text(text: &str) -> Option<Vec<u8>> {
    let mut name = Name::from_ascii(text).ok()?;
    name.set_fqdn(true);
    Some(wire_from_name(&name))
}

/// Hickory name from a wire name (no compression pointers).
pub(crate) fn name_from_wire(wire: &[u8]) -> Name {
    let labels = Labels::new(wire).map(|(start, len)| &wire[start + 1..start + 1 + len]);
    Name::from_labels(labels).unwrap_or_else(|_| Name::root())
}

/// Text form (`www.example.com.`) of a wire name, with RFC 1035 escapes.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn text_from_wire(wire: &[u8]) -> String {
    name_from_wire(wire).to_ascii()
}

/// Iterator over `(offset, length)` of each non-root label of a wire name.
#[derive(Clone)]
pub(crate) struct Labels<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl<'a> Labels<'a> {
    /// Iterates the labels of `wire`.
    pub(crate) fn new(wire: &'a [u8]) -> Self {
        Self { wire, pos: 0 }
    }
}

impl Iterator for Labels<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let len = *self.wire.get(self.pos)? as usize;
        if len == 0 || self.pos + 1 + len > self.wire.len() {
            return None;
        }
        let item = (self.pos, len);
        self.pos += 1 + len;
        Some(item)
    }
}

/// Number of non-root labels.
pub(crate) fn label_count(wire: &[u8]) -> usize {
    Labels::new(wire).count()
}

/// The name with its first label removed (`None` for the root).
pub(crate) fn parent(wire: &[u8]) -> Option<&[u8]> {
    let len = *wire.first()? as usize;
    if len == 0 { None } else { wire.get(1 + len..) }
}

/// Whether `name` equals `ancestor` or lies below it (both lower-case wire).
pub(crate) fn is_at_or_below(name: &[u8], ancestor: &[u8]) -> bool {
    if name.len() < ancestor.len() {
        return false;
    }
    let start = name.len() - ancestor.len();
    if &name[start..] != ancestor {
        return false;
    }
    // The suffix must start on a label boundary.
    Labels::new(name).any(|(offset, _)| offset == start) || start == 0
}

/// Like [`is_at_or_below`], with `name` in any case (`ancestor` lower case).
pub(crate) fn is_at_or_below_ignore_case(name: &[u8], ancestor: &[u8]) -> bool {
    if name.len() < ancestor.len() {
        return false;
    }
    let start = name.len() - ancestor.len();
    name[start..].eq_ignore_ascii_case(ancestor)
        && (start == 0 || Labels::new(name).any(|(offset, _)| offset == start))
}

/// Whether the first label is `*`.
pub(crate) fn is_wildcard(wire: &[u8]) -> bool {
    wire.len() >= 2 && wire[0] == 1 && wire[1] == b'*'
}

/// ASCII-lower-cases a wire name in place.
pub(crate) fn lowercase_in_place(wire: &mut [u8]) {
    let mut pos = 0;
    while pos < wire.len() {
        let len = wire[pos] as usize;
        if len == 0 {
            break;
        }
        let end = (pos + 1 + len).min(wire.len());
        wire[pos + 1..end].make_ascii_lowercase();
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_relations() {
        let www = wire_from_text("WWW.Example.com.").unwrap();
        assert_eq!(www, b"\x03www\x07example\x03com\x00");
        let zone = wire_from_text("example.com").unwrap();
        assert!(is_at_or_below(&www, &zone));
        assert!(is_at_or_below(&zone, &zone));
        let other = wire_from_text("wexample.com").unwrap();
        assert!(!is_at_or_below(
            &other,
            &wire_from_text("xample.com").unwrap()
        ));
        assert_eq!(parent(&www), Some(zone.as_slice()));
        assert_eq!(label_count(&www), 3);
        assert_eq!(text_from_wire(&www), "www.example.com.");
        assert!(is_wildcard(&wire_from_text("*.example.com").unwrap()));
    }
}
