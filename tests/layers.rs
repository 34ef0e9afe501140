//! The library's layering, checked from its source: no file imports a module of a
//! higher layer, and no two files (or more) import each other in a cycle.
//!
//! The order is written once, in `src/lib.rs`'s crate docs (the `text` block after
//! "Layers"): one line per layer, lowest first, modules separated by commas. A
//! module may use its own layer's and lower layers' modules. A file's imports are
//! its `use` trees and the `crate::…`, `super::…` and `self::…` paths in its code
//! (comments and `#[cfg(test)] mod tests` blocks left out; `tests.rs` files are
//! tests, not layers). A child file using its parent (`super::`) is the parent's
//! code split across files, not a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer index of each top-level module, from `src/lib.rs`.
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut lines = lib.lines().skip_while(|l| !l.starts_with("//! Layers"));
    let mut in_block = false;
    let mut out = BTreeMap::new();
    let mut layer = 0;
    for line in lines.by_ref() {
        let text = line.trim_start_matches("//!").trim();
        if text.starts_with("```") {
            if in_block {
                break;
            }
            in_block = true;
            continue;
        }
        if !in_block || text.is_empty() {
            continue;
        }
        for module in text.split(',') {
            let module = module.trim();
            assert!(
                out.insert(module.to_owned(), layer).is_none(),
                "{module} is listed twice in src/lib.rs's layers"
            );
        }
        layer += 1;
    }
    assert!(!out.is_empty(), "src/lib.rs has no `//! Layers` block");
    out
}

/// Every library source file with its module path (`dns::xfr::wire`).
fn files(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let mut module: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            if module == ["lib"] {
                module.clear();
            }
            out.insert(module, path);
        }
    }
    out
}

/// The source without comments and without `#[cfg(test)] mod … { … }` blocks.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // The item that follows: skip it whole when it is a module with a body.
            if let Some(next) = lines.peek()
                && next.trim_start().starts_with("mod ")
                && next.contains('{')
            {
                let mut depth = 0i32;
                for l in lines.by_ref() {
                    depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                    if depth <= 0 && l.contains('}') {
                        break;
                    }
                }
            }
            continue;
        }
        let without = match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push_str(without);
        out.push('\n');
    }
    out
}

/// Expands a `use` tree (`crate::{a, b::{c, d as e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    fn parse(tokens: &[String], at: &mut usize, prefix: &str, out: &mut Vec<String>) {
        let mut path = prefix.to_owned();
        while *at < tokens.len() {
            let token = tokens[*at].clone();
            *at += 1;
            match token.as_str() {
                "::" => path.push_str("::"),
                "{" => loop {
                    parse(tokens, at, &path, out);
                    match tokens.get(*at).map(String::as_str) {
                        Some(",") => *at += 1,
                        Some("}") => {
                            *at += 1;
                            return;
                        }
                        _ => return,
                    }
                    if tokens.get(*at).map(String::as_str) == Some("}") {
                        *at += 1;
                        return;
                    }
                },
                "," | "}" => {
                    *at -= 1;
                    out.push(path);
                    return;
                }
                "as" => {
                    *at += 1;
                }
                _ => path.push_str(&token),
            }
        }
        out.push(path);
    }
    let mut tokens = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = tree.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' || c == '*' {
            word.push(c);
        } else {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if c == ':' && chars.get(i + 1) == Some(&':') {
                tokens.push("::".to_owned());
                i += 1;
            } else if matches!(c, '{' | '}' | ',') {
                tokens.push(c.to_string());
            }
        }
        i += 1;
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        let before = at;
        parse(&tokens, &mut at, "", &mut out);
        // A separator, or a stray brace (text that only looked like a `use`).
        if at == before || matches!(tokens.get(at).map(String::as_str), Some("," | "}")) {
            at += 1;
        }
    }
    out
}

/// The module paths a file refers to, absolute (`["dns", "wire", "Header"]`).
fn references(module: &[String], is_mod_rs: bool, text: &str) -> Vec<Vec<String>> {
    let code = code(text);
    let mut paths: Vec<String> = Vec::new();
    // `use` trees.
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        paths.extend(expand(&rest[..end]));
        rest = &rest[end..];
    }
    // Paths in code.
    for start in ["crate::", "super::", "self::"] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().last();
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                paths.push(tail[..end].to_owned());
            }
            rest = &rest[at + start.len()..];
        }
    }
    // The module `self::` and `super::` are relative to.
    let here: Vec<String> = module.to_vec();
    let parent = |m: &[String]| m[..m.len().saturating_sub(1)].to_vec();
    let _ = is_mod_rs;
    paths
        .into_iter()
        .filter_map(|p| {
            let mut parts: Vec<String> = p
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let mut base = match parts.first().map(String::as_str) {
                Some("crate") => Vec::new(),
                Some("self") => here.clone(),
                Some("super") => here.clone(),
                _ => return None,
            };
            if parts[0] == "crate" || parts[0] == "self" {
                parts.remove(0);
            } else {
                while parts.first().map(String::as_str) == Some("super") {
                    parts.remove(0);
                    base = parent(&base);
                }
            }
            base.extend(parts);
            Some(base)
        })
        .collect()
}

/// The file a module path lives in: the longest prefix that is a file.
fn file_of<'a>(
    path: &[String],
    files: &'a BTreeMap<Vec<String>, PathBuf>,
) -> Option<&'a Vec<String>> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k))
}

#[test]
fn no_file_imports_a_higher_layer_and_no_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let layers = layers(&lib);
    let files = files(&src);
    // The library's modules only: the binary's files (`main.rs` and what it declares)
    // use the library as `failoverd::`, from above every layer.
    let library: BTreeSet<&String> = layers.keys().collect();
    let mut upward = Vec::new();
    let mut edges: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = BTreeMap::new();
    let mut unlisted = BTreeSet::new();
    for (module, path) in &files {
        let Some(top) = module.first() else { continue };
        if !library.contains(top) {
            if lib.contains(&format!("pub mod {top};")) || lib.contains(&format!("mod {top};")) {
                unlisted.insert(top.clone());
            }
            continue;
        }
        if module.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let is_mod_rs = path.file_name().is_some_and(|f| f == "mod.rs");
        for reference in references(module, is_mod_rs, &text) {
            let Some(target_top) = reference.first() else {
                continue;
            };
            if let (Some(&from), Some(&to)) = (layers.get(top), layers.get(target_top))
                && to > from
            {
                upward.push(format!(
                    "{} ({top}, layer {from}) uses {} (layer {to})",
                    path.strip_prefix(&src).unwrap().display(),
                    reference.join("::")
                ));
            }
            if let Some(target) = file_of(&reference, &files)
                && target != module
                // A child using an ancestor is the ancestor's code split across files.
                && !module.starts_with(target)
            {
                edges.entry(module).or_default().insert(target);
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "modules declared in src/lib.rs but missing from its layers: {unlisted:?}"
    );
    // Cycles: strongly connected components of more than one file (Tarjan).
    let nodes: Vec<&Vec<String>> = files.keys().collect();
    let index_of: BTreeMap<&Vec<String>, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let adjacency: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            edges
                .get(n)
                .map(|t| t.iter().map(|t| index_of[t]).collect())
                .unwrap_or_default()
        })
        .collect();
    let cycles = strongly_connected(&adjacency)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            c.iter()
                .map(|&i| nodes[i].join("::"))
                .collect::<Vec<_>>()
                .join(" ⇄ ")
        })
        .collect::<Vec<_>>();
    println!(
        "FIGURES layers: {} layers, {} files, {} imports between files, {} upward, {} cycles",
        layers.values().max().map_or(0, |m| m + 1),
        files.len(),
        edges.values().map(BTreeSet::len).sum::<usize>(),
        upward.len(),
        cycles.len()
    );
    assert!(
        upward.is_empty() && cycles.is_empty(),
        "upward imports:\n  {}\ncycles between files:\n  {}",
        upward.join("\n  "),
        cycles.join("\n  ")
    );
}

/// Tarjan's strongly connected components.
fn strongly_connected(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        adjacency: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.adjacency[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(i) if s.on_stack[w] => s.low[v] = s.low[v].min(i),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let n = adjacency.len();
    let mut state = State {
        adjacency,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            visit(&mut state, v);
        }
    }
    state.out
}

#[test]
fn use_trees_expand() {
    assert_eq!(
        expand("crate::{a, b::{c, d as e}, f::*}"),
        ["crate::a", "crate::b::c", "crate::b::d", "crate::f::*"]
    );
    assert_eq!(expand("super::x::Y"), ["super::x::Y"]);
}
