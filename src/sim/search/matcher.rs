//! Evaluating a parsed query against one message: each [`Node`] tested
//! on the message's fields, labels, dates and size, with the body text
//! extracted only when a word is not found elsewhere. Also the text model
//! both halves share: Gmail's word tokenizing, case folding and label-name
//! normalization.

use std::cell::OnceCell;

use crate::sim::mailbox::{LabelType, Mailbox, SimMessage};

use super::Node;

pub(super) struct Ctx<'a> {
    pub(super) m: &'a SimMessage,
    pub(super) mailbox: &'a Mailbox,
    pub(super) now_ms: i64,
    /// The body text, extracted at most once per message and only when a
    /// bare word is not found in the cheap fields.
    pub(super) body: OnceCell<String>,
}

impl Node {
    pub(super) fn eval(&self, c: &Ctx) -> bool {
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
            Node::MessageId(id) => m.message_id_header().is_some_and(|h| h == *id),
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
    pub(super) fn needs_body(&self) -> bool {
        match self {
            Node::Text(_) => true,
            Node::And(v) | Node::Or(v) => v.iter().any(Node::needs_body),
            Node::Not(n) => n.needs_body(),
            _ => false,
        }
    }

    pub(super) fn mentions_spam_or_trash(&self, positive: bool) -> bool {
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

/// Case folding for matching. The final sigma folds like any sigma so "ΟΔΟΣ"
/// matches "οδος" whichever form was typed.
fn fold(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().map(|c| if c == 'ς' { 'σ' } else { c })
}

pub(super) fn fold_str(s: &str) -> String {
    s.chars().flat_map(fold).collect()
}

/// Words as Gmail tokenizes them: runs of letters and digits.
fn split_words(s: &str) -> impl Iterator<Item = &str> + Clone {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The folded words of a needle; `None` when it has none (pure punctuation,
/// which Gmail ignores).
pub(super) fn words(s: &str) -> Option<Vec<String>> {
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

pub(super) fn norm_label(s: &str) -> String {
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
