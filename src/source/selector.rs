//! Label matchers in PromQL's syntax, `{instance="web-1:9100", job=~"node|db"}`,
//! to pick series by their labels (the monitor's `model_selector`).
//!
//! Operators: `=`, `!=`, `=~`, `!~`; regular expressions are anchored, as in
//! PromQL; a missing label matches as the empty string. String literals take
//! double or single quotes with backslash escapes. The empty selector (`""`
//! or `{}`) matches nothing: a model is never applied to every series by
//! accident.

use regex::Regex;

use super::prometheus::Labels;

/// How a matcher compares.
#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

/// One `label op "value"`.
#[derive(Debug, Clone)]
struct Matcher {
    label: String,
    op: Op,
}

/// A parsed selector.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    matchers: Vec<Matcher>,
    text: String,
}

/// Why a selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} (expected label matchers like {{instance=\"web-1:9100\"}})")]
pub struct SelectorError(String);

impl Selector {
    /// Parses `text` (braces optional).
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let t = text.trim();
        let inner = match (t.strip_prefix('{'), t.ends_with('}')) {
            (Some(rest), true) => &rest[..rest.len() - 1],
            (None, false) => t,
            _ => return Err(SelectorError("unbalanced braces".into())),
        };
        let mut p = Parser {
            s: inner.as_bytes(),
            i: 0,
        };
        let mut matchers = Vec::new();
        loop {
            p.skip_ws();
            if p.done() {
                break;
            }
            let label = p.ident()?;
            p.skip_ws();
            let op = p.op()?;
            p.skip_ws();
            let value = p.string()?;
            let anchored = |v: &str| {
                Regex::new(&format!("^(?:{v})$"))
                    .map_err(|e| SelectorError(format!("bad regular expression {v:?}: {e}")))
            };
            let op = match op {
                "=" => Op::Eq(value),
                "!=" => Op::Ne(value),
                "=~" => Op::Re(anchored(&value)?),
                _ => Op::NotRe(anchored(&value)?),
            };
            matchers.push(Matcher { label, op });
            p.skip_ws();
            if p.done() {
                break;
            }
            p.expect(b',')?;
        }
        Ok(Selector {
            matchers,
            text: t.to_string(),
        })
    }

    /// Whether no matcher was given (matches nothing).
    pub fn is_empty(&self) -> bool {
        self.matchers.is_empty()
    }

    /// Whether `labels` satisfy every matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        !self.matchers.is_empty()
            && self.matchers.iter().all(|m| {
                let v = labels.get(&m.label).map_or("", String::as_str);
                match &m.op {
                    Op::Eq(x) => v == x,
                    Op::Ne(x) => v != x,
                    Op::Re(r) => r.is_match(v),
                    Op::NotRe(r) => !r.is_match(v),
                }
            })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), SelectorError> {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(SelectorError(format!(
                "expected {:?} at offset {}",
                c as char, self.i
            )))
        }
    }
    fn ident(&mut self) -> Result<String, SelectorError> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        if self.i == start || self.s[start].is_ascii_digit() {
            return Err(SelectorError(format!(
                "expected a label name at offset {start}"
            )));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn op(&mut self) -> Result<&'static str, SelectorError> {
        for op in ["=~", "!~", "!=", "="] {
            if self.s[self.i..].starts_with(op.as_bytes()) {
                self.i += op.len();
                return Ok(op);
            }
        }
        Err(SelectorError(format!(
            "expected =, !=, =~ or !~ at offset {}",
            self.i
        )))
    }
    fn string(&mut self) -> Result<String, SelectorError> {
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => {
                return Err(SelectorError(format!(
                    "expected a quoted value at offset {}",
                    self.i
                )))
            }
        };
        self.i += 1;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                b'\\' => {
                    let e = *self
                        .s
                        .get(self.i)
                        .ok_or_else(|| SelectorError("unterminated string".into()))?;
                    self.i += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        other => other,
                    });
                }
                c if c == quote => return Ok(String::from_utf8_lossy(&out).into_owned()),
                c => out.push(c),
            }
        }
        Err(SelectorError("unterminated string".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_four_operators() {
        let web1 = labels(&[("instance", "web-1:9100"), ("job", "node")]);
        let db = labels(&[("instance", "db-1:9100"), ("job", "db")]);
        let s = Selector::parse(r#"{instance="web-1:9100"}"#).unwrap();
        assert!(s.matches(&web1) && !s.matches(&db));
        let s = Selector::parse(r#"instance=~"web-.*", job!="db""#).unwrap();
        assert!(s.matches(&web1) && !s.matches(&db));
        let s = Selector::parse(r#"{ job !~ 'node|x' }"#).unwrap();
        assert!(!s.matches(&web1) && s.matches(&db));
        // Anchored: "web" alone does not match "web-1:9100".
        assert!(!Selector::parse(r#"{instance=~"web"}"#)
            .unwrap()
            .matches(&web1));
        // A missing label is the empty string.
        assert!(Selector::parse(r#"{dc=""}"#).unwrap().matches(&web1));
        assert_eq!(
            Selector::parse(r#"{instance="a\"b"}"#)
                .unwrap()
                .matchers
                .len(),
            1
        );
    }

    #[test]
    fn empty_matches_nothing() {
        for t in ["", "{}", "  { } "] {
            let s = Selector::parse(t).unwrap();
            assert!(s.is_empty());
            assert!(!s.matches(&labels(&[("instance", "x")])));
        }
    }

    #[test]
    fn errors_say_where() {
        for t in [
            r#"{instance="a""#,
            r#"{instance="a"} x"#,
            r#"{instance "a"}"#,
            r#"{="a"}"#,
            r#"{instance="a" job="b"}"#,
            r#"{instance=~"("}"#,
            r#"{instance=a}"#,
        ] {
            assert!(Selector::parse(t).is_err(), "{t}");
        }
        let e = Selector::parse(r#"{instance=a}"#).unwrap_err().to_string();
        assert!(e.contains("quoted value at offset 9"), "{e}");
    }
}
