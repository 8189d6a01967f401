//! The query grammar: recursive descent over the query text into a
//! [`Node`] tree, operators and the values they accept (dates, ages,
//! sizes), and the error messages that quote the query. Needles are
//! folded here, once, the way the matcher folds what it searches.

use super::matcher::{fold_str, norm_label, words};
use super::{Node, QueryError, MAX_DEPTH};

const DAY_MS: i64 = 86_400_000;

/// The tree of query `q`; `None` when it has no terms (empty, or only
/// terms Gmail ignores).
pub(super) fn root(q: &str) -> Result<Option<Node>, QueryError> {
    let mut p = Parser {
        q,
        pos: 0,
        depth: 0,
    };
    p.group(None, None, false)
}

fn and(v: Vec<Node>) -> Option<Node> {
    combine(v, Node::And)
}

fn or(v: Vec<Node>) -> Option<Node> {
    combine(v, Node::Or)
}

/// Empty groups vanish (Gmail ignores them) and single members stand alone.
fn combine(mut v: Vec<Node>, f: fn(Vec<Node>) -> Node) -> Option<Node> {
    match v.len() {
        0 => None,
        1 => v.pop(),
        _ => {
            v.sort_by_cached_key(Node::needs_body);
            Some(f(v))
        }
    }
}

/// Recursive descent over the query text. Every parse function returns
/// `None` for terms Gmail ignores (punctuation only, dangling `OR`, `()`).
struct Parser<'a> {
    q: &'a str,
    pos: usize,
    depth: usize,
}

/// An operator whose value is being parsed; inside `subject:(a b)` it turns
/// each bare word into a `subject:` term.
struct Op {
    field: Field,
    /// As typed, with the colon, for error messages.
    name: String,
}

#[derive(Clone, Copy)]
enum Field {
    From,
    To,
    Subject,
    Label,
    In,
    Is,
    Has,
    Filename,
    Category,
    After,
    Before,
    OlderThan,
    NewerThan,
    Larger,
    Smaller,
    MessageId,
}

fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '{' | '}' | '"' | '|')
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.q[self.pos..].chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Whether an uppercase keyword (`OR`, `AND`, `NOT`) stands here alone.
    fn at_keyword(&self, kw: &str) -> bool {
        let rest = &self.q[self.pos..];
        rest.starts_with(kw) && rest[kw.len()..].chars().next().is_none_or(is_delim)
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let found = self.at_keyword(kw);
        if found {
            self.pos += kw.len();
        }
        found
    }

    fn eat_or(&mut self) -> bool {
        if self.peek() == Some('|') {
            self.bump();
            return true;
        }
        self.eat_keyword("OR")
    }

    /// Terms up to `close` (or the end when `None`; the opening bracket has
    /// been consumed). `OR` joins neighbours and binds tighter than the
    /// implicit AND; in braces (`any`) every term is ORed.
    fn group(
        &mut self,
        op: Option<&Op>,
        close: Option<char>,
        any: bool,
    ) -> Result<Option<Node>, QueryError> {
        let mut alternatives: Vec<Vec<Node>> = Vec::new();
        // Set by an OR until the next term; terms Gmail ignores ("!!!") and
        // stray ORs leave no trace, as if they had not been typed.
        let mut after_or = false;
        loop {
            self.skip_ws();
            match self.peek() {
                None => match close {
                    None => break,
                    Some(c) => {
                        return Err(QueryError::Unbalanced {
                            what: if c == ')' { '(' } else { '{' },
                            query: clip(self.q),
                        })
                    }
                },
                Some(c @ (')' | '}')) => {
                    if close == Some(c) {
                        self.bump();
                        break;
                    }
                    return Err(QueryError::Unbalanced {
                        what: c,
                        query: clip(self.q),
                    });
                }
                _ if self.eat_or() => after_or = true,
                _ if self.eat_keyword("AND") => {}
                Some(_) => {
                    if let Some(node) = self.unary(op)? {
                        match alternatives.last_mut() {
                            Some(last) if after_or => last.push(node),
                            _ => alternatives.push(vec![node]),
                        }
                        after_or = false;
                    }
                }
            }
        }
        Ok(if any {
            or(alternatives.into_iter().flatten().collect())
        } else {
            and(alternatives.into_iter().filter_map(or).collect())
        })
    }

    /// Enters a bracketed group at the current `(` or `{`.
    fn bracketed(&mut self, op: Option<&Op>) -> Result<Option<Node>, QueryError> {
        let (close, any) = if self.peek() == Some('(') {
            (')', false)
        } else {
            ('}', true)
        };
        self.bump();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::TooDeep {
                query: clip(self.q),
            });
        }
        let node = self.group(op, Some(close), any);
        self.depth -= 1;
        node
    }

    fn unary(&mut self, op: Option<&Op>) -> Result<Option<Node>, QueryError> {
        // Negations are counted, not nested, so "-----x" cannot recurse deeply.
        let mut negate = false;
        loop {
            if self.peek() == Some('-') {
                self.bump();
                if self.peek().is_none_or(char::is_whitespace) {
                    return Ok(None); // a lone "-"
                }
                negate = !negate;
            } else if self.eat_keyword("NOT") {
                self.skip_ws();
                negate = !negate;
            } else {
                break;
            }
        }
        let node = match self.peek() {
            // Nothing left to negate; the caller deals with what follows.
            None | Some(')' | '}' | '|') => None,
            _ if self.at_keyword("OR") || self.at_keyword("AND") => None,
            Some('(' | '{') => self.bracketed(op)?,
            Some('"') => {
                let phrase = self.quoted()?;
                self.term(op, phrase)?
            }
            Some(_) => self.word_term(op)?,
        };
        Ok(node.map(|n| if negate { Node::Not(Box::new(n)) } else { n }))
    }

    /// The text of a `"…"` phrase, consuming both quotes.
    fn quoted(&mut self) -> Result<&'a str, QueryError> {
        let start = self.pos + 1;
        let Some(len) = self.q[start..].find('"') else {
            return Err(QueryError::Unbalanced {
                what: '"',
                query: clip(self.q),
            });
        };
        self.pos = start + len + 1;
        Ok(&self.q[start..start + len])
    }

    /// A bare word or an `operator:value` term.
    fn word_term(&mut self, op: Option<&Op>) -> Result<Option<Node>, QueryError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| !is_delim(c)) {
            self.bump();
        }
        let word = &self.q[start..self.pos];
        if word == "AROUND" {
            return Err(QueryError::Unsupported {
                op: word.into(),
                query: clip(self.q),
            });
        }
        let Some((name, value)) = split_operator(word) else {
            return self.term(op, word);
        };
        let inner = self.operator(name)?;
        if !value.is_empty() {
            return inner.value(value, self.q);
        }
        match self.peek() {
            Some('(' | '{') => self.bracketed(Some(&inner)),
            Some('"') => {
                let value = self.quoted()?;
                inner.value(value, self.q)
            }
            _ => Err(QueryError::MissingValue {
                op: inner.name,
                query: clip(self.q),
            }),
        }
    }

    fn operator(&self, name: &str) -> Result<Op, QueryError> {
        let field = match name.to_ascii_lowercase().as_str() {
            "from" => Field::From,
            "to" | "cc" | "bcc" => Field::To,
            "subject" => Field::Subject,
            "label" => Field::Label,
            "in" => Field::In,
            "is" => Field::Is,
            "has" => Field::Has,
            "filename" => Field::Filename,
            "category" => Field::Category,
            "after" | "newer" => Field::After,
            "before" | "older" => Field::Before,
            "older_than" => Field::OlderThan,
            "newer_than" => Field::NewerThan,
            "larger" | "size" => Field::Larger,
            "smaller" => Field::Smaller,
            "rfc822msgid" => Field::MessageId,
            _ => {
                return Err(QueryError::Unsupported {
                    op: format!("{name}:"),
                    query: clip(self.q),
                })
            }
        };
        Ok(Op {
            field,
            name: format!("{name}:"),
        })
    }

    /// A word or phrase: plain text, or a value of the enclosing operator.
    fn term(&self, op: Option<&Op>, text: &str) -> Result<Option<Node>, QueryError> {
        match op {
            None => Ok(words(text).map(Node::Text)),
            Some(op) => op.value(text, self.q),
        }
    }
}

/// Splits `name:value` when `name` looks like an operator (a letter, then
/// letters, digits or underscores, as in `rfc822msgid`), so times ("12:30")
/// and URLs ("https://…") stay plain words.
fn split_operator(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once(':')?;
    let is_name = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let is_scheme = name.eq_ignore_ascii_case("http") || name.eq_ignore_ascii_case("https");
    (is_name && !is_scheme).then_some((name, value))
}

impl Op {
    fn value(&self, raw: &str, q: &str) -> Result<Option<Node>, QueryError> {
        let v = raw.trim();
        if v.is_empty() {
            return Err(QueryError::MissingValue {
                op: self.name.clone(),
                query: clip(q),
            });
        }
        let bad = |expected| QueryError::BadValue {
            op: self.name.clone(),
            value: clip(v),
            expected,
            query: clip(q),
        };
        let lower = v.to_ascii_lowercase();
        let node = match self.field {
            Field::From if lower == "me" => Node::FromMe,
            Field::From => Node::From(fold_str(v)),
            Field::To if lower == "me" => Node::ToMe,
            Field::To => Node::To(fold_str(v)),
            Field::Subject => return Ok(words(v).map(Node::Subject)),
            Field::Label => Node::Label(norm_label(v)),
            Field::In => {
                match lower.as_str() {
                    "inbox" => Node::System("INBOX"),
                    "sent" => Node::System("SENT"),
                    "spam" => Node::System("SPAM"),
                    "trash" => Node::System("TRASH"),
                    "drafts" | "draft" => Node::System("DRAFT"),
                    "starred" => Node::System("STARRED"),
                    "important" => Node::System("IMPORTANT"),
                    "chats" | "chat" => Node::System("CHAT"),
                    "anywhere" => Node::Anywhere,
                    _ => return Err(bad(
                        "inbox, sent, spam, trash, drafts, starred, important, chats or anywhere",
                    )),
                }
            }
            Field::Is => match lower.as_str() {
                "unread" => Node::System("UNREAD"),
                "read" => Node::Not(Box::new(Node::System("UNREAD"))),
                "starred" => Node::System("STARRED"),
                "important" => Node::System("IMPORTANT"),
                _ => return Err(bad("unread, read, starred or important")),
            },
            Field::Has => match lower.as_str() {
                "attachment" => Node::HasAttachment,
                "userlabels" => Node::HasUserLabels,
                "nouserlabels" => Node::Not(Box::new(Node::HasUserLabels)),
                _ => return Err(bad("attachment, userlabels or nouserlabels")),
            },
            Field::Filename => Node::Filename(fold_str(v)),
            Field::MessageId => {
                Node::MessageId(v.trim_start_matches('<').trim_end_matches('>').to_string())
            }
            Field::Category => match lower.as_str() {
                "primary" | "personal" => Node::System("CATEGORY_PERSONAL"),
                "social" => Node::System("CATEGORY_SOCIAL"),
                "promotions" => Node::System("CATEGORY_PROMOTIONS"),
                "updates" => Node::System("CATEGORY_UPDATES"),
                "forums" => Node::System("CATEGORY_FORUMS"),
                _ => return Err(bad("primary, social, promotions, updates or forums")),
            },
            Field::After | Field::Before => {
                let t = parse_date(v).ok_or_else(|| {
                    bad("a date as YYYY/MM/DD, YYYY-MM-DD, MM/DD/YYYY or Unix seconds")
                })?;
                match self.field {
                    Field::After => Node::Since(t),
                    _ => Node::Until(t),
                }
            }
            Field::OlderThan | Field::NewerThan => {
                let age = parse_age(v).ok_or_else(|| bad("a number with d, m or y, e.g. 7d"))?;
                match self.field {
                    Field::OlderThan => Node::OlderThan(age),
                    _ => Node::NewerThan(age),
                }
            }
            Field::Larger | Field::Smaller => {
                let n = parse_size(v)
                    .ok_or_else(|| bad("a size in bytes, or with K, M or G, e.g. 10M"))?;
                match self.field {
                    Field::Larger => Node::Larger(n),
                    _ => Node::Smaller(n),
                }
            }
        };
        Ok(Some(node))
    }
}

/// Milliseconds at the start (UTC) of a `YYYY/MM/DD`, `YYYY-MM-DD` or
/// `MM/DD/YYYY` day, or at a Unix time in seconds.
fn parse_date(v: &str) -> Option<i64> {
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<i64>().ok()?.checked_mul(1000);
    }
    let parts: Vec<&str> = v.split(['/', '-']).collect();
    let [a, b, c] = parts[..] else { return None };
    if [a, b, c]
        .iter()
        .any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n = |p: &str| p.parse::<u32>().ok();
    let (y, m, d) = if a.len() == 4 {
        (n(a)?, n(b)?, n(c)?)
    } else if c.len() == 4 {
        (n(c)?, n(a)?, n(b)?)
    } else {
        return None;
    };
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// `Nd`, `Nm` (30 days) or `Ny` (365 days), in milliseconds.
fn parse_age(v: &str) -> Option<i64> {
    let unit = v.chars().last()?;
    let days = match unit.to_ascii_lowercase() {
        'd' => 1,
        'm' => 30,
        'y' => 365,
        _ => return None,
    };
    let n = &v[..v.len() - 1];
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse::<i64>().ok()?.checked_mul(days * DAY_MS)
}

/// Bytes, or a number with a K, M or G (binary) suffix.
fn parse_size(v: &str) -> Option<u64> {
    let (digits, scale) = match v.chars().last()?.to_ascii_lowercase() {
        'k' => (&v[..v.len() - 1], 1 << 10),
        'm' => (&v[..v.len() - 1], 1 << 20),
        'g' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// Error messages quote the query; keep a huge one readable.
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
