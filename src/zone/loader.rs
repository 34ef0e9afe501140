//! Reading RFC 1035 master files, in chunks: plain chunks by [`FastChunk`], the others
//! with hickory-proto's parser.
//!
//! Hickory's parser collects a whole file into one `BTreeMap` keyed by `Name`, whose
//! comparisons dominate large files (0.36 s and 140 MB peak for 200k records). We
//! split the text at statement boundaries into chunks of [`CHUNK_STATEMENTS`], give each
//! chunk the `$ORIGIN`/`$TTL`/owner context it inherits, parse the chunks one by one
//! and stream their records into the store: the same parser, ~2× faster, and a
//! peak of a few MB. Files whose meaning depends on state we do not track (`$INCLUDE`,
//! records without a TTL before any `$TTL`) are parsed in one piece.
//!
//! Even chunked, hickory's parser was most of a 200k-record zone's start-up (per-token
//! strings and `Name`s), so a chunk of plain statements — the bulk of big zones — is
//! read straight to wire form by [`FastChunk`], which reads only what hickory reads to
//! the very same records and hands anything else to it (same records, errors, lines).

use std::path::Path;

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use hickory_proto::serialize::txt::Parser;

use super::name::wire_from_name;
use super::rtype;

/// Statements per chunk; small chunks keep hickory's per-chunk map shallow.
const CHUNK_STATEMENTS: usize = 64;

/// A parse error with its line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseFailure {
    /// 1-based line where the failing statement starts (if known).
    pub line: Option<usize>,
    /// Hickory's message.
    pub message: String,
}

/// One statement of the file: its text and first line.
struct Statement<'a> {
    text: &'a str,
    line: usize,
    starts_with_blank: bool,
}

/// Context a chunk inherits from the statements before it.
#[derive(Clone, Default)]
struct Context {
    origin: String,
    ttl: Option<String>,
    owner: Option<String>,
}

/// Finds the zone origin: the first `$ORIGIN`, else an absolute SOA owner, else the
/// file name without its `.zone` suffix.
pub(crate) fn detect_origin(text: &str, path: &Path) -> Option<String> {
    for statement in statements(text) {
        let mut tokens = statement.text.split_whitespace();
        let Some(first) = tokens.next() else { continue };
        if first.eq_ignore_ascii_case("$ORIGIN") {
            return tokens.next().map(absolute);
        }
        if first.starts_with('$') || statement.starts_with_blank {
            continue;
        }
        let rest: Vec<&str> = tokens.take(3).collect();
        if rest.iter().any(|t| t.eq_ignore_ascii_case("SOA")) && first.ends_with('.') {
            return Some(first.to_owned());
        }
    }
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_suffix(".zone").unwrap_or(file);
    (!stem.is_empty()).then(|| absolute(stem))
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// Splits zone text into statements (a line, or several joined by parentheses or
/// quotes), skipping blank and comment-only lines.
fn statements(text: &str) -> impl Iterator<Item = Statement<'_>> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut line = 1;
    std::iter::from_fn(move || {
        loop {
            if pos >= bytes.len() {
                return None;
            }
            let start = pos;
            let start_line = line;
            let mut depth = 0i32;
            let mut in_quote = false;
            let mut only_space = true;
            while pos < bytes.len() {
                let b = bytes[pos];
                match b {
                    b'\\' if pos + 1 < bytes.len() => {
                        if bytes[pos + 1] == b'\n' {
                            line += 1;
                        }
                        only_space = false;
                        pos += 2;
                        continue;
                    }
                    b'"' => {
                        in_quote = !in_quote;
                        only_space = false;
                    }
                    b';' if !in_quote => {
                        while pos < bytes.len() && bytes[pos] != b'\n' {
                            pos += 1;
                        }
                        continue;
                    }
                    b'(' if !in_quote => depth += 1,
                    b')' if !in_quote => depth -= 1,
                    b'\n' => {
                        line += 1;
                        if depth <= 0 && !in_quote {
                            pos += 1;
                            break;
                        }
                    }
                    b' ' | b'\t' | b'\r' => {}
                    _ => only_space = false,
                }
                pos += 1;
            }
            if only_space {
                continue;
            }
            let text = &text[start..pos];
            return Some(Statement {
                text,
                line: start_line,
                starts_with_blank: text.starts_with([' ', '\t']),
            });
        }
    })
}

/// A record as read from the file.
pub(crate) struct ParsedRecord<'a> {
    /// Lower-case wire owner.
    pub owner: &'a [u8],
    /// RR type code.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// Uncompressed wire rdata (case preserved).
    pub rdata: &'a [u8],
}

/// Parses `text` as a zone with the given origin, calling `sink` for every record.
/// `sink` returns an error message to abort (e.g. a record outside the zone).
pub(crate) fn parse_zone(
    text: &str,
    path: &Path,
    origin: &str,
    sink: &mut dyn FnMut(ParsedRecord<'_>) -> Result<(), String>,
) -> Result<(), ParseFailure> {
    parse_chunked(text, path, origin, sink, true)
}

/// [`parse_zone`]; `fast`: read plain chunks with [`FastChunk`] (false: every chunk
/// with hickory's parser, for tests that both give the same).
fn parse_chunked(
    text: &str,
    path: &Path,
    origin: &str,
    sink: &mut dyn FnMut(ParsedRecord<'_>) -> Result<(), String>,
    fast_path: bool,
) -> Result<(), ParseFailure> {
    let origin_name = Name::from_ascii(origin).map_err(|e| ParseFailure {
        line: None,
        message: format!("invalid origin {origin:?}: {e}"),
    })?;
    let statements: Vec<Statement<'_>> = statements(text).collect();
    if !chunkable(&statements) {
        return parse_piece(text.to_owned(), path, &origin_name, sink).map_err(|message| {
            ParseFailure {
                line: locate_failure(&statements, path, &origin_name),
                message,
            }
        });
    }
    let mut context = Context {
        origin: origin.to_owned(),
        ..Context::default()
    };
    let mut fast = FastChunk::default();
    for chunk in statements.chunks(CHUNK_STATEMENTS) {
        // Most chunks hold only plain records: read them directly. A chunk with
        // anything else (or whose records the store refuses) goes to hickory's
        // parser from the same context, which gives its records, errors and lines.
        let saved = context.clone();
        if fast_path && fast.read(chunk, &mut context) && fast.emit(sink).is_ok() {
            continue;
        }
        context = saved;
        let mut piece =
            String::with_capacity(chunk.iter().map(|s| s.text.len() + 1).sum::<usize>() + 128);
        piece.push_str("$ORIGIN ");
        piece.push_str(&context.origin);
        piece.push('\n');
        if let Some(ttl) = &context.ttl {
            piece.push_str("$TTL ");
            piece.push_str(ttl);
            piece.push('\n');
        }
        for (i, statement) in chunk.iter().enumerate() {
            // DS and CDS (a signed child's delegation) are read here: hickory's
            // parser refuses them ("should be dynamically generated").
            match delegation_signer(statement, &context) {
                Some(Ok((owner, ttl, rdata))) => {
                    sink(ParsedRecord {
                        owner: &owner,
                        rtype: 43,
                        ttl,
                        rdata: &rdata,
                    })
                    .map_err(|message| ParseFailure {
                        line: Some(statement.line),
                        message,
                    })?;
                    track(&mut context, statement);
                    continue;
                }
                Some(Err(message)) => {
                    return Err(ParseFailure {
                        line: Some(statement.line),
                        message,
                    });
                }
                None => {}
            }
            if i == 0 && statement.starts_with_blank {
                if let Some(owner) = &context.owner {
                    piece.push_str(owner);
                }
            }
            piece.push_str(statement.text);
            if !statement.text.ends_with('\n') {
                piece.push('\n');
            }
            track(&mut context, statement);
        }
        if let Err(message) = parse_piece(piece, path, &origin_name, sink) {
            return Err(ParseFailure {
                line: locate_failure(chunk, path, &origin_name).or(Some(chunk[0].line)),
                message,
            });
        }
    }
    Ok(())
}

/// One record read by [`FastChunk`]: ranges into its byte buffer.
struct FastRecord {
    owner: std::ops::Range<usize>,
    rdata: std::ops::Range<usize>,
    rtype: u16,
    ttl: u32,
}

/// Reads chunks made only of plain records straight to wire form, without hickory's
/// parser (whose per-token strings, `Name`s and `BTreeMap` cost most of a big zone's
/// load time). Plain means what hickory reads to the very same records: an owner
/// (`@`, or LDH labels and `*`), at most one decimal TTL, at most the class `IN`,
/// and an A, AAAA, NS, CNAME, PTR, MX or TXT (quoted strings without escapes) record
/// with exactly its fields; `$ORIGIN` with an absolute name and `$TTL` in seconds.
/// Names are lower-cased, as hickory's IDNA mapping does. Anything else — escapes,
/// parentheses, comments, other types, duplicates within the chunk (which hickory
/// collapses in its own way) — makes [`FastChunk::read`] return false and the chunk
/// goes to hickory's parser as before.
#[derive(Default)]
struct FastChunk {
    /// Owner and rdata bytes of the chunk's records.
    bytes: Vec<u8>,
    records: Vec<FastRecord>,
    /// The origin `origin_wire` was made from.
    origin_text: String,
    origin_wire: Vec<u8>,
    order: Vec<u32>,
}

impl FastChunk {
    /// Reads a chunk's records into the buffer, updating `context` as the statements
    /// go. False: some statement needs hickory's parser (`context` is then partly
    /// updated; the caller restores it).
    fn read(&mut self, chunk: &[Statement<'_>], context: &mut Context) -> bool {
        self.bytes.clear();
        self.records.clear();
        if !self.set_origin(&context.origin) {
            return false;
        }
        let mut owner: Option<std::ops::Range<usize>> = None;
        // The last statement naming an owner, not yet told to `context`.
        let mut named: Option<&Statement<'_>> = None;
        let mut tokens: Vec<&str> = Vec::with_capacity(8);
        for statement in chunk {
            let text = statement.text;
            // Parentheses, escapes, comments, carriage returns, control and
            // non-ASCII bytes: hickory's parser.
            let special = |b: u8| {
                matches!(b, b'(' | b')' | b'\\' | b';') || !matches!(b, b' '..=b'~' | b'\t' | b'\n')
            };
            if text.bytes().any(special) {
                return false;
            }
            if !split_tokens(text, &mut tokens) {
                return false;
            }
            let Some(&first) = tokens.first() else {
                return false;
            };
            if first.starts_with('$') {
                if statement.starts_with_blank {
                    return false;
                }
                if let Some(statement) = named.take() {
                    track(context, statement);
                }
                let directive_ok = tokens.len() == 2
                    && !tokens[1].starts_with('"')
                    && ((first == "$ORIGIN" && tokens[1].ends_with('.'))
                        || (first == "$TTL" && decimal(tokens[1]).is_some()));
                if !directive_ok {
                    return false;
                }
                track(context, statement);
                if !self.set_origin(&context.origin) {
                    return false;
                }
                continue;
            }
            let mut rest = &tokens[..];
            if !statement.starts_with_blank {
                let start = self.bytes.len();
                if first == "@" {
                    self.bytes.extend_from_slice(&self.origin_wire);
                } else if !push_name(first, &self.origin_wire, &mut self.bytes) {
                    return false;
                }
                owner = Some(start..self.bytes.len());
                named = Some(statement);
                rest = &rest[1..];
            } else if owner.is_none() {
                // The owner of the statement before the chunk.
                let Some(previous) = context.owner.as_deref() else {
                    return false;
                };
                let start = self.bytes.len();
                if !previous.ends_with('.') || !push_name(previous, &[], &mut self.bytes) {
                    return false;
                }
                owner = Some(start..self.bytes.len());
            }
            let Some(owner) = owner.clone() else {
                return false;
            };
            let mut ttl = None;
            let mut class = false;
            let rtype = loop {
                let Some((&token, more)) = rest.split_first() else {
                    return false;
                };
                rest = more;
                if token.bytes().all(|b| b.is_ascii_digit()) {
                    match (ttl, decimal(token)) {
                        (None, Some(value)) => ttl = Some(value),
                        _ => return false,
                    }
                } else if token.eq_ignore_ascii_case("IN") && !class {
                    class = true;
                } else {
                    match fast_type(token) {
                        Some(rtype) => break rtype,
                        None => return false,
                    }
                }
            };
            let ttl = match ttl {
                Some(ttl) => ttl,
                None => match context.ttl.as_deref().and_then(decimal) {
                    Some(ttl) => ttl,
                    None => return false,
                },
            };
            let start = self.bytes.len();
            if !self.push_rdata(rtype, rest) {
                return false;
            }
            self.records.push(FastRecord {
                owner,
                rdata: start..self.bytes.len(),
                rtype,
                ttl,
            });
        }
        if let Some(statement) = named {
            track(context, statement);
        }
        !self.has_duplicates()
    }

    /// Makes `origin_wire` the wire form of `origin` (absolute text). False if it is
    /// not a plain name.
    fn set_origin(&mut self, origin: &str) -> bool {
        if origin == self.origin_text && !self.origin_wire.is_empty() {
            return true;
        }
        self.origin_wire.clear();
        self.origin_text.clear();
        if !origin.ends_with('.') || !push_name(origin, &[], &mut self.origin_wire) {
            self.origin_wire.clear();
            return false;
        }
        self.origin_text.push_str(origin);
        true
    }

    /// Appends the rdata of a record of `rtype` from its tokens.
    fn push_rdata(&mut self, rtype: u16, tokens: &[&str]) -> bool {
        let out = &mut self.bytes;
        let quoted = |t: &&str| t.starts_with('"');
        if rtype != rtype::TXT && tokens.iter().any(quoted) {
            return false;
        }
        match (rtype, tokens) {
            (rtype::A, [address]) => match address.parse::<std::net::Ipv4Addr>() {
                Ok(address) => out.extend_from_slice(&address.octets()),
                Err(_) => return false,
            },
            (rtype::AAAA, [address]) => match address.parse::<std::net::Ipv6Addr>() {
                Ok(address) => out.extend_from_slice(&address.octets()),
                Err(_) => return false,
            },
            (rtype::NS | rtype::CNAME | rtype::PTR, [target]) => {
                return *target != "@" && push_name(target, &self.origin_wire, out);
            }
            (rtype::MX, [preference, exchange]) => {
                let Some(preference) = decimal(preference).and_then(|p| u16::try_from(p).ok())
                else {
                    return false;
                };
                out.extend_from_slice(&preference.to_be_bytes());
                return *exchange != "@" && push_name(exchange, &self.origin_wire, out);
            }
            (rtype::TXT, [_, ..]) => {
                for token in tokens {
                    let text = match token.strip_prefix('"') {
                        Some(inner) => match inner.strip_suffix('"') {
                            Some(text) if !text.is_empty() && !text.contains('"') => text,
                            _ => return false,
                        },
                        None => token,
                    };
                    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._=:/+".contains(&b);
                    if text.len() > 255 || (!token.starts_with('"') && !text.bytes().all(plain)) {
                        return false;
                    }
                    out.push(text.len() as u8);
                    out.extend_from_slice(text.as_bytes());
                }
            }
            _ => return false,
        }
        true
    }

    /// Whether two records of the chunk share owner and type and either are CNAMEs
    /// or have the same rdata: hickory's record sets keep one of them, in its own way.
    fn has_duplicates(&mut self) -> bool {
        if self.records.len() < 2 {
            return false;
        }
        let (bytes, records) = (&self.bytes, &self.records);
        let key = |i: u32| {
            let r = &records[i as usize];
            (&bytes[r.owner.clone()], r.rtype, &bytes[r.rdata.clone()])
        };
        self.order.clear();
        self.order.extend(0..records.len() as u32);
        self.order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
        self.order.windows(2).any(|pair| {
            let (a, b) = (key(pair[0]), key(pair[1]));
            a.0 == b.0 && a.1 == b.1 && (a.1 == rtype::CNAME || a.2 == b.2)
        })
    }

    /// Gives the chunk's records to `sink`, in file order.
    fn emit(
        &self,
        sink: &mut dyn FnMut(ParsedRecord<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        for record in &self.records {
            sink(ParsedRecord {
                owner: &self.bytes[record.owner.clone()],
                rtype: record.rtype,
                ttl: record.ttl,
                rdata: &self.bytes[record.rdata.clone()],
            })?;
        }
        Ok(())
    }
}

/// A number in plain decimal digits (no sign, no unit).
fn decimal(token: &str) -> Option<u32> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// The RR types [`FastChunk`] reads.
fn fast_type(token: &str) -> Option<u16> {
    [
        ("A", rtype::A),
        ("AAAA", rtype::AAAA),
        ("NS", rtype::NS),
        ("CNAME", rtype::CNAME),
        ("PTR", rtype::PTR),
        ("MX", rtype::MX),
        ("TXT", rtype::TXT),
    ]
    .iter()
    .find(|(name, _)| token.eq_ignore_ascii_case(name))
    .map(|&(_, code)| code)
}

/// Splits a statement into tokens at blanks; a token starting with `"` runs to the
/// next `"` (kept with its quotes) and must be followed by a blank. False if a
/// quote is left open or stands inside a token.
fn split_tokens<'a>(text: &'a str, tokens: &mut Vec<&'a str>) -> bool {
    tokens.clear();
    let bytes = text.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        if matches!(bytes[pos], b' ' | b'\t' | b'\n') {
            pos += 1;
            continue;
        }
        let start = pos;
        if bytes[pos] == b'"' {
            let Some(close) = bytes[pos + 1..].iter().position(|&b| b == b'"') else {
                return false;
            };
            if bytes[pos + 1..pos + 1 + close].contains(&b'\n') {
                return false;
            }
            pos += close + 2;
            if pos < bytes.len() && !matches!(bytes[pos], b' ' | b'\t' | b'\n') {
                return false;
            }
        } else {
            while pos < bytes.len() && !matches!(bytes[pos], b' ' | b'\t' | b'\n') {
                if bytes[pos] == b'"' {
                    return false;
                }
                pos += 1;
            }
        }
        tokens.push(&text[start..pos]);
    }
    true
}

/// Appends the lower-case wire form of a plain name (LDH labels or `*`, relative ones
/// completed with `origin`, a wire name). False for anything hickory might read
/// otherwise: escapes, `_`, IDNA (`xn--`), leading or trailing hyphens, overlong
/// labels or names, the root.
fn push_name(text: &str, origin: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let (body, absolute) = match text.strip_suffix('.') {
        Some(body) => (body, true),
        None => (text, false),
    };
    if body.is_empty() || (!absolute && origin.is_empty()) {
        return false;
    }
    for label in body.split('.') {
        let bytes = label.as_bytes();
        let plain = label == "*"
            || (!bytes.is_empty()
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
                && bytes.get(2..4) != Some(b"--"));
        if !plain {
            out.truncate(start);
            return false;
        }
        out.push(bytes.len() as u8);
        out.extend(bytes.iter().map(u8::to_ascii_lowercase));
    }
    if absolute {
        out.push(0);
    } else {
        out.extend_from_slice(origin);
    }
    if out.len() - start > super::name::MAX_NAME_LEN {
        out.truncate(start);
        return false;
    }
    true
}

/// Whether the statements can be parsed in independent chunks.
fn chunkable(statements: &[Statement<'_>]) -> bool {
    let mut ttl_seen = false;
    for statement in statements {
        let first = statement.text.split_whitespace().next().unwrap_or("");
        if first.eq_ignore_ascii_case("$INCLUDE") || first.eq_ignore_ascii_case("$GENERATE") {
            return false;
        }
        if first.eq_ignore_ascii_case("$TTL") {
            ttl_seen = true;
        } else if !first.starts_with('$') && !ttl_seen {
            // Without $TTL a record may inherit the previous record's TTL, which a
            // chunk would not know.
            return false;
        }
        if !statement.starts_with_blank && first.contains('\\') {
            return false;
        }
    }
    true
}

/// Updates the inherited context after a statement.
fn track(context: &mut Context, statement: &Statement<'_>) {
    let mut tokens = statement.text.split_whitespace();
    let Some(first) = tokens.next() else { return };
    if first.eq_ignore_ascii_case("$ORIGIN") {
        if let Some(origin) = tokens.next() {
            context.origin = resolve(origin, &context.origin);
        }
    } else if first.eq_ignore_ascii_case("$TTL") {
        context.ttl = tokens.next().map(str::to_owned);
    } else if !statement.starts_with_blank && !first.starts_with('$') {
        context.owner = Some(resolve(first, &context.origin));
    }
}

/// A record read outside hickory's parser: lower-case wire owner, TTL, rdata.
type OwnRecord = (Vec<u8>, u32, Vec<u8>);

/// A `DS` statement (`[owner] [ttl] [IN] DS tag algorithm digest-type hex…`) as
/// lower-case wire owner, TTL and rdata; None for any other statement.
fn delegation_signer(
    statement: &Statement<'_>,
    context: &Context,
) -> Option<Result<OwnRecord, String>> {
    let text = statement.text.replace(['(', ')'], " ");
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let at = tokens
        .iter()
        .take(4)
        .position(|t| t.eq_ignore_ascii_case("DS"))?;
    let mut owner = None;
    let mut ttl = None;
    for (i, token) in tokens[..at].iter().enumerate() {
        if token.eq_ignore_ascii_case("IN") {
            continue;
        }
        match token.parse::<u32>() {
            Ok(value) => ttl = Some(value),
            Err(_) if i == 0 && !statement.starts_with_blank => {
                owner = Some(resolve(token, &context.origin));
            }
            Err(_) => return Some(Err(format!("unexpected {token:?} before DS"))),
        }
    }
    let owner = match owner.or_else(|| context.owner.clone()) {
        Some(owner) => owner,
        None => return Some(Err("DS record without an owner".into())),
    };
    let ttl = ttl
        .or_else(|| context.ttl.as_deref().and_then(|t| t.parse().ok()))
        .unwrap_or(3600);
    let fields = &tokens[at + 1..];
    let parsed = (|| -> Option<Vec<u8>> {
        let tag: u16 = fields.first()?.parse().ok()?;
        let algorithm: u8 = fields.get(1)?.parse().ok()?;
        let digest_type: u8 = fields.get(2)?.parse().ok()?;
        let hex: String = fields.get(3..)?.concat();
        if hex.is_empty() || hex.len() % 2 != 0 {
            return None;
        }
        let mut rdata = tag.to_be_bytes().to_vec();
        rdata.push(algorithm);
        rdata.push(digest_type);
        for pair in hex.as_bytes().chunks(2) {
            rdata.push(u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?);
        }
        Some(rdata)
    })();
    let Some(rdata) = parsed else {
        return Some(Err(
            "DS: expected `key-tag algorithm digest-type hex-digest`".into(),
        ));
    };
    let mut wire = match super::name::wire_from_text(&owner) {
        Some(wire) => wire,
        None => return Some(Err(format!("DS owner {owner:?} is not a name"))),
    };
    super::name::lowercase_in_place(&mut wire);
    Some(Ok((wire, ttl, rdata)))
}

fn resolve(name: &str, origin: &str) -> String {
    if name == "@" {
        origin.to_owned()
    } else if name.ends_with('.') {
        name.to_owned()
    } else if origin == "." {
        format!("{name}.")
    } else {
        format!("{name}.{origin}")
    }
}

/// Hickory's parse error without its layers' prefixes ("proto error: decoding
/// error: record type string unknown: AA" → "record type string unknown: AA").
fn plain_message(message: &str) -> String {
    let mut text = message.trim();
    for prefix in ["proto error: ", "decoding error: ", "parse error: "] {
        text = text.strip_prefix(prefix).unwrap_or(text);
    }
    text.to_owned()
}

fn parse_piece(
    piece: String,
    path: &Path,
    origin: &Name,
    sink: &mut dyn FnMut(ParsedRecord<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let (_, sets) = Parser::new(piece, Some(path.to_owned()), Some(origin.clone()))
        .parse()
        .map_err(|e| plain_message(&e.to_string()))?;
    let mut rdata = Vec::with_capacity(64);
    for (key, set) in sets {
        let owner = wire_from_name(&key.name);
        for record in set.records_without_rrsigs() {
            if record.record_type() == RecordType::OPT || record.record_type() == RecordType::TSIG {
                return Err(format!(
                    "{} records cannot appear in a zone",
                    record.record_type()
                ));
            }
            rdata.clear();
            let mut encoder = BinEncoder::new(&mut rdata);
            encoder.set_name_encoding(NameEncoding::Uncompressed);
            record
                .data
                .emit(&mut encoder)
                .map_err(|e| format!("cannot encode {} record: {e}", record.record_type()))?;
            sink(ParsedRecord {
                owner: &owner,
                rtype: u16::from(record.record_type()),
                ttl: record.ttl,
                rdata: &rdata,
            })?;
        }
    }
    Ok(())
}

/// Re-parses statements one by one (with their context) to find the failing line.
fn locate_failure(statements: &[Statement<'_>], path: &Path, origin: &Name) -> Option<usize> {
    let mut context = Context {
        origin: origin.to_ascii(),
        ..Context::default()
    };
    for statement in statements {
        let mut piece = format!("$ORIGIN {}\n", context.origin);
        if let Some(ttl) = &context.ttl {
            piece.push_str(&format!("$TTL {ttl}\n"));
        } else {
            piece.push_str("$TTL 3600\n");
        }
        if statement.starts_with_blank {
            if let Some(owner) = &context.owner {
                piece.push_str(owner);
            }
        }
        piece.push_str(statement.text);
        piece.push('\n');
        let is_directive = statement.text.trim_start().starts_with('$');
        if !is_directive {
            let failed = parse_piece(piece, path, origin, &mut |_| Ok(())).is_err();
            if failed {
                return Some(statement.line);
            }
        }
        track(&mut context, statement);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = (String, u16, u32, Vec<u8>);

    fn collect(text: &str, origin: &str) -> Result<Vec<Row>, ParseFailure> {
        let mut out = Vec::new();
        parse_zone(text, Path::new("test.zone"), origin, &mut |r| {
            out.push((
                super::super::name::text_from_wire(r.owner),
                r.rtype,
                r.ttl,
                r.rdata.to_vec(),
            ));
            Ok(())
        })?;
        out.sort();
        out.dedup(); // the store collapses identical records; chunks may repeat them
        Ok(out)
    }

    #[test]
    fn chunked_parse_equals_whole_parse() {
        let mut text =
            String::from("$ORIGIN example.\n$TTL 300\n@ IN SOA ns1 host ( 1 2 3 4\n 5 )\n");
        for i in 0..300 {
            text.push_str(&format!("h{i} IN A 10.0.{}.{}\n", i / 256, i % 256));
            if i % 50 == 0 {
                text.push_str("  IN TXT \"continued ; not a comment\"\n");
                text.push_str("$ORIGIN sub.example.\nx IN A 192.0.2.1\n$ORIGIN example.\n");
            }
        }
        let chunked = collect(&text, "example.").unwrap();
        let mut whole = Vec::new();
        parse_piece(
            text.clone(),
            Path::new("t"),
            &Name::from_ascii("example.").unwrap(),
            &mut |r| {
                whole.push((
                    super::super::name::text_from_wire(r.owner),
                    r.rtype,
                    r.ttl,
                    r.rdata.to_vec(),
                ));
                Ok(())
            },
        )
        .unwrap();
        whole.sort();
        whole.dedup();
        assert_eq!(chunked, whole);
        assert!(chunked.iter().any(|r| r.0 == "x.sub.example." && r.1 == 1));
    }

    /// Records in the order given to the sink, then stably grouped by owner and
    /// type (the store's order), or the failure; the sink refuses owners outside
    /// `origin` like the store.
    fn run(text: &str, origin: &str, fast: bool) -> Result<Vec<Row>, ParseFailure> {
        let origin_wire = super::super::name::wire_from_text(origin).unwrap();
        let mut out = Vec::new();
        parse_chunked(
            text,
            Path::new("test.zone"),
            origin,
            &mut |r| {
                if !super::super::name::is_at_or_below(r.owner, &origin_wire) {
                    return Err(format!(
                        "{} is outside the zone",
                        super::super::name::text_from_wire(r.owner)
                    ));
                }
                out.push((
                    super::super::name::text_from_wire(r.owner),
                    r.rtype,
                    r.ttl,
                    r.rdata.to_vec(),
                ));
                Ok(())
            },
            fast,
        )?;
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(out)
    }

    /// A zone mixing plain statements with ones only hickory's parser reads.
    fn mixed_zone(records: usize, odd: &[&str]) -> String {
        let mut text = String::from(
            "$ORIGIN Example.\n$TTL 300\n@ IN SOA ns1 host ( 1 2 3 4\n 5 )\n@ IN NS ns1\n",
        );
        for i in 0..records {
            let line = match i % 16 {
                0 => format!("h{i} IN A 10.0.{}.{}", i / 256 % 256, i % 256),
                1 => format!("H{i}.Example. 600 in a 10.1.{}.{}", i / 256 % 256, i % 256),
                2 => format!("\tIN AAAA 2001:db8::{i:x}"),
                3 => format!("mx{i} 300 IN MX {} Mail{i}", i % 100),
                4 => format!("c{i} CNAME h{i}"),
                5 => format!("p{i} PTR h{i}.Example."),
                6 => format!("t{i} TXT \"hello world {i}\" v=1 \"x\""),
                7 => format!("*.w{i} IN A 192.0.2.{}", i % 256),
                8 => format!("a-b{i} IN 60 A 192.0.2.1"),
                9 => format!("n{i} NS ns.Other.Test."),
                10 => format!("m{i}.sub 120 MX 5 mail"),
                11 => format!("$ORIGIN sub{}.example.", i % 3),
                12 => "$ORIGIN example.".to_owned(),
                13 => format!("$TTL {}", 100 + i % 7),
                14 => format!("q{i} IN TXT \"{}\"", "z".repeat(i % 256)),
                _ if i % 160 == 15 => odd[i / 160 % odd.len()].replace("{i}", &i.to_string()),
                _ => format!("o{i} A 192.0.2.{}", i % 256),
            };
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    #[test]
    fn fast_chunks_read_what_hickory_reads() {
        let odd = [
            "e{i} IN A 192.0.2.7 ; a comment",
            "t{i} TXT \"hello ; world\"",
            "_srv{i} IN TXT \"x\"",
            "xn--bcher-kva.x{i} IN A 192.0.2.8",
            "s{i} IN SRV 0 5 5060 sip",
            "d{i} IN A 192.0.2.1\nd{i} IN A 192.0.2.1",
            "k{i} IN CNAME a\nk{i} IN CNAME b",
            "l{i} 60 IN A 192.0.2.2\nl{i} 70 IN A 192.0.2.2",
            "u{i} IN TXT \"a\\\"b\"",
            "f{i} 1h IN A 192.0.2.4",
            "r{i} CH A 192.0.2.5",
            "w{i} IN TXT \"\"",
            "y{i} IN MX +5 mail",
            "z{i} IN A 192.0.2.6 extra",
            "\"q{i}\" IN A 192.0.2.9",
        ];
        let text = mixed_zone(8000, &odd);
        let fast = run(&text, "example.", true).unwrap();
        let slow = run(&text, "example.", false).unwrap();
        assert!(fast.len() > 6000, "{}", fast.len());
        assert_eq!(fast, slow);
        // Most chunks were read without hickory's parser.
        let all: Vec<Statement<'_>> = statements(&text).collect();
        let (mut context, mut reader) = (Context::default(), FastChunk::default());
        context.origin = "example.".into();
        let mut read = 0;
        let chunks = all.chunks(CHUNK_STATEMENTS);
        let total = chunks.len();
        for chunk in chunks {
            let saved = context.clone();
            if reader.read(chunk, &mut context) {
                read += 1;
            } else {
                context = saved;
                chunk.iter().for_each(|s| track(&mut context, s));
            }
        }
        assert!(read * 2 > total, "{read} of {total} chunks read directly");
    }

    #[test]
    fn fast_chunks_fail_like_hickory() {
        for bad in [
            "h{i} IN A 10.0.0",
            "h{i} IN AAAA 10.0.0.1",
            "h{i} IN MX 70000 mail",
            "h{i} IN FOO bar",
            "h{i}.elsewhere. IN A 192.0.2.1",
            "$origin example.",
            "$TTL +300",
            "h{i} 300 300 IN A 192.0.2.1",
            "-x{i} IN A 192.0.2.3",
            "g{i} IN A 010.0.0.1",
            "q{i} IN TXT \"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\"",
        ] {
            let text = mixed_zone(700, &[bad]);
            let fast = run(&text, "example.", true);
            let slow = run(&text, "example.", false);
            assert_eq!(fast, slow, "{bad}");
        }
    }

    #[test]
    fn plain_chunks_take_the_fast_path() {
        let mut text = String::from("$ORIGIN example.\n$TTL 300\n");
        for i in 0..64 {
            text.push_str(&format!("h{i} IN A 10.0.0.{i}\n"));
        }
        let plain: Vec<Statement<'_>> = statements(&text).collect();
        let mut context = Context::default();
        let mut fast = FastChunk::default();
        context.origin = "example.".into();
        assert!(fast.read(&plain, &mut context));
        assert_eq!(fast.records.len(), 64);
        assert_eq!(context.owner.as_deref(), Some("h63.example."));
        for odd in [
            "x IN DS 1 2 3 ab",
            "x IN A 1.2.3.4 ; c",
            "x IN SOA a b 1 2 3 4 5",
        ] {
            let text = format!("{text}{odd}\n");
            let all: Vec<Statement<'_>> = statements(&text).collect();
            assert!(!fast.read(&all, &mut context.clone()), "{odd}");
        }
    }

    #[test]
    fn errors_carry_their_line() {
        let text = "$ORIGIN example.\n$TTL 300\n@ IN SOA ns1 host 1 2 3 4 5\nwww IN A 10.0.0.1\nbad IN A not-an-ip\n";
        let failure = collect(text, "example.").unwrap_err();
        assert_eq!(failure.line, Some(5), "{failure:?}");
    }

    #[test]
    fn origin_detection() {
        let p = Path::new("zones/foo.test.zone");
        assert_eq!(detect_origin("$ORIGIN a.b.\n", p).as_deref(), Some("a.b."));
        assert_eq!(
            detect_origin("c.d. 300 IN SOA x. y. 1 2 3 4 5\n", p).as_deref(),
            Some("c.d.")
        );
        assert_eq!(
            detect_origin("@ IN SOA x. y. 1 2 3 4 5\n", p).as_deref(),
            Some("foo.test.")
        );
    }
}
