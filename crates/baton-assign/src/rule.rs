//! The rule language of dynamic groups.
//!
//! A rule is a small boolean expression over attributes, written as a string so the admin API
//! can accept it as `"rule": "..."`:
//!
//! ```text
//! expr  := term  ( ("or"  | "||") term )*
//! term  := unary ( ("and" | "&&") unary )*
//! unary := ("not" | "!") unary | "(" expr ")" | NAME OP LITERAL | NAME
//! OP    := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
//! LITERAL := "string" | 'string' | 17 | 17.4.1 | true | false
//! ```
//!
//! A bare `NAME` is true when the attribute is the boolean `true` (so `multi-user-owner` is
//! short for `multi-user-owner = true`). A comparison with a missing or incomparable attribute is
//! false, except `!=`, which is then true (so `a != x` always equals `not a = x`). Versions
//! compare component-wise (`os >= 17` holds for `"17.4.1"`).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attribute::{AttrRef, AttrValue, compare};

/// Longest rule source accepted, in bytes.
pub const MAX_RULE_LEN: usize = 4096;
/// Deepest nesting of `not` and parentheses accepted.
pub const MAX_RULE_DEPTH: usize = 32;

/// Why a rule string does not parse. Positions are byte offsets into the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The rule is empty (or only whitespace).
    #[error("the rule is empty")]
    Empty,
    /// The rule is longer than [`MAX_RULE_LEN`].
    #[error("the rule is {len} bytes long, the limit is {MAX_RULE_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Parentheses or `not` nest deeper than [`MAX_RULE_DEPTH`].
    #[error("the rule nests deeper than {MAX_RULE_DEPTH} at byte {pos}")]
    TooDeep {
        /// Where the limit was hit.
        pos: usize,
    },
    /// A character that starts no token.
    #[error("unexpected character {ch:?} at byte {pos}")]
    UnexpectedChar {
        /// Where.
        pos: usize,
        /// The character.
        ch: char,
    },
    /// A quoted string without its closing quote.
    #[error("unterminated string starting at byte {pos}")]
    UnterminatedString {
        /// Where the string starts.
        pos: usize,
    },
    /// A number that is neither an integer nor a dotted version.
    #[error("bad number {text:?} at byte {pos}")]
    BadNumber {
        /// Where.
        pos: usize,
        /// The text.
        text: String,
    },
    /// A token other than the one the grammar needs.
    #[error("expected {expected} at byte {pos}, found {found}")]
    Expected {
        /// Where.
        pos: usize,
        /// What the grammar needed.
        expected: &'static str,
        /// What was there (`end of rule` at the end).
        found: String,
    },
}

/// A parsed group rule. Serialised as its source string.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rule {
    source: String,
    expr: Expr,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rule({:?})", self.source)
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Rule {}

impl TryFrom<String> for Rule {
    type Error = RuleError;
    fn try_from(s: String) -> Result<Self, RuleError> {
        Rule::parse(&s)
    }
}

impl From<Rule> for String {
    fn from(r: Rule) -> String {
        r.source
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp {
        name: String,
        op: Op,
        value: AttrValue,
    },
    Flag(String),
}

/// Where a rule looks its attributes up (a user or a device).
pub(crate) trait Attributes {
    /// The named attribute, if present.
    fn attribute(&self, name: &str) -> Option<AttrRef<'_>>;
}

impl Rule {
    /// Parses a rule.
    pub fn parse(source: &str) -> Result<Rule, RuleError> {
        if source.len() > MAX_RULE_LEN {
            return Err(RuleError::TooLong { len: source.len() });
        }
        let tokens = lex(source)?;
        if tokens.is_empty() {
            return Err(RuleError::Empty);
        }
        let mut p = Parser {
            tokens,
            at: 0,
            end: source.len(),
        };
        let expr = p.expr(0)?;
        if let Some((pos, tok)) = p.tokens.get(p.at) {
            return Err(RuleError::Expected {
                pos: *pos,
                expected: "`and`, `or` or end of rule",
                found: tok.describe(),
            });
        }
        Ok(Rule {
            source: source.to_owned(),
            expr,
        })
    }

    /// The rule as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every attribute name the rule reads, sorted, without duplicates.
    pub fn attribute_names(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Or(v) | Expr::And(v) => v.iter().for_each(|e| walk(e, out)),
                Expr::Not(e) => walk(e, out),
                Expr::Cmp { name, .. } | Expr::Flag(name) => out.push(name),
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every `NAME = LITERAL` comparison in the rule (also under `not`), in source order.
    pub fn equalities(&self) -> Vec<(&str, &AttrValue)> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<(&'a str, &'a AttrValue)>) {
            match e {
                Expr::Or(v) | Expr::And(v) => v.iter().for_each(|e| walk(e, out)),
                Expr::Not(e) => walk(e, out),
                Expr::Cmp {
                    name,
                    op: Op::Eq | Op::Ne,
                    value,
                } => out.push((name, value)),
                Expr::Cmp { .. } | Expr::Flag(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }

    /// Whether a user matches (user-group rules).
    pub fn matches_user(&self, user: &crate::User) -> bool {
        self.matches(user)
    }

    /// Whether a device matches (device-group rules).
    pub fn matches_device(&self, device: &crate::Device) -> bool {
        self.matches(device)
    }

    pub(crate) fn matches(&self, attrs: &impl Attributes) -> bool {
        eval(&self.expr, attrs)
    }
}

fn eval(e: &Expr, attrs: &impl Attributes) -> bool {
    match e {
        Expr::Or(v) => v.iter().any(|e| eval(e, attrs)),
        Expr::And(v) => v.iter().all(|e| eval(e, attrs)),
        Expr::Not(e) => !eval(e, attrs),
        Expr::Flag(name) => attrs.attribute(name) == Some(AttrRef::Bool(true)),
        Expr::Cmp { name, op, value } => {
            let ord = attrs.attribute(name).and_then(|a| compare(a, value));
            match (op, ord) {
                (Op::Ne, None) => true,
                (_, None) => false,
                (Op::Eq, Some(o)) => o == Ordering::Equal,
                (Op::Ne, Some(o)) => o != Ordering::Equal,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Le, Some(o)) => o != Ordering::Greater,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (Op::Ge, Some(o)) => o != Ordering::Less,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Lit(AttrValue),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("name `{n}`"),
            Tok::Lit(v) => format!("value {v}"),
            Tok::Op(o) => format!("operator {o:?}"),
            Tok::And => "`and`".into(),
            Tok::Or => "`or`".into(),
            Tok::Not => "`not`".into(),
            Tok::Open => "`(`".into(),
            Tok::Close => "`)`".into(),
        }
    }
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, RuleError> {
    let mut out = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                out.push((start, Tok::Open));
                i += 1;
            }
            b')' => {
                out.push((start, Tok::Close));
                i += 1;
            }
            b'&' | b'|' if bytes.get(i + 1) == Some(&c) => {
                out.push((start, if c == b'&' { Tok::And } else { Tok::Or }));
                i += 2;
            }
            b'=' => {
                i += if bytes.get(i + 1) == Some(&b'=') {
                    2
                } else {
                    1
                };
                out.push((start, Tok::Op(Op::Eq)));
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                out.push((start, Tok::Op(Op::Ne)));
                i += 2;
            }
            b'!' => {
                out.push((start, Tok::Not));
                i += 1;
            }
            b'<' | b'>' => {
                let eq = bytes.get(i + 1) == Some(&b'=');
                let op = match (c, eq) {
                    (b'<', false) => Op::Lt,
                    (b'<', true) => Op::Le,
                    (_, false) => Op::Gt,
                    (_, true) => Op::Ge,
                };
                out.push((start, Tok::Op(op)));
                i += if eq { 2 } else { 1 };
            }
            b'"' | b'\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                let mut closed = false;
                let mut chars = src[i..].char_indices();
                while let Some((off, ch)) = chars.next() {
                    if ch as u32 == u32::from(quote) {
                        i += off + 1;
                        closed = true;
                        break;
                    }
                    if ch == '\\' {
                        match chars.next() {
                            Some((_, e)) => s.push(e),
                            None => break,
                        }
                    } else {
                        s.push(ch);
                    }
                }
                if !closed {
                    return Err(RuleError::UnterminatedString { pos: start });
                }
                out.push((start, Tok::Lit(AttrValue::Str(s))));
            }
            b'0'..=b'9' | b'-' if c != b'-' || bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                let text = &src[start..i];
                let lit = if text.contains('.') {
                    let ok = !text.starts_with('-')
                        && text
                            .split('.')
                            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                    if !ok {
                        return Err(RuleError::BadNumber {
                            pos: start,
                            text: text.into(),
                        });
                    }
                    AttrValue::Str(text.into())
                } else {
                    AttrValue::Int(text.parse().map_err(|_| RuleError::BadNumber {
                        pos: start,
                        text: text.into(),
                    })?)
                };
                out.push((start, Tok::Lit(lit)));
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.'))
                {
                    i += 1;
                }
                let word = &src[start..i];
                let tok = match word {
                    "and" | "AND" => Tok::And,
                    "or" | "OR" => Tok::Or,
                    "not" | "NOT" => Tok::Not,
                    "true" => Tok::Lit(AttrValue::Bool(true)),
                    "false" => Tok::Lit(AttrValue::Bool(false)),
                    _ => Tok::Name(word.to_owned()),
                };
                out.push((start, tok));
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(RuleError::UnexpectedChar { pos: start, ch });
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn pos(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn expected(&self, expected: &'static str) -> RuleError {
        RuleError::Expected {
            pos: self.pos(),
            expected,
            found: self
                .peek()
                .map_or_else(|| "end of rule".to_owned(), Tok::describe),
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let mut terms = vec![self.term(depth)?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            terms.push(self.term(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn term(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let mut parts = vec![self.unary(depth)?];
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            parts.push(self.unary(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, RuleError> {
        if depth >= MAX_RULE_DEPTH {
            return Err(RuleError::TooDeep { pos: self.pos() });
        }
        match self.peek().cloned() {
            Some(Tok::Not) => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some(Tok::Open) => {
                self.at += 1;
                let e = self.expr(depth + 1)?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(self.expected("`)`"));
                }
                self.at += 1;
                Ok(e)
            }
            Some(Tok::Name(name)) => {
                self.at += 1;
                let Some(Tok::Op(op)) = self.peek().cloned() else {
                    return Ok(Expr::Flag(name));
                };
                self.at += 1;
                let Some(Tok::Lit(value)) = self.peek().cloned() else {
                    return Err(self.expected("a value (\"text\", number, true or false)"));
                };
                self.at += 1;
                Ok(Expr::Cmp { name, op, value })
            }
            _ => Err(self.expected("an attribute name, `not` or `(`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct Attrs(BTreeMap<&'static str, AttrValue>);
    impl Attributes for Attrs {
        fn attribute(&self, name: &str) -> Option<AttrRef<'_>> {
            self.0.get(name).map(AttrRef::from)
        }
    }

    fn ipad17() -> Attrs {
        Attrs(BTreeMap::from([
            ("model", AttrValue::Str("iPad".into())),
            ("os", AttrValue::Str("17.4.1".into())),
            ("multi-user-owner", AttrValue::Bool(true)),
        ]))
    }

    fn m(src: &str) -> bool {
        Rule::parse(src).unwrap().matches(&ipad17())
    }

    #[test]
    fn evaluates_comparisons_and_logic() {
        assert!(m(r#"model = "iPad""#));
        assert!(!m(r#"model = "iPhone""#));
        assert!(m("os >= 17"));
        assert!(!m("os < 17"));
        assert!(m("os < 17.5"));
        assert!(m("multi-user-owner = true"));
        assert!(m("multi-user-owner"));
        assert!(m(r#"model = "iPhone" or (os >= 17 and not model = "Mac")"#));
        assert!(!m(r#"model = "iPhone" || os < 16"#));
        assert!(m(r#"!(model == 'iPhone') && os != 16"#));
        // Missing attributes: comparisons false, `!=` true.
        assert!(!m("colour = 1"));
        assert!(m("colour != 1"));
        assert!(!m("missing-flag"));
    }

    #[test]
    fn typed_parse_errors() {
        assert_eq!(Rule::parse("  ").unwrap_err(), RuleError::Empty);
        assert!(matches!(
            Rule::parse("model = \"iPad").unwrap_err(),
            RuleError::UnterminatedString { pos: 8 }
        ));
        assert!(matches!(
            Rule::parse("model = ").unwrap_err(),
            RuleError::Expected { pos: 8, .. }
        ));
        assert!(matches!(
            Rule::parse("model = 1 2").unwrap_err(),
            RuleError::Expected { pos: 10, .. }
        ));
        assert!(matches!(
            Rule::parse("(os > 1").unwrap_err(),
            RuleError::Expected { .. }
        ));
        assert!(matches!(
            Rule::parse("os > 1.x").unwrap_err(),
            RuleError::BadNumber { .. } | RuleError::Expected { .. }
        ));
        assert!(matches!(
            Rule::parse("os # 1").unwrap_err(),
            RuleError::UnexpectedChar { ch: '#', .. }
        ));
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert!(matches!(
            Rule::parse(&deep).unwrap_err(),
            RuleError::TooDeep { .. }
        ));
        assert!(matches!(
            Rule::parse(&"a or ".repeat(2000)).unwrap_err(),
            RuleError::TooLong { .. }
        ));
    }

    #[test]
    fn serialises_as_source_and_lists_names() {
        let r: Rule = serde_json::from_str(r#""os >= 17 and model = \"iPad\"""#).unwrap();
        assert_eq!(r.attribute_names(), vec!["model", "os"]);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#""os >= 17 and model = \"iPad\"""#
        );
        assert!(serde_json::from_str::<Rule>(r#""os >=""#).is_err());
    }
}
