//! Keeps `docs/openapi.yaml` true to the server.
//!
//! The served routes are read from the source of `crates/baton-server/src`: every
//! `.route("PATH", get(..).post(..)...)` call outside test code (`#[cfg(test)]` items and
//! out-of-line test modules are skipped), with its method chain, wherever the call is split
//! across lines. The routers are combined with `merge` only, so the paths are written in full;
//! a `nest`, `route_service` or `fallback` call (which would prefix or add paths this reader
//! cannot see) fails the test until the reader learns it. The documented routes are the
//! operations under `paths` in the YAML. The two sets must be equal; the YAML's `$ref`s must
//! resolve; every `{param}` of a path must be declared `in: path`; and the operations of
//! routes registered by the admin router (behind the API-key middleware) must declare the
//! `apiKey` security scheme and a 401, while the others must not require it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// HTTP methods an OpenAPI path item can hold.
const OPENAPI_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// axum's method-router constructors (free functions and `MethodRouter` methods), by method.
const AXUM_METHODS: &[(&str, &str)] = &[
    ("get", "GET"),
    ("post", "POST"),
    ("put", "PUT"),
    ("delete", "DELETE"),
    ("patch", "PATCH"),
    ("head", "HEAD"),
    ("options", "OPTIONS"),
    ("trace", "TRACE"),
    ("connect", "CONNECT"),
    ("get_service", "GET"),
    ("post_service", "POST"),
    ("put_service", "PUT"),
    ("delete_service", "DELETE"),
    ("patch_service", "PATCH"),
    ("head_service", "HEAD"),
    ("options_service", "OPTIONS"),
    ("trace_service", "TRACE"),
    ("connect_service", "CONNECT"),
];

/// Router methods that would add or prefix paths in ways this reader does not follow.
const UNSUPPORTED_ROUTER_CALLS: &[&str] = &[
    "nest",
    "nest_service",
    "route_service",
    "fallback",
    "fallback_service",
];

// ------------------------------------------------------------------------------------------
// A small Rust lexer: identifiers, string literals, punctuation; comments dropped.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
    /// Numbers, char literals, lifetimes.
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Reads a `"..."` string body starting after the opening quote. Returns the unescaped text
/// and the index after the closing quote; counts newlines into `line`.
fn quoted(c: &[char], mut i: usize, line: &mut usize) -> Result<(String, usize), String> {
    let start_line = *line;
    let mut out = String::new();
    loop {
        match c.get(i).copied() {
            None => return Err(format!("line {start_line}: unterminated string")),
            Some('"') => return Ok((out, i + 1)),
            Some('\\') => {
                let escaped = c.get(i + 1).copied();
                match escaped {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some('\n') => *line += 1,
                    Some(other) => out.push(other),
                    None => return Err(format!("line {start_line}: unterminated string")),
                }
                i += 2;
            }
            Some(ch) => {
                if ch == '\n' {
                    *line += 1;
                }
                out.push(ch);
                i += 1;
            }
        }
    }
}

/// Reads a raw string `r#"..."#` whose first `#` or `"` is at `i`. None when it is not one
/// (a raw identifier `r#name`).
fn raw_string(c: &[char], i: usize, line: &mut usize) -> Result<Option<(String, usize)>, String> {
    let mut j = i;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if c.get(j) != Some(&'"') {
        return Ok(None);
    }
    let start_line = *line;
    j += 1;
    let body = j;
    loop {
        match c.get(j).copied() {
            None => return Err(format!("line {start_line}: unterminated raw string")),
            Some('"') if (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) => {
                return Ok(Some((c[body..j].iter().collect(), j + 1 + hashes)));
            }
            Some(ch) => {
                if ch == '\n' {
                    *line += 1;
                }
                j += 1;
            }
        }
    }
}

fn lex(src: &str) -> Result<Vec<Token>, String> {
    let c: Vec<char> = src.chars().collect();
    let at = |k: usize| c.get(k).copied();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while let Some(ch) = at(i) {
        let token_line = line;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == Some('/') {
            while at(i).is_some_and(|x| x != '\n') {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == Some('*') {
            let mut depth = 0;
            loop {
                match (at(i), at(i + 1)) {
                    (Some('/'), Some('*')) => {
                        depth += 1;
                        i += 2;
                    }
                    (Some('*'), Some('/')) => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    (Some(x), _) => {
                        if x == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                    (None, _) => return Err(format!("line {token_line}: unterminated comment")),
                }
            }
        } else if ch == '"' {
            let (text, next) = quoted(&c, i + 1, &mut line)?;
            out.push(Token {
                tok: Tok::Str(text),
                line: token_line,
            });
            i = next;
        } else if is_ident_start(ch) {
            let start = i;
            while at(i).is_some_and(is_ident_continue) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let prefix_of_raw = matches!(word.as_str(), "r" | "br" | "cr");
            if prefix_of_raw && matches!(at(i), Some('"' | '#')) {
                if let Some((text, next)) = raw_string(&c, i, &mut line)? {
                    out.push(Token {
                        tok: Tok::Str(text),
                        line: token_line,
                    });
                    i = next;
                    continue;
                }
                if word == "r" && at(i) == Some('#') {
                    // A raw identifier: `r#type`.
                    i += 1;
                    let start = i;
                    while at(i).is_some_and(is_ident_continue) {
                        i += 1;
                    }
                    out.push(Token {
                        tok: Tok::Ident(c[start..i].iter().collect()),
                        line: token_line,
                    });
                    continue;
                }
            }
            if matches!(word.as_str(), "b" | "c") && at(i) == Some('"') {
                let (text, next) = quoted(&c, i + 1, &mut line)?;
                out.push(Token {
                    tok: Tok::Str(text),
                    line: token_line,
                });
                i = next;
                continue;
            }
            out.push(Token {
                tok: Tok::Ident(word),
                line: token_line,
            });
        } else if ch.is_ascii_digit() {
            while at(i).is_some_and(|x| x.is_ascii_alphanumeric() || x == '_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Other,
                line: token_line,
            });
        } else if ch == '\'' {
            if at(i + 1) == Some('\\') {
                // An escaped char literal: skip the escaped char, then up to the closing quote.
                i += 3;
                while at(i).is_some_and(|x| x != '\'') {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == Some('\'') {
                i += 3;
            } else {
                // A lifetime or a loop label.
                i += 1;
                while at(i).is_some_and(is_ident_continue) {
                    i += 1;
                }
            }
            out.push(Token {
                tok: Tok::Other,
                line: token_line,
            });
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line: token_line,
            });
            i += 1;
        }
    }
    Ok(out)
}

fn is_punct(t: Option<&Token>, ch: char) -> bool {
    t.is_some_and(|t| t.tok == Tok::Punct(ch))
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// The index of the bracket closing the one at `open`.
fn matching(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, t) in tokens.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

// ------------------------------------------------------------------------------------------
// Test code removal.

/// True for an attribute body (between `[` and `]`) that is `cfg(...)` naming `test` (and not
/// under `not`).
fn is_test_cfg(attr: &[Token]) -> bool {
    ident(attr.first()) == Some("cfg")
        && attr.iter().any(|t| t.tok == Tok::Ident("test".into()))
        && !attr.iter().any(|t| t.tok == Tok::Ident("not".into()))
}

/// The source without `#[cfg(test)]` items, and the names of out-of-line modules declared
/// test-only (`#[cfg(test)] mod name;`). A file starting with `#![cfg(test)]` is all test code.
fn strip_test_code(tokens: &[Token]) -> Result<(Vec<Token>, Vec<String>), String> {
    let mut kept = Vec::new();
    let mut test_modules = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let inner = is_punct(tokens.get(i + 1), '!');
        let open = if inner { i + 2 } else { i + 1 };
        if !(is_punct(tokens.get(i), '#') && is_punct(tokens.get(open), '[')) {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let line = tokens[i].line;
        let close = matching(tokens, open).ok_or(format!("line {line}: unclosed attribute"))?;
        if !is_test_cfg(&tokens[open + 1..close]) {
            kept.extend_from_slice(&tokens[i..=close]);
            i = close + 1;
            continue;
        }
        if inner {
            return Ok((Vec::new(), Vec::new()));
        }
        // Skip further attributes of the same item, then the item itself.
        let mut k = close + 1;
        while is_punct(tokens.get(k), '#') && is_punct(tokens.get(k + 1), '[') {
            k = matching(tokens, k + 1).ok_or(format!("line {line}: unclosed attribute"))? + 1;
        }
        let item_start = k;
        loop {
            match tokens.get(k).map(|t| &t.tok) {
                None => return Err(format!("line {line}: #[cfg(test)] item runs to the end")),
                Some(Tok::Punct(';')) => {
                    k += 1;
                    break;
                }
                Some(Tok::Punct('{')) => {
                    k = matching(tokens, k).ok_or(format!("line {line}: unclosed block"))? + 1;
                    break;
                }
                Some(Tok::Punct('(' | '[')) => {
                    k = matching(tokens, k).ok_or(format!("line {line}: unclosed bracket"))? + 1;
                }
                Some(_) => k += 1,
            }
        }
        let item = &tokens[item_start..k];
        if let Some(m) = item.iter().position(|t| t.tok == Tok::Ident("mod".into()))
            && let Some(name) = ident(item.get(m + 1))
            && is_punct(item.get(m + 2), ';')
        {
            test_modules.push(name.to_owned());
        }
        i = k;
    }
    Ok((kept, test_modules))
}

// ------------------------------------------------------------------------------------------
// Route extraction.

/// One `.route(..)` call: a method and a path, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FoundRoute {
    method: String,
    path: String,
    line: usize,
}

/// Splits `tokens` at commas outside brackets.
fn split_args(tokens: &[Token]) -> Vec<&[Token]> {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (k, t) in tokens.iter().enumerate() {
        match t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => depth = depth.saturating_sub(1),
            Tok::Punct(',') if depth == 0 => {
                args.push(&tokens[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    if start < tokens.len() {
        args.push(&tokens[start..]);
    }
    args
}

/// The methods a method-router expression (`get(a).post(b).layer(..)`) answers.
fn methods_of(expr: &[Token]) -> Result<Vec<String>, String> {
    let mut methods = Vec::new();
    let mut k = 0;
    while k < expr.len() {
        let called = ident(expr.get(k)).filter(|_| is_punct(expr.get(k + 1), '('));
        let chained = k == 0
            || is_punct(expr.get(k - 1), '.')
            || (k >= 2 && is_punct(expr.get(k - 1), ':') && is_punct(expr.get(k - 2), ':'));
        if let (Some(name), true) = (called, chained) {
            let open = k + 1;
            let close = matching(expr, open).ok_or("unclosed call in the method chain")?;
            if let Some((_, method)) = AXUM_METHODS.iter().find(|(f, _)| *f == name) {
                methods.push((*method).to_owned());
            } else if name == "on" || name == "on_service" {
                let filter = split_args(&expr[open + 1..close])
                    .first()
                    .copied()
                    .unwrap_or_default();
                let before = methods.len();
                for w in filter.windows(4) {
                    if ident(w.first()) == Some("MethodFilter")
                        && is_punct(w.get(1), ':')
                        && is_punct(w.get(2), ':')
                        && let Some(m) = ident(w.get(3))
                    {
                        methods.push(m.to_ascii_uppercase());
                    }
                }
                if methods.len() == before {
                    return Err(format!(
                        "{name}(..) without a MethodFilter::X the test can read"
                    ));
                }
            } else if name == "any" || name == "any_service" {
                return Err(format!(
                    "{name}(..) answers every method; list the methods explicitly or teach \
                     tests/openapi_routes.rs what to expect"
                ));
            }
            k = close + 1;
            continue;
        }
        match expr[k].tok {
            Tok::Punct('(' | '[' | '{') => {
                k = matching(expr, k).ok_or("unclosed bracket in the method chain")? + 1;
            }
            _ => k += 1,
        }
    }
    if methods.is_empty() {
        return Err("no method (get, post, ...) found in the handler expression".into());
    }
    Ok(methods)
}

/// axum path syntax to OpenAPI's: `{*rest}` and `:id` become `{rest}` and `{id}`.
fn openapi_path(axum_path: &str) -> String {
    axum_path
        .split('/')
        .map(|segment| {
            if let Some(name) = segment.strip_prefix(':') {
                format!("{{{name}}}")
            } else {
                segment.replace("{*", "{")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every route registered in `tokens` (test code already removed). Errors name the line.
fn routes_in(tokens: &[Token]) -> Result<Vec<FoundRoute>, Vec<String>> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for i in 0..tokens.len() {
        if !is_punct(tokens.get(i), '.') || !is_punct(tokens.get(i + 2), '(') {
            continue;
        }
        let Some(name) = ident(tokens.get(i + 1)) else {
            continue;
        };
        let line = tokens[i + 1].line;
        if UNSUPPORTED_ROUTER_CALLS.contains(&name) {
            errors.push(format!(
                "line {line}: .{name}(..) is not understood by tests/openapi_routes.rs \
                 (routes must be registered with .route(\"/full/path\", ..) and combined with merge)"
            ));
            continue;
        }
        if name != "route" {
            continue;
        }
        let Some(close) = matching(tokens, i + 2) else {
            errors.push(format!("line {line}: unclosed .route("));
            continue;
        };
        let args = split_args(&tokens[i + 3..close]);
        let literal = match args.first() {
            Some([only]) => match &only.tok {
                Tok::Str(p) => Some(p.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(path) = literal else {
            errors.push(format!(
                "line {line}: the path of .route(..) is not a string literal"
            ));
            continue;
        };
        if !path.starts_with('/') {
            errors.push(format!(
                "line {line}: route path {path:?} does not start with /"
            ));
            continue;
        }
        let Some(expr) = args.get(1).filter(|a| !a.is_empty()) else {
            errors.push(format!(
                "line {line}: .route({path:?}) has no method router"
            ));
            continue;
        };
        match methods_of(expr) {
            Ok(methods) => found.extend(methods.into_iter().map(|method| FoundRoute {
                method,
                path: openapi_path(&path),
                line,
            })),
            Err(e) => errors.push(format!("line {line}: .route({path:?}, ..): {e}")),
        }
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Where the out-of-line child modules of `file` live.
fn child_module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("")).to_owned();
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod" | "lib" | "main") | None => parent,
        Some(stem) => parent.join(stem),
    }
}

/// A served route with the file that registers it.
#[derive(Debug, Clone)]
struct ServedRoute {
    method: String,
    path: String,
    file: PathBuf,
    line: usize,
}

/// Every route registered under `src`, outside test code.
fn served_routes(src: &Path) -> Result<Vec<ServedRoute>, Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut errors = Vec::new();
    let mut stripped = Vec::new();
    let mut test_only: Vec<PathBuf> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        match lex(&text).and_then(|t| strip_test_code(&t)) {
            Ok((tokens, test_modules)) => {
                let dir = child_module_dir(&file);
                test_only.extend(test_modules.iter().map(|m| dir.join(format!("{m}.rs"))));
                test_only.extend(test_modules.iter().map(|m| dir.join(m)));
                stripped.push((file, tokens));
            }
            Err(e) => errors.push(format!("{}: {e}", file.display())),
        }
    }
    let mut routes = Vec::new();
    for (file, tokens) in stripped {
        if test_only.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        match routes_in(&tokens) {
            Ok(found) => routes.extend(found.into_iter().map(|r| ServedRoute {
                method: r.method,
                path: r.path,
                file: file.clone(),
                line: r.line,
            })),
            Err(es) => errors.extend(es.into_iter().map(|e| format!("{}: {e}", file.display()))),
        }
    }
    if errors.is_empty() {
        Ok(routes)
    } else {
        Err(errors)
    }
}

// ------------------------------------------------------------------------------------------
// The OpenAPI document.

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load_openapi() -> Value {
    let path = repo_root().join("docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn key(name: &str) -> Value {
    Value::String(name.to_owned())
}

/// The `paths` mapping.
fn paths_of(doc: &Value) -> &serde_yaml::Mapping {
    doc.get("paths")
        .and_then(Value::as_mapping)
        .expect("openapi.yaml has no paths mapping")
}

/// Every (METHOD, path) operation the document describes.
fn documented_routes(doc: &Value) -> Result<BTreeSet<(String, String)>, Vec<String>> {
    let mut routes = BTreeSet::new();
    let mut errors = Vec::new();
    for (path, item) in paths_of(doc) {
        let Some(path) = path.as_str() else {
            errors.push(format!("a path key is not a string: {path:?}"));
            continue;
        };
        let Some(item) = item.as_mapping() else {
            errors.push(format!("{path}: the path item is not a mapping"));
            continue;
        };
        if item.contains_key(key("$ref")) {
            errors.push(format!(
                "{path}: path-item $ref is not supported by this test"
            ));
        }
        for method in OPENAPI_METHODS {
            if item.contains_key(key(method)) {
                routes.insert((method.to_ascii_uppercase(), path.to_owned()));
            }
        }
    }
    if errors.is_empty() {
        Ok(routes)
    } else {
        Err(errors)
    }
}

/// Resolves a local reference (`#/a/b~1c`), or None.
fn resolve<'d>(doc: &'d Value, reference: &str) -> Option<&'d Value> {
    let pointer = reference.strip_prefix("#/")?;
    let mut node = doc;
    for part in pointer.split('/') {
        let part = part.replace("~1", "/").replace("~0", "~");
        node = node.as_mapping()?.get(key(&part))?;
    }
    Some(node)
}

/// `$ref`s that do not resolve, with where they are.
fn dangling_refs(doc: &Value) -> Vec<String> {
    fn walk(doc: &Value, node: &Value, at: &str, out: &mut Vec<String>) {
        match node {
            Value::Mapping(map) => {
                for (k, v) in map {
                    let name = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                    let here = format!("{at}/{name}");
                    if name == "$ref" {
                        match v.as_str() {
                            Some(r) if resolve(doc, r).is_some() => {}
                            Some(r) => out.push(format!("{here}: {r} does not resolve")),
                            None => out.push(format!("{here}: not a string")),
                        }
                    } else {
                        walk(doc, v, &here, out);
                    }
                }
            }
            Value::Sequence(items) => {
                for (n, v) in items.iter().enumerate() {
                    walk(doc, v, &format!("{at}/{n}"), out);
                }
            }
            Value::Tagged(tagged) => walk(doc, &tagged.value, at, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, "#", &mut out);
    out
}

/// A node, following one `$ref` when it is one.
fn deref<'d>(doc: &'d Value, node: &'d Value) -> &'d Value {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(doc, r))
        .unwrap_or(node)
}

/// Each operation: (METHOD, path, path item, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value, &Value)> {
    let mut out = Vec::new();
    for (path, item) in paths_of(doc) {
        for method in OPENAPI_METHODS {
            if let (Some(p), Some(op)) = (path.as_str(), item.get(*method)) {
                out.push((method.to_ascii_uppercase(), p.to_owned(), item, op));
            }
        }
    }
    out
}

/// Operations whose `{name}` path segments and `in: path` parameters differ.
fn path_parameter_mismatches(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (method, path, item, op) in operations(doc) {
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = [item.get("parameters"), op.get("parameters")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_sequence)
            .flatten()
            .map(|p| deref(doc, p))
            .filter(|p| p.get("in").and_then(Value::as_str) == Some("path"))
            .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        if in_template != declared {
            out.push(format!(
                "{method} {path}: path has {in_template:?}, parameters declare {declared:?}"
            ));
        }
        if op
            .get("responses")
            .and_then(Value::as_mapping)
            .is_none_or(|r| r.is_empty())
        {
            out.push(format!("{method} {path}: no responses"));
        }
    }
    out
}

/// The security scheme names an operation requires (any alternative).
fn security_schemes(op: &Value) -> Option<BTreeSet<String>> {
    let list = op.get("security")?.as_sequence()?;
    Some(
        list.iter()
            .filter_map(Value::as_mapping)
            .flat_map(|m| m.keys().filter_map(Value::as_str).map(str::to_owned))
            .collect(),
    )
}

/// Operations whose documented security disagrees with the router that serves them.
fn security_mismatches(doc: &Value, admin: &BTreeSet<(String, String)>) -> Vec<String> {
    let mut out = Vec::new();
    for (method, path, _, op) in operations(doc) {
        let Some(schemes) = security_schemes(op) else {
            out.push(format!("{method} {path}: no explicit security list"));
            continue;
        };
        let has_401 = op.get("responses").and_then(|r| r.get("401")).is_some();
        if admin.contains(&(method.clone(), path.clone())) {
            if schemes != BTreeSet::from(["apiKey".to_owned()]) || !has_401 {
                out.push(format!(
                    "{method} {path}: served behind the API-key middleware, so it needs \
                     `security: [{{ apiKey: [] }}]` and a 401 response (has {schemes:?})"
                ));
            }
        } else if schemes.contains("apiKey") {
            out.push(format!(
                "{method} {path}: not behind the API-key middleware but documents apiKey"
            ));
        }
    }
    out
}

/// The differences between served and documented routes, as readable lines.
fn route_differences(
    served: &BTreeMap<(String, String), String>,
    documented: &BTreeSet<(String, String)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (route, at) in served {
        if !documented.contains(route) {
            out.push(format!(
                "served but not in docs/openapi.yaml: {} {} ({at})",
                route.0, route.1
            ));
        }
    }
    for route in documented {
        if !served.contains_key(route) {
            out.push(format!(
                "in docs/openapi.yaml but not served: {} {}",
                route.0, route.1
            ));
        }
    }
    out
}

fn server_routes() -> Vec<ServedRoute> {
    let src = repo_root().join("crates/baton-server/src");
    served_routes(&src).unwrap_or_else(|errors| {
        panic!(
            "cannot read the server's routes:\n  {}",
            errors.join("\n  ")
        )
    })
}

// ------------------------------------------------------------------------------------------
// The checks.

#[test]
fn openapi_lists_exactly_the_served_routes() {
    let routes = server_routes();
    let root = repo_root();
    let served: BTreeMap<(String, String), String> = routes
        .iter()
        .map(|r| {
            let file = r.file.strip_prefix(&root).unwrap_or(&r.file);
            (
                (r.method.clone(), r.path.clone()),
                format!("{}:{}", file.display(), r.line),
            )
        })
        .collect();
    // Sanity: the reader must see the well-known routes, or it silently reads nothing.
    for known in [("PUT", "/mdm/checkin"), ("GET", "/api/v1/devices")] {
        assert!(
            served.contains_key(&(known.0.to_owned(), known.1.to_owned())),
            "the source reader missed {} {}",
            known.0,
            known.1
        );
    }
    let doc = load_openapi();
    let documented = documented_routes(&doc).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let differences = route_differences(&served, &documented);
    assert!(
        differences.is_empty(),
        "docs/openapi.yaml and the server's routes differ:\n  {}",
        differences.join("\n  ")
    );
}

#[test]
fn every_ref_resolves() {
    let dangling = dangling_refs(&load_openapi());
    assert!(
        dangling.is_empty(),
        "unresolved $ref in docs/openapi.yaml:\n  {}",
        dangling.join("\n  ")
    );
}

#[test]
fn path_parameters_and_responses_are_declared() {
    let problems = path_parameter_mismatches(&load_openapi());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn security_matches_the_router() {
    let admin_dir = repo_root().join("crates/baton-server/src/admin");
    let admin: BTreeSet<(String, String)> = server_routes()
        .into_iter()
        .filter(|r| r.file.starts_with(&admin_dir))
        .map(|r| (r.method, r.path))
        .collect();
    assert!(!admin.is_empty(), "no admin routes found");
    let problems = security_mismatches(&load_openapi(), &admin);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// The reader itself: it must see what the server serves and nothing else.

fn routes_of(src: &str) -> Result<Vec<(String, String)>, Vec<String>> {
    let tokens = lex(src).map_err(|e| vec![e])?;
    let (kept, _) = strip_test_code(&tokens).map_err(|e| vec![e])?;
    Ok(routes_in(&kept)?
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

#[test]
fn reader_follows_multi_line_routes_and_method_chains() {
    let src = r#"
        pub fn router(state: S) -> Router {
            Router::new()
                .route("/a", get(a::list))
                .route(
                    "/b/{id}",
                    get(b::show)
                        .patch(b::patch)
                        .layer(DefaultBodyLimit::max(limits.get(1)))
                        .delete(b::delete),
                )
                .route("/c",
                    axum::routing::put(c::put).post(|State(s): State<S>| async move {
                        s.get(x).post(y)
                    }))
                .route("/d/{*rest}", on(MethodFilter::GET.or(MethodFilter::HEAD), d))
                .merge(other(&state))
        }
    "#;
    assert_eq!(
        routes_of(src).unwrap(),
        pairs(&[
            ("GET", "/a"),
            ("GET", "/b/{id}"),
            ("PATCH", "/b/{id}"),
            ("DELETE", "/b/{id}"),
            ("PUT", "/c"),
            ("POST", "/c"),
            ("GET", "/d/{rest}"),
            ("HEAD", "/d/{rest}"),
        ])
    );
}

#[test]
fn reader_skips_comments_strings_and_test_code() {
    let src = r##"
        //! Serves `.route("/doc", get(x))` (a comment).
        /* .route("/block", get(x)) /* nested */ */
        const TEXT: &str = ".route(\"/string\", get(x))";
        const RAW: &str = r#".route("/raw", get(x))"#;
        fn lifetimes<'a>(c: char) -> bool { c == '"' || c == '\'' }
        pub fn router() -> Router { Router::new().route("/real", post(real)) }
        #[cfg(test)]
        mod tests {
            fn r() -> Router { Router::new().route("/test-only", get(t)) }
        }
        #[cfg(test)]
        fn helper() -> Router { Router::new().route("/test-fn", get(t)) }
        #[cfg(test)]
        mod out_of_line;
    "##;
    assert_eq!(routes_of(src).unwrap(), pairs(&[("POST", "/real")]));
    let tokens = lex(src).unwrap();
    let (_, test_modules) = strip_test_code(&tokens).unwrap();
    assert_eq!(test_modules, vec!["out_of_line".to_owned()]);
    let all_test = "#![cfg(test)]\nfn r() -> Router { Router::new().route(\"/x\", get(x)) }";
    assert_eq!(routes_of(all_test).unwrap(), Vec::new());
}

#[test]
fn reader_refuses_what_it_cannot_follow() {
    for (src, expected) in [
        (r#"Router::new().nest("/api", api())"#, ".nest(..)"),
        (
            r#"Router::new().route(PATH, get(x))"#,
            "not a string literal",
        ),
        (r#"Router::new().route("/x", any(x))"#, "any(..)"),
        (r#"Router::new().route("/x", handler)"#, "no method"),
        (
            r#"Router::new().route("x", get(x))"#,
            "does not start with /",
        ),
        (r#"Router::new().fallback(not_found)"#, ".fallback(..)"),
    ] {
        let errors = routes_of(src).expect_err(src);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{src}: {errors:?}"
        );
    }
}

#[test]
fn test_module_files_are_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("feature/fixtures")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod feature;\npub fn r() -> Router { Router::new().route(\"/lib\", get(x)) }",
    )
    .unwrap();
    std::fs::write(
        src.join("feature.rs"),
        "#[cfg(test)]\nmod fixtures;\n#[cfg(test)]\nmod checks;\n\
         pub fn r() -> Router {\n  Router::new()\n    .route(\n      \"/feature\",\n      put(x),\n    )\n}",
    )
    .unwrap();
    std::fs::write(
        src.join("feature/fixtures/mod.rs"),
        "fn r() -> Router { Router::new().route(\"/fixture\", get(x)) }",
    )
    .unwrap();
    std::fs::write(
        src.join("feature/checks.rs"),
        "fn r() -> Router { Router::new().route(\"/check\", get(x)) }",
    )
    .unwrap();
    let found: BTreeSet<(String, String, usize)> = served_routes(src)
        .unwrap()
        .into_iter()
        .map(|r| (r.method, r.path, r.line))
        .collect();
    assert_eq!(
        found,
        BTreeSet::from([
            ("GET".to_owned(), "/lib".to_owned(), 2),
            ("PUT".to_owned(), "/feature".to_owned(), 7),
        ])
    );
}

#[test]
fn checks_report_missing_routes_dangling_refs_and_bad_security() {
    let doc: Value = serde_yaml::from_str(
        r##"
openapi: 3.1.0
components:
  parameters:
    Id: { name: id, in: path, required: true, schema: { type: string } }
paths:
  /a/{id}:
    get:
      security: []
      parameters: [{ $ref: "#/components/parameters/Id" }]
      responses: { "200": { $ref: "#/components/responses/Missing" } }
  /b/{name}:
    post:
      security: []
      parameters: [{ $ref: "#/components/parameters/Id" }]
      responses: { "204": { description: ok } }
"##,
    )
    .unwrap();
    let documented = documented_routes(&doc).unwrap();
    let served = BTreeMap::from([
        (
            ("GET".to_owned(), "/a/{id}".to_owned()),
            "x.rs:1".to_owned(),
        ),
        (("PUT".to_owned(), "/new".to_owned()), "y.rs:9".to_owned()),
    ]);
    let differences = route_differences(&served, &documented);
    assert_eq!(
        differences,
        vec![
            "served but not in docs/openapi.yaml: PUT /new (y.rs:9)".to_owned(),
            "in docs/openapi.yaml but not served: POST /b/{name}".to_owned(),
        ]
    );
    let dangling = dangling_refs(&doc);
    assert_eq!(dangling.len(), 1, "{dangling:?}");
    assert!(dangling[0].contains("#/components/responses/Missing"));
    let params = path_parameter_mismatches(&doc);
    assert_eq!(params.len(), 1, "{params:?}");
    assert!(params[0].starts_with("POST /b/{name}"));
    let admin = BTreeSet::from([("GET".to_owned(), "/a/{id}".to_owned())]);
    let security = security_mismatches(&doc, &admin);
    assert_eq!(security.len(), 1, "{security:?}");
    assert!(security[0].starts_with("GET /a/{id}"));
}
