//! Gmail's search language (the `q` of messages.list and threads.list):
//! parsing into an AST once, then matching it against [`SimMessage`]s.
//!
//! Follows Gmail's "Search operators" help page: whitespace means AND and
//! binds looser than `OR`/`|`; `{a b}` is an OR group, `( )` an AND group;
//! `-` (or `NOT`) negates. Bare words match whole words, case-insensitively,
//! in the sender, recipients, subject, attachment names and body.

use std::cell::OnceCell;

use crate::sim::mailbox::{LabelType, Mailbox, SimMessage};

/// Deepest nesting of groups accepted; keeps recursion far from the stack limit.
const MAX_DEPTH: usize = 64;
const DAY_MS: i64 = 86_400_000;

/// A parsed search query. Needles are folded (lowercased) at parse time so
/// matching a large mailbox allocates as little as possible.
#[derive(Debug, Clone)]
pub struct Query {
    root: Option<Node>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("unsupported search operator \"{op}\" in query \"{query}\"")]
    Unsupported { op: String, query: String },
    #[error("search operator \"{op}\" needs a value in query \"{query}\"")]
    MissingValue { op: String, query: String },
    #[error("invalid value \"{value}\" for search operator \"{op}\" in query \"{query}\": expected {expected}")]
    BadValue {
        op: String,
        value: String,
        expected: &'static str,
        query: String,
    },
    #[error("unbalanced '{what}' in query \"{query}\"")]
    Unbalanced { what: char, query: String },
    #[error("groups nested more than {MAX_DEPTH} deep in query \"{query}\"")]
    TooDeep { query: String },
}

/// Parses a search query. Errors name the offending operator or character
/// and quote the query, for showing to the user as they are.
pub fn parse(q: &str) -> Result<Query, QueryError> {
    let mut p = Parser {
        q,
        pos: 0,
        depth: 0,
    };
    Ok(Query {
        root: p.group(None, None, false)?,
    })
}

impl Query {
    /// `now_ms`: current time for older_than/newer_than.
    pub fn matches(&self, m: &SimMessage, mailbox: &Mailbox, now_ms: i64) -> bool {
        let ctx = Ctx {
            m,
            mailbox,
            now_ms,
            body: OnceCell::new(),
        };
        self.root.as_ref().is_none_or(|n| n.eval(&ctx))
    }

    /// True when the query names spam or trash (in:spam, in:trash, label:spam,
    /// label:trash, in:anywhere), so the listing must not hide those messages.
    /// Only positive mentions count: `-in:spam` still hides spam and trash.
    pub fn mentions_spam_or_trash(&self) -> bool {
        self.root
            .as_ref()
            .is_some_and(|n| n.mentions_spam_or_trash(true))
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// A bare word or phrase: folded words that must appear consecutively.
    Text(Vec<String>),
    /// Folded substring of the From header.
    From(String),
    /// Folded substring of To, Cc and Bcc.
    To(String),
    FromMe,
    ToMe,
    Subject(Vec<String>),
    /// label:, normalized by [`norm_label`]; matches a label's name or id.
    Label(String),
    /// A system label id (from in:, is:, category:).
    System(&'static str),
    Anywhere,
    HasAttachment,
    HasUserLabels,
    /// Folded substring of an attachment's file name.
    Filename(String),
    /// internalDate at or after this instant (ms).
    Since(i64),
    /// internalDate before this instant (ms).
    Until(i64),
    /// Age strictly greater than this many ms.
    OlderThan(i64),
    /// Age at most this many ms.
    NewerThan(i64),
    Larger(u64),
    Smaller(u64),
}

struct Ctx<'a> {
    m: &'a SimMessage,
    mailbox: &'a Mailbox,
    now_ms: i64,
    /// The body text, extracted at most once per message and only when a
    /// bare word is not found in the cheap fields.
    body: OnceCell<String>,
}

impl Node {
    fn eval(&self, c: &Ctx) -> bool {
        let m = c.m;
        match self {
            Node::And(v) => v.iter().all(|n| n.eval(c)),
            Node::Or(v) => v.iter().any(|n| n.eval(c)),
            Node::Not(n) => !n.eval(c),
            Node::Text(words) => {
                has_phrase(&m.subject, words)
                    || has_phrase(&m.from, words)
                    || has_phrase(&m.to, words)
                    || m.attachment_names.iter().any(|a| has_phrase(a, words))
                    // The snippet is HTML-escaped ("&#39;"), which would
                    // tokenize into stray words; the body covers it anyway.
                    || (!m.snippet.contains('&') && has_phrase(&m.snippet, words))
                    || has_phrase(c.body.get_or_init(|| m.body_text()), words)
            }
            Node::From(s) => contains_folded(&m.from, s),
            Node::To(s) => contains_folded(&m.to, s),
            // The mailbox does not record its owner's address, so "me" is
            // judged by labels: mail I wrote is sent or drafted.
            Node::FromMe => m.has_label("SENT") || m.has_label("DRAFT"),
            Node::ToMe => m.has_label("INBOX") || !(m.has_label("SENT") || m.has_label("DRAFT")),
            Node::Subject(words) => has_phrase(&m.subject, words),
            Node::Label(name) => {
                m.label_ids.iter().any(|id| label_eq(id, name))
                    || c.mailbox
                        .labels
                        .iter()
                        .any(|l| label_eq(&l.name, name) && m.has_label(&l.id))
            }
            Node::System(id) => m.has_label(id),
            Node::Anywhere => true,
            Node::HasAttachment => !m.attachment_names.is_empty(),
            Node::HasUserLabels => c
                .mailbox
                .labels
                .iter()
                .any(|l| l.kind == LabelType::User && m.has_label(&l.id)),
            Node::Filename(s) => m.attachment_names.iter().any(|a| contains_folded(a, s)),
            Node::Since(t) => m.internal_date_ms >= *t,
            Node::Until(t) => m.internal_date_ms < *t,
            Node::OlderThan(age) => m.internal_date_ms < c.now_ms.saturating_sub(*age),
            Node::NewerThan(age) => m.internal_date_ms >= c.now_ms.saturating_sub(*age),
            Node::Larger(n) => m.size as u64 > *n,
            Node::Smaller(n) => (m.size as u64) < *n,
        }
    }

    /// Whether evaluating may need the body text; such nodes go last in
    /// AND/OR groups so cheap tests can decide first.
    fn needs_body(&self) -> bool {
        match self {
            Node::Text(_) => true,
            Node::And(v) | Node::Or(v) => v.iter().any(Node::needs_body),
            Node::Not(n) => n.needs_body(),
            _ => false,
        }
    }

    fn mentions_spam_or_trash(&self, positive: bool) -> bool {
        match self {
            Node::And(v) | Node::Or(v) => v.iter().any(|n| n.mentions_spam_or_trash(positive)),
            Node::Not(n) => n.mentions_spam_or_trash(!positive),
            Node::System(id) => positive && matches!(*id, "SPAM" | "TRASH"),
            Node::Label(name) => positive && matches!(name.as_str(), "spam" | "trash"),
            Node::Anywhere => positive,
            _ => false,
        }
    }
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

/// Case folding for matching. The final sigma folds like any sigma so "ΟΔΟΣ"
/// matches "οδος" whichever form was typed.
fn fold(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().map(|c| if c == 'ς' { 'σ' } else { c })
}

fn fold_str(s: &str) -> String {
    s.chars().flat_map(fold).collect()
}

/// Words as Gmail tokenizes them: runs of letters and digits.
fn split_words(s: &str) -> impl Iterator<Item = &str> + Clone {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The folded words of a needle; `None` when it has none (pure punctuation,
/// which Gmail ignores).
fn words(s: &str) -> Option<Vec<String>> {
    let v: Vec<String> = split_words(s).map(fold_str).collect();
    (!v.is_empty()).then_some(v)
}

/// Whether `hay` contains the folded `needle` words consecutively.
fn has_phrase(hay: &str, needle: &[String]) -> bool {
    let Some((first, rest)) = needle.split_first() else {
        return true;
    };
    let mut it = split_words(hay);
    while let Some(w) = it.next() {
        if word_eq(w, first) {
            let mut after = it.clone();
            if rest
                .iter()
                .all(|n| after.next().is_some_and(|w| word_eq(w, n)))
            {
                return true;
            }
        }
    }
    false
}

/// `w` (as written) equals the folded word `n`, without allocating.
fn word_eq(w: &str, n: &str) -> bool {
    if w.is_ascii() {
        w.eq_ignore_ascii_case(n)
    } else {
        w.chars().flat_map(fold).eq(n.chars())
    }
}

/// Case-insensitive substring test against a folded, non-empty needle.
fn contains_folded(hay: &str, needle: &str) -> bool {
    if hay.is_ascii() {
        // An ASCII haystack folds to ASCII, so a non-ASCII needle is absent.
        needle.is_ascii()
            && hay
                .as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    } else {
        fold_str(hay).contains(needle)
    }
}

/// Gmail writes label names in queries with `-` for spaces and `/`:
/// "Work/Projects" is `label:work-projects`.
fn label_char(c: char) -> char {
    if c.is_whitespace() || c == '/' {
        '-'
    } else {
        c
    }
}

fn norm_label(s: &str) -> String {
    s.chars().flat_map(fold).map(label_char).collect()
}

/// A label name or id equals a value normalized by [`norm_label`]. Runs for
/// every label on every message, hence the allocation-free ASCII path.
fn label_eq(name: &str, norm: &str) -> bool {
    if name.is_ascii() {
        name.len() == norm.len()
            && name
                .bytes()
                .zip(norm.bytes())
                .all(|(a, b)| label_char(char::from(a.to_ascii_lowercase())) == char::from(b))
    } else {
        name.chars().flat_map(fold).map(label_char).eq(norm.chars())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::mailbox::{Body, Label};
    use std::sync::Arc;

    fn ms(y: i32, m: u32, d: u32, h: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, 0, 0))
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    /// "Now" for every test: 2024-06-15 00:00 UTC.
    fn now() -> i64 {
        ms(2024, 6, 15, 0)
    }

    struct M {
        id: &'static str,
        labels: &'static [&'static str],
        date: i64,
        size: usize,
        from: &'static str,
        to: &'static str,
        subject: &'static str,
        attachments: &'static [&'static str],
        body: &'static str,
    }

    fn message(m: M) -> SimMessage {
        let raw = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
            m.from, m.to, m.subject, m.body
        );
        let mut label_ids: Vec<String> = m.labels.iter().map(|l| l.to_string()).collect();
        label_ids.sort();
        SimMessage {
            id: m.id.into(),
            thread_id: m.id.into(),
            label_ids,
            internal_date_ms: m.date,
            history_id: 1,
            size: m.size,
            from: m.from.into(),
            to: m.to.into(),
            subject: m.subject.into(),
            attachment_names: m.attachments.iter().map(|a| a.to_string()).collect(),
            // HTML-escaped, as Gmail's snippets are.
            snippet: m
                .body
                .chars()
                .take(200)
                .collect::<String>()
                .replace('&', "&amp;")
                .replace('\'', "&#39;"),
            body: Body::Stored(Arc::from(raw.into_bytes())),
        }
    }

    fn label(id: &str, name: &str, kind: LabelType) -> Label {
        Label {
            id: id.into(),
            name: name.into(),
            kind,
        }
    }

    fn mailbox() -> Mailbox {
        let mut mb = Mailbox::default();
        for id in [
            "INBOX",
            "SENT",
            "SPAM",
            "TRASH",
            "DRAFT",
            "UNREAD",
            "STARRED",
            "IMPORTANT",
            "CHAT",
            "CATEGORY_PERSONAL",
            "CATEGORY_SOCIAL",
            "CATEGORY_PROMOTIONS",
            "CATEGORY_UPDATES",
            "CATEGORY_FORUMS",
        ] {
            mb.labels.push(label(id, id, LabelType::System));
        }
        mb.labels
            .push(label("Label_1", "Work/Projects", LabelType::User));
        mb.labels
            .push(label("Label_2", "Family Stuff", LabelType::User));
        let msgs = [
            M {
                id: "m1",
                labels: &["INBOX", "UNREAD", "IMPORTANT", "CATEGORY_PERSONAL"],
                date: ms(2024, 6, 10, 12),
                size: 2000,
                from: "Alice Smith <alice@example.com>",
                to: "bob@example.com",
                subject: "Dinner and a movie tonight",
                attachments: &[],
                body: "Let's meet at the café at 8.",
            },
            M {
                id: "m2",
                labels: &["INBOX", "STARRED", "Label_1"],
                date: ms(2024, 1, 15, 9),
                size: 5 << 20,
                from: "José Ñúñez <jose@example.es>",
                to: "alice@example.com, carol@example.org",
                subject: "Quarterly report",
                attachments: &["Report-Q1.PDF", "data.xlsx"],
                body: "Please find the meeting notes attached.",
            },
            M {
                id: "m3",
                labels: &["SENT"],
                date: ms(2023, 5, 1, 8),
                size: 300,
                from: "Owner <owner@example.com>",
                to: "dave@example.net",
                subject: "Re: meeting",
                attachments: &[],
                body: "See you at 12:30. Visit https://example.com/x",
            },
            M {
                id: "m4",
                labels: &["SPAM"],
                date: ms(2024, 6, 14, 10),
                size: 1000,
                from: "Prize <win@spam.test>",
                to: "owner@example.com",
                subject: "You won!!!",
                attachments: &[],
                body: "Claim your prize",
            },
            M {
                id: "m5",
                labels: &["TRASH", "CATEGORY_SOCIAL"],
                date: ms(2022, 6, 1, 0),
                size: 1500,
                from: "news@social.test",
                to: "owner@example.com",
                subject: "Weekly digest",
                attachments: &[],
                body: "ΟΔΟΣ test",
            },
            M {
                id: "m6",
                labels: &["INBOX", "Label_2"],
                date: ms(2024, 6, 14, 23),
                size: 11 << 20,
                from: "Mom <mom@family.test>",
                to: "owner@example.com",
                subject: "Photos",
                attachments: &["beach.JPG"],
                body: "Big photos from the beach & more",
            },
            M {
                id: "m7",
                labels: &["DRAFT"],
                date: ms(2024, 3, 1, 0),
                size: 100,
                from: "Owner <owner@example.com>",
                to: "x@example.com",
                subject: "Draft idea",
                attachments: &[],
                body: "not sent yet",
            },
        ];
        for m in msgs {
            let m = message(m);
            mb.messages.insert(m.id.clone(), m);
        }
        mb
    }

    /// Ids of the test mailbox's messages matching `q`, in id order.
    fn ids(q: &str) -> Vec<String> {
        let mb = mailbox();
        let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        mb.messages
            .values()
            .filter(|m| query.matches(m, &mb, now()))
            .map(|m| m.id.clone())
            .collect()
    }

    fn check(q: &str, want: &[&str]) {
        assert_eq!(ids(q), want, "query {q:?}");
    }

    fn err(q: &str) -> String {
        match parse(q) {
            Ok(query) => panic!("{q:?} parsed as {query:?}"),
            Err(e) => e.to_string(),
        }
    }

    const ALL: &[&str] = &["m1", "m2", "m3", "m4", "m5", "m6", "m7"];

    #[test]
    fn empty_query_matches_everything() {
        for q in ["", "   ", "\t\n", "()", "{}", "!!!", "-", "OR", "\"\""] {
            assert!(parse(q).unwrap().is_empty(), "{q:?}");
            check(q, ALL);
        }
        assert!(!parse("a").unwrap().is_empty());
    }

    #[test]
    fn bare_words_match_whole_words_anywhere() {
        check("dinner", &["m1"]);
        check("DiNnEr", &["m1"]);
        // Body only; "meet" must not match "meeting".
        check("meet", &["m1"]);
        check("meeting", &["m2", "m3"]);
        // Address words, in From and in To.
        check("alice", &["m1", "m2"]);
        check("alice@example.com", &["m1", "m2"]);
        // Attachment names.
        check("xlsx", &["m2"]);
        check("claim prize", &["m4"]);
        check("+dinner", &["m1"]);
        check("lowercase or", &[]);
    }

    #[test]
    fn phrases_need_consecutive_words() {
        check("\"movie tonight\"", &["m1"]);
        check("\"tonight movie\"", &[]);
        check("\"MEETING notes\"", &["m2"]);
        check("\"notes meeting\"", &[]);
        check("\"(dinner)\"", &["m1"]);
        check("\"dinner OR\"", &[]);
    }

    #[test]
    fn non_ascii_is_case_insensitive() {
        check("josé", &["m2"]);
        check("JOSÉ", &["m2"]);
        check("ñúñez", &["m2"]);
        check("CAFÉ", &["m1"]);
        check("jose", &["m2"]); // in the address
        check("οδος", &["m5"]); // final sigma folds like σ
        check("from:JOSÉ", &["m2"]);
        check("from:ñú", &["m2"]);
    }

    #[test]
    fn times_and_urls_are_words() {
        check("12:30", &["m3"]);
        check("https://example.com", &["m3"]);
        check("HTTPS://example.com/x", &["m3"]);
    }

    #[test]
    fn snippet_entities_do_not_match() {
        check("amp", &[]);
        check("39", &[]);
        check("let's", &["m1"]);
        check("beach", &["m6"]);
    }

    #[test]
    fn from_and_to() {
        check("from:alice", &["m1"]);
        check("FROM:ALICE@EXAMPLE.COM", &["m1"]);
        check("from:\"Alice Smith\"", &["m1"]);
        check("from:\"smith alice\"", &[]);
        check("from:(alice OR jose)", &["m1", "m2"]);
        check("from:{alice jose}", &["m1", "m2"]);
        check("from:(alice jose)", &[]);
        check("to:alice", &["m2"]);
        check("cc:carol", &["m2"]);
        check("bcc:carol", &["m2"]);
        check("to:example.net", &["m3"]);
        check("from:me", &["m3", "m7"]);
        check("to:me", &["m1", "m2", "m4", "m5", "m6"]);
    }

    #[test]
    fn subject() {
        check("subject:dinner", &["m1"]);
        check("subject:(dinner movie)", &["m1"]);
        check("subject:(dinner report)", &[]);
        check("subject:{dinner report}", &["m1", "m2"]);
        check("subject:\"a movie\"", &["m1"]);
        check("subject:meet", &[]);
        check("subject:meeting", &["m3"]);
        check("subject:(-dinner) in:inbox", &["m2", "m6"]);
        check("subject:(dinner (movie OR report))", &["m1"]);
    }

    #[test]
    fn labels() {
        check("label:work-projects", &["m2"]);
        check("label:WORK-PROJECTS", &["m2"]);
        check("label:Work/Projects", &["m2"]);
        check("label:\"work projects\"", &["m2"]);
        check("label:family-stuff", &["m6"]);
        check("label:\"Family Stuff\"", &["m6"]);
        check("label:label_1", &["m2"]);
        check("label:inbox", &["m1", "m2", "m6"]);
        check("label:unread", &["m1"]);
        check("label:work", &[]);
        check("label:nonexistent", &[]);
        check("-label:work-projects in:inbox", &["m1", "m6"]);
    }

    #[test]
    fn in_is_has_category() {
        check("in:inbox", &["m1", "m2", "m6"]);
        check("IN:INBOX", &["m1", "m2", "m6"]);
        check("in:sent", &["m3"]);
        check("in:spam", &["m4"]);
        check("in:trash", &["m5"]);
        check("in:drafts", &["m7"]);
        check("in:draft", &["m7"]);
        check("in:starred", &["m2"]);
        check("in:important", &["m1"]);
        check("in:chats", &[]);
        check("in:anywhere", ALL);
        check("is:unread", &["m1"]);
        check("is:read", &["m2", "m3", "m4", "m5", "m6", "m7"]);
        check("is:starred", &["m2"]);
        check("is:important", &["m1"]);
        check("has:attachment", &["m2", "m6"]);
        check("has:userlabels", &["m2", "m6"]);
        check("has:nouserlabels", &["m1", "m3", "m4", "m5", "m7"]);
        check("category:primary", &["m1"]);
        check("category:social", &["m5"]);
        check("category:promotions", &[]);
        check("category:updates", &[]);
        check("category:forums", &[]);
    }

    #[test]
    fn filename() {
        check("filename:pdf", &["m2"]);
        check("filename:report-q1.pdf", &["m2"]);
        check("filename:jpg", &["m6"]);
        check("filename:\"data\"", &["m2"]);
        check("filename:docx", &[]);
    }

    #[test]
    fn absolute_dates() {
        check("after:2024/06/10", &["m1", "m4", "m6"]);
        check("after:2024-06-10", &["m1", "m4", "m6"]);
        check("after:06/10/2024", &["m1", "m4", "m6"]);
        check("after:2024/6/10", &["m1", "m4", "m6"]);
        check("newer:2024/06/10", &["m1", "m4", "m6"]);
        check("before:2024/01/15", &["m3", "m5"]);
        check("older:2024/01/15", &["m3", "m5"]);
        check("after:2024/06/10 before:2024/06/11", &["m1"]);
        // Unix seconds: after: is inclusive, before: exclusive.
        let s = ms(2024, 6, 10, 12) / 1000;
        check(&format!("after:{s}"), &["m1", "m4", "m6"]);
        check(&format!("before:{s}"), &["m2", "m3", "m5", "m7"]);
        check(&format!("after:{}", s + 1), &["m4", "m6"]);
    }

    #[test]
    fn relative_dates() {
        check("newer_than:1d", &["m4", "m6"]);
        check("newer_than:7d", &["m1", "m4", "m6"]);
        check("newer_than:1m", &["m1", "m4", "m6"]);
        check("newer_than:6m", &["m1", "m2", "m4", "m6", "m7"]);
        check("older_than:1y", &["m3", "m5"]);
        check("older_than:2Y", &["m5"]);
        check("-newer_than:6m", &["m3", "m5"]);
        check("older_than:0d", ALL);
    }

    #[test]
    fn sizes() {
        check("larger:10M", &["m6"]);
        check("larger:1m", &["m2", "m6"]);
        check("size:1000000", &["m2", "m6"]);
        check("larger:2000", &["m2", "m6"]); // strictly larger
        check("smaller:1K", &["m3", "m4", "m7"]);
        check("smaller:1000", &["m3", "m7"]);
        check("larger:1K smaller:2001", &["m1", "m5"]);
    }

    #[test]
    fn negation() {
        check("-in:inbox", &["m3", "m4", "m5", "m7"]);
        check("-from:alice in:inbox", &["m2", "m6"]);
        check("in:inbox -dinner", &["m2", "m6"]);
        check("-(dinner OR photos) in:inbox", &["m2"]);
        check("-{dinner photos} in:inbox", &["m2"]);
        check("NOT dinner in:inbox", &["m2", "m6"]);
        check("--dinner", &["m1"]);
        check("NOT -dinner", &["m1"]);
        check("-\"movie tonight\" in:inbox", &["m2", "m6"]);
        check("in:inbox - dinner", &["m1"]); // a lone "-" is ignored
    }

    #[test]
    fn or_binds_tighter_than_and() {
        check("dinner OR report", &["m1", "m2"]);
        check("dinner | report", &["m1", "m2"]);
        check("dinner|report", &["m1", "m2"]);
        check("dinner OR report OR photos", &["m1", "m2", "m6"]);
        // (photos OR report) AND (unread OR starred), not photos OR (report
        // AND unread) OR starred.
        check("photos OR report is:unread OR is:starred", &["m2"]);
        check("dinner report OR photos", &[]);
        check("(dinner OR report) is:unread", &["m1"]);
        check("{dinner report} in:inbox", &["m1", "m2"]);
        check("{dinner report photos} -is:unread", &["m2", "m6"]);
        check("{dinner (report is:starred)}", &["m1", "m2"]);
        check("dinner AND movie", &["m1"]);
        check("(dinner movie) OR photos", &["m1", "m6"]);
    }

    #[test]
    fn stray_connectives_are_ignored() {
        check("OR dinner", &["m1"]);
        check("dinner OR", &["m1"]);
        check("dinner OR OR report", &["m1", "m2"]);
        check("dinner | | report", &["m1", "m2"]);
        check("(dinner OR) movie", &["m1"]);
        check("dinner NOT", &["m1"]);
        check("AND dinner", &["m1"]);
        check("dinner !!! OR report", &["m1", "m2"]);
        check("dinner OR !!! report", &["m1", "m2"]);
        check("dinner OR - report", &["m1", "m2"]);
        check("dinner OR () report", &["m1", "m2"]);
    }

    #[test]
    fn errors_name_the_operator_and_value() {
        assert_eq!(
            err("foo:bar"),
            "unsupported search operator \"foo:\" in query \"foo:bar\""
        );
        for (q, op) in [
            ("deliveredto:a@b.c", "\"deliveredto:\""),
            ("rfc822msgid:<x@y>", "\"rfc822msgid:\""),
            ("a AROUND 3 b", "\"AROUND\""),
            ("Re: hello", "\"Re:\""),
            ("subject:(foo:bar)", "\"foo:\""),
            ("list:x", "\"list:\""),
        ] {
            let e = err(q);
            assert!(
                e.starts_with("unsupported search operator ") && e.contains(op),
                "{q}: {e}"
            );
        }
        for (q, op, value) in [
            ("larger:abc", "larger:", "abc"),
            ("smaller:10X", "smaller:", "10X"),
            (
                "larger:99999999999999999999",
                "larger:",
                "99999999999999999999",
            ),
            ("after:2024/13/45", "after:", "2024/13/45"),
            ("before:2023/02/29", "before:", "2023/02/29"),
            ("after:yesterday", "after:", "yesterday"),
            ("after:24/1/1", "after:", "24/1/1"),
            ("older_than:5x", "older_than:", "5x"),
            ("newer_than:d", "newer_than:", "d"),
            (
                "older_than:99999999999999y",
                "older_than:",
                "99999999999999y",
            ),
            ("in:nowhere", "in:", "nowhere"),
            ("is:muted", "is:", "muted"),
            ("has:drive", "has:", "drive"),
            ("category:junk", "category:", "junk"),
            ("in:(inbox bogus)", "in:", "bogus"),
        ] {
            let e = err(q);
            assert!(
                e.contains(&format!("\"{op}\"")) && e.contains(&format!("\"{value}\"")),
                "{q}: {e}"
            );
        }
        for q in ["from:", "from: alice", "(from:)", "to:\"\"", "label:\"  \""] {
            assert!(err(q).contains("needs a value"), "{q}");
        }
        for (q, what) in [
            ("(dinner", '('),
            ("dinner)", ')'),
            ("{dinner", '{'),
            ("dinner}", '}'),
            ("(dinner}", '}'),
            ("\"dinner", '"'),
            ("subject:(dinner", '('),
            ("from:\"alice", '"'),
        ] {
            let e = err(q);
            assert!(e.contains(&format!("unbalanced '{what}'")), "{q}: {e}");
        }
    }

    #[test]
    fn error_quotes_long_queries_clipped() {
        let q = format!("{} foo:bar", "word ".repeat(1000));
        let e = err(&q);
        assert!(
            e.contains("\"foo:\"") && e.contains('…') && e.len() < 400,
            "{e}"
        );
    }

    #[test]
    fn spam_and_trash_mentions() {
        for q in [
            "in:spam",
            "in:trash",
            "IN:SPAM",
            "label:spam",
            "label:TRASH",
            "in:anywhere",
            "dinner OR in:trash",
            "-(-in:spam)",
            "{in:inbox in:spam}",
        ] {
            assert!(parse(q).unwrap().mentions_spam_or_trash(), "{q}");
        }
        for q in [
            "",
            "-in:spam",
            "in:inbox",
            "spam",
            "subject:trash",
            "-in:anywhere",
        ] {
            assert!(!parse(q).unwrap().mentions_spam_or_trash(), "{q}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mb = mailbox();
        let mut nasty: Vec<String> = [
            "-",
            "\"\"",
            "(",
            ")",
            "OR",
            "OR OR",
            "from:",
            "|",
            "||",
            "{",
            "}",
            "-(",
            "-)",
            "-{}",
            "NOT",
            "NOT NOT",
            "- - -",
            ":",
            "::",
            ":a",
            "a:",
            "from::",
            "from:(",
            "from:{",
            "from:)",
            "from:\"",
            "\"",
            "\"\"\"",
            "label:",
            "in:",
            "after:",
            "-from:",
            "(()",
            "())",
            "{(})",
            "漢字",
            "é",
            "\u{0}",
            "\u{200b}",
            "İstanbul",
            "ﬃ",
            "ǅ",
            "K",
            "-\u{301}",
            "a\u{301}:b",
            "日本:語",
            "ﬁle:x",
            "OR(a)OR",
            "a(b)c",
            "\"a\"b\"c\"",
            "after:-1",
            "larger:-1",
            "older_than:-1d",
            "after:9999999999999999999",
            "before:0/0/0",
            "before:0000/01/01",
            "after:2024//01",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        nasty.push("(".repeat(100_000));
        nasty.push(")".repeat(100_000));
        nasty.push("-".repeat(100_000) + "dinner");
        nasty.push("NOT ".repeat(10_000) + "dinner");
        nasty.push("dinner OR ".repeat(10_000));
        nasty.push("a ".repeat(100_000));
        nasty.push("é".repeat(100_000));
        // Deterministic random strings over the syntax's sharp edges.
        let alphabet: Vec<&str> = vec![
            " ",
            "-",
            "(",
            ")",
            "{",
            "}",
            "\"",
            "|",
            ":",
            "OR",
            "AND",
            "NOT",
            "from:",
            "subject:",
            "label:",
            "in:inbox",
            "is:",
            "a",
            "dinner",
            "é",
            "漢",
            "12:30",
            "larger:1K",
            "\u{301}",
        ];
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..rng.gen_range(0..12) {
                s.push_str(alphabet[rng.gen_range(0..alphabet.len())]);
            }
            nasty.push(s);
        }
        for q in &nasty {
            if let Ok(query) = parse(q) {
                for m in mb.messages.values() {
                    query.matches(m, &mb, now());
                }
                query.mentions_spam_or_trash();
            }
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |n| format!("{}dinner{}", "(".repeat(n), ")".repeat(n));
        check(&nested(MAX_DEPTH), &["m1"]);
        check("-(-(-(dinner)))", &["m2", "m3", "m4", "m5", "m6", "m7"]);
        for q in [
            nested(MAX_DEPTH + 1),
            "{".repeat(100_000),
            "from:(".repeat(100_000),
        ] {
            assert!(
                matches!(parse(&q), Err(QueryError::TooDeep { .. })),
                "{}",
                &q[..10]
            );
        }
    }

    /// Run with `cargo test --release -- --ignored`.
    #[test]
    #[ignore = "timing; meaningful only in release"]
    fn matches_100k_messages_quickly() {
        let mut mb = mailbox();
        let template = mb.messages["m2"].clone();
        let messages: Vec<SimMessage> = (0..100_000)
            .map(|i| {
                let mut m = template.clone();
                m.id = format!("{i:016x}");
                m.subject = format!("Quarterly report number {i}");
                m.from = format!("Sender {i} <sender{i}@example.com>");
                m.internal_date_ms -= i * 60_000;
                m
            })
            .collect();
        mb.messages.clear();
        let q = parse(
            "from:example.com {subject:quarterly subject:annual} -label:family-stuff \
             newer_than:1y larger:1K \"report number\" -is:unread",
        )
        .unwrap();
        let start = std::time::Instant::now();
        let n = messages.iter().filter(|m| q.matches(m, &mb, now())).count();
        let took = start.elapsed();
        assert_eq!(n, 100_000);
        assert!(took.as_millis() < 100, "took {took:?}");
        eprintln!("100k messages in {took:?}");
    }
}
