//! [`TABLE`] against `config/example.toml`: every default in the table is the one the
//! file documents for its key, and every default the file documents is in the table.
//!
//! The file documents a key in the comment block above its line (`key = …`, or
//! `# key = …` in a commented-out section): `<type>, default <literal>` where the
//! default is a value, `default: <rule>` where it is computed. Keys of inline tables
//! and arrays of tables are documented in the block above their key or header as
//! `#   sub_key: <type>, default <literal>`.

use super::{TABLE, Value};
use crate::config::parse_duration;

const EXAMPLE: &str = include_str!("../../../config/example.toml");

/// Path segment of an element of an array of tables (or of an array value).
const ELEMENT: &str = "[]";

/// A key documented in `config/example.toml`.
#[derive(Debug)]
struct Entry {
    /// Key path: table names as written, [`ELEMENT`] for an array element.
    path: Vec<String>,
    /// Its documentation (the comment block, without the `#`s).
    doc: String,
    /// 1-based line of the key (or header) in the file.
    line: usize,
}

impl Entry {
    fn name(&self) -> String {
        self.path.join(".").replace(".[]", "[]")
    }
}

/// What a documentation block says of a default.
#[derive(Debug)]
enum Documented {
    /// Nothing (or `default none`: the key has no default).
    Nothing,
    /// `default <literal>`: the literal, parsed as TOML, and the text from it on.
    Literal(toml::Value, String),
    /// `default: <rule>` or `default <words>`: computed.
    Rule(String),
}

fn is_ident(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[a.b]` or `[[a.b]]`, the whole line: its path, and whether it is an array of tables.
fn header(line: &str) -> Option<(Vec<String>, bool)> {
    let (inner, array) = match line.strip_prefix("[[") {
        Some(rest) => (rest.strip_suffix("]]")?, true),
        None => (line.strip_prefix('[')?.strip_suffix(']')?, false),
    };
    let path: Vec<String> = inner.split('.').map(str::to_owned).collect();
    path.iter().all(|s| is_ident(s)).then_some((path, array))
}

/// `key = value` at the start of `line`: the key and the value's text.
fn key_line(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(" = ")?;
    is_ident(key).then_some((key, value))
}

/// Splits a block into the key's own documentation and its sub-keys' (`name: …` at
/// the start of a line, or after `. ` or two blanks).
fn split_sub_keys(block: &[String]) -> (String, Vec<(String, String)>) {
    let mut own = String::new();
    let mut subs: Vec<(String, String)> = Vec::new();
    for line in block {
        let mut rest = line.as_str();
        let mut at_start = true;
        loop {
            let marker = (0..rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .filter(|&i| {
                    (i == 0 && at_start) || rest[..i].ends_with(". ") || rest[..i].ends_with("  ")
                })
                .find_map(|i| {
                    let (name, after) = rest[i..].split_once(": ")?;
                    (is_ident(name) && !name.contains('-')).then_some((i, name, after))
                });
            let Some((i, name, after)) = marker else {
                let doc = subs.last_mut().map_or(&mut own, |(_, d)| d);
                doc.push(' ');
                doc.push_str(rest);
                break;
            };
            let doc = subs.last_mut().map_or(&mut own, |(_, d)| d);
            doc.push(' ');
            doc.push_str(&rest[..i]);
            subs.push((name.to_owned(), String::new()));
            rest = after;
            at_start = false;
        }
    }
    (own, subs)
}

/// Every documented key of the file, and every key line (documented or not).
fn entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut section: Vec<String> = Vec::new();
    let mut arrays: Vec<Vec<String>> = Vec::new();
    let mut block: Vec<String> = Vec::new();
    for (i, line) in EXAMPLE.lines().enumerate() {
        let line = line.trim_end();
        let uncommented = line.strip_prefix("# ").unwrap_or(line);
        if line.is_empty() {
            block.clear();
            continue;
        }
        if let Some((mut path, array)) = header(uncommented) {
            // A table under an array of tables belongs to its last element.
            if let Some(parent) = arrays
                .iter()
                .filter(|a| path.len() > a.len() && path.starts_with(a))
                .max_by_key(|a| a.len())
            {
                path.insert(parent.len(), ELEMENT.to_owned());
            }
            if array {
                arrays.push(path.clone());
                path.push(ELEMENT.to_owned());
            }
            let (_, subs) = split_sub_keys(&block);
            for (name, doc) in subs {
                let mut sub = path.clone();
                sub.push(name);
                entries.push(Entry {
                    path: sub,
                    doc,
                    line: i + 1,
                });
            }
            section = path;
            block.clear();
            continue;
        }
        let key = if line.starts_with('#') {
            line.strip_prefix("# ").and_then(key_line)
        } else {
            key_line(line)
        };
        let Some((key, value)) = key else {
            if let Some(comment) = line.strip_prefix('#') {
                block.push(comment.trim().to_owned());
            }
            continue;
        };
        let mut path = section.clone();
        path.push(key.to_owned());
        let (own, subs) = split_sub_keys(&block);
        for (name, doc) in subs {
            let mut sub = path.clone();
            if value.starts_with('[') {
                sub.push(ELEMENT.to_owned());
            }
            sub.push(name);
            entries.push(Entry {
                path: sub,
                doc,
                line: i + 1,
            });
        }
        entries.push(Entry {
            path,
            doc: own,
            line: i + 1,
        });
        block.clear();
    }
    entries
}

/// The default a documentation block gives.
fn documented(doc: &str) -> Documented {
    let Some(at) = doc.find("default") else {
        return Documented::Nothing;
    };
    let after = &doc[at + "default".len()..];
    if let Some(rule) = after.strip_prefix(':') {
        return Documented::Rule(rule.trim().to_owned());
    }
    let Some(text) = after.strip_prefix(' ') else {
        return documented(after);
    };
    let end = match text.chars().next() {
        Some('"') => text[1..].find('"').map_or(text.len(), |e| e + 2),
        Some(open @ ('[' | '{')) => {
            let close = if open == '[' { ']' } else { '}' };
            let mut depth = 0;
            let mut quoted = false;
            text.char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '"' => quoted = !quoted,
                        c if c == open && !quoted => depth += 1,
                        c if c == close && !quoted => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(i + 1)
                })
                .unwrap_or(text.len())
        }
        _ => text
            .find(|c: char| c.is_whitespace() || ",;()".contains(c))
            .unwrap_or(text.len()),
    };
    let literal = text[..end].trim_end_matches('.');
    if literal == "none" {
        return Documented::Nothing;
    }
    match toml::from_str::<toml::Table>(&format!("v = {literal}")) {
        Ok(mut table) => match table.remove("v") {
            Some(value) => Documented::Literal(value, text.to_owned()),
            None => Documented::Rule(text.to_owned()),
        },
        Err(_) => Documented::Rule(text.to_owned()),
    }
}

/// Whether a table path (`pools.NAME.endpoints[N].weight`) names an entry's path.
fn matches(pattern: &str, path: &[String]) -> bool {
    let mut segments = Vec::new();
    for part in pattern.split('.') {
        match part.strip_suffix("[N]") {
            Some(name) => segments.extend([name, ELEMENT]),
            None => segments.push(part),
        }
    }
    segments.len() == path.len()
        && segments
            .iter()
            .zip(path)
            .all(|(s, p)| *s == p || (*s == "NAME" && p != ELEMENT) || (*s == "N" && p == ELEMENT))
}

/// `default 80 (http), 443 (https) or 53 (dns)`: the values with their cases.
fn per_case(mut text: &str) -> Vec<(i64, String)> {
    let mut cases = Vec::new();
    while let Some((number, rest)) = text.split_once(" (") {
        let Ok(number) = number.parse() else { break };
        let Some((case, rest)) = rest.split_once(')') else {
            break;
        };
        cases.push((number, case.to_owned()));
        match rest
            .strip_prefix(", ")
            .or_else(|| rest.strip_prefix(" or "))
        {
            Some(next) => text = next,
            None => break,
        }
    }
    cases
}

/// Why `documented` is not `value`, if it is not.
fn differs(value: &Value, documented: &Documented) -> Option<String> {
    use Value::{Bool, Derived, Duration, EmptyTable, Float, Int, List, PerCase, Str};
    let literal = match documented {
        Documented::Literal(literal, _) => Some(literal),
        _ => None,
    };
    let same = match (value, literal) {
        (Derived, _) => matches!(documented, Documented::Rule(_)),
        (PerCase(cases), Some(_)) => {
            let Documented::Literal(_, text) = documented else {
                unreachable!()
            };
            let found = per_case(text);
            found.len() == cases.len()
                && found
                    .iter()
                    .zip(cases.iter())
                    .all(|((n, c), (m, d))| n == m && c == d)
        }
        (Int(n), Some(toml::Value::Integer(m))) => n == m,
        (Float(x), Some(toml::Value::Integer(m))) => *x == *m as f64,
        (Float(x), Some(toml::Value::Float(y))) => x == y,
        (Bool(b), Some(toml::Value::Boolean(c))) => b == c,
        (Str(s), Some(toml::Value::String(t))) => s == t,
        (Duration(d), Some(toml::Value::String(t))) => parse_duration(t).as_ref() == Ok(d),
        (List(items), Some(toml::Value::Array(array))) => {
            array.len() == items.len()
                && array
                    .iter()
                    .zip(items.iter())
                    .all(|(a, b)| a.as_str() == Some(*b))
        }
        (EmptyTable, Some(toml::Value::Table(table))) => table.is_empty(),
        _ => false,
    };
    let written = match documented {
        Documented::Nothing => "no default".to_owned(),
        Documented::Literal(literal, _) => format!("default {literal}"),
        Documented::Rule(rule) => format!("default {rule:?} (a rule, not a value)"),
    };
    (!same).then(|| format!("documents {written}, src/config/defaults.rs has {value:?}"))
}

#[test]
fn every_default_is_the_one_example_toml_documents() {
    let entries = entries();
    let mut problems = Vec::new();
    for (pattern, value) in TABLE {
        let documenting: Vec<&Entry> = entries
            .iter()
            .filter(|e| matches(pattern, &e.path))
            .filter(|e| !matches!(documented(&e.doc), Documented::Nothing))
            .collect();
        if documenting.is_empty() {
            problems.push(format!(
                "{pattern}: has a default in src/config/defaults.rs but none documented in config/example.toml \
                 (write `<type>, default <value>` above the key)"
            ));
        }
        for entry in documenting {
            if let Some(why) = differs(value, &documented(&entry.doc)) {
                problems.push(format!(
                    "{pattern}: config/example.toml:{} ({}) {why}",
                    entry.line,
                    entry.name()
                ));
            }
        }
    }
    for entry in &entries {
        let has_default = match documented(&entry.doc) {
            Documented::Literal(..) => true,
            Documented::Rule(_) => entry.doc.contains("default:"),
            Documented::Nothing => false,
        };
        if has_default && !TABLE.iter().any(|(p, _)| matches(p, &entry.path)) {
            problems.push(format!(
                "{}: config/example.toml:{} documents a default that src/config/defaults.rs TABLE does not hold",
                entry.name(),
                entry.line
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Every key the file sets (parsed with `toml`) is one the scan above found, so no
/// documented default escapes the check.
#[test]
fn the_scan_finds_every_key_of_example_toml() {
    fn walk(
        table: &toml::Table,
        path: &mut Vec<String>,
        keys: &[Vec<String>],
        missed: &mut Vec<String>,
    ) {
        for (key, value) in table {
            path.push(key.clone());
            if !keys.contains(path) {
                match value {
                    toml::Value::Table(inner) => walk(inner, path, keys, missed),
                    toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                        path.push(ELEMENT.to_owned());
                        for item in items.iter().filter_map(toml::Value::as_table) {
                            walk(item, path, keys, missed);
                        }
                        path.pop();
                    }
                    _ => missed.push(path.join(".")),
                }
            }
            path.pop();
        }
    }
    let document: toml::Table = toml::from_str(EXAMPLE).expect("config/example.toml parses");
    let keys: Vec<Vec<String>> = entries().into_iter().map(|e| e.path).collect();
    let mut missed = Vec::new();
    walk(&document, &mut Vec::new(), &keys, &mut missed);
    assert!(missed.is_empty(), "keys the scan missed: {missed:?}");
}

#[test]
fn the_table_names_each_key_once() {
    for (i, (path, _)) in TABLE.iter().enumerate() {
        assert!(
            !TABLE[..i].iter().any(|(p, _)| p == path),
            "{path} is listed twice"
        );
    }
}
