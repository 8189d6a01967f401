//! Gmail's search language (the `q` of messages.list and threads.list):
//! parsing into an AST once, then matching it against [`SimMessage`]s.
//!
//! Follows Gmail's "Search operators" help page: whitespace means AND and
//! binds looser than `OR`/`|`; `{a b}` is an OR group, `( )` an AND group;
//! `-` (or `NOT`) negates. Bare words match whole words, case-insensitively,
//! in the sender, recipients, subject, attachment names and body.
//!
//! This file is the public surface ([`parse`], [`Query`], [`QueryError`])
//! and the syntax tree between the two halves: `parse` (the query grammar,
//! operators and their values) and `matcher` (evaluating a tree against a
//! message, and the word and case folding both halves share).

use std::cell::OnceCell;

use crate::sim::mailbox::{Mailbox, SimMessage};

mod matcher;
mod parse;
#[cfg(test)]
mod tests;

use matcher::Ctx;

/// Deepest nesting of groups accepted; keeps recursion far from the stack limit.
const MAX_DEPTH: usize = 64;

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
    Ok(Query {
        root: parse::root(q)?,
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

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.root.is_none()
    }
}

/// The syntax tree of a query: built by `parse`, evaluated by `matcher`.
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
    /// label:, normalized by [`norm_label`](matcher::norm_label); matches a
    /// label's name or id.
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
    /// rfc822msgid:, exactly (without angle brackets).
    MessageId(String),
}
