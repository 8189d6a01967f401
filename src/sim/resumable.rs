//! Resumable uploads (`uploadType=resumable`) of messages.import/insert, as
//! Google's upload protocol has them: a POST with the JSON metadata opens a
//! session and answers 200 with its URI in `Location`; PUTs to that URI
//! carry the bytes, whole or in chunks with `Content-Range`; a chunk that
//! does not complete the upload is answered 308 "Resume Incomplete" with
//! `Range: bytes=0-N` (what the server kept); `PUT` with
//! `Content-Range: bytes */TOTAL` and no body asks where a session stands.
//!
//! The simulator keeps only whole 256 KiB units of a chunk that is not the
//! last (Google requires chunks in multiples of 256 KiB), and of a chunk
//! whose exchange breaks keeps half, rounded down the same way: a client
//! must resume from the `Range` it is told, not from where it stopped.
//! A finished session keeps its answer, so a client whose last chunk lost
//! its reply asks and gets the message, instead of importing it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::errors::{self, ApiReply};
use super::import::MAX_SIZE;

/// Google's chunk unit.
const UNIT: usize = 256 * 1024;

/// Sessions kept at once; the oldest goes first (each can hold a message).
const MAX_SESSIONS: usize = 32;

struct Session {
    /// The `/gmail/v1/...` target the finished upload is served as.
    target: String,
    meta: Value,
    /// From `X-Upload-Content-Length`, or the first `Content-Range` that says.
    total: Option<usize>,
    received: Vec<u8>,
    authorization: Option<String>,
    /// The answer of the finished upload.
    done: Option<ApiReply>,
    serial: u64,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Uploads")
    }
}

#[derive(Default)]
pub(crate) struct Uploads {
    sessions: Mutex<HashMap<String, Session>>,
    serial: AtomicU64,
    /// `/_sim/uploads/break?chunk=N`: the Nth chunk PUT from then breaks.
    break_countdown: Mutex<Option<u64>>,
    opened: AtomicU64,
    chunks: AtomicU64,
    broken: AtomicU64,
    status_queries: AtomicU64,
    completed: AtomicU64,
}

/// What a PUT to a session comes to.
pub(crate) enum Put {
    /// Answer this (308, 4xx, or a finished session's stored answer).
    Reply(ApiReply),
    /// The upload is complete: serve `body` (the JSON form) at `target` as
    /// `authorization`, and give the answer to [`Uploads::finish`].
    Complete {
        target: String,
        body: Vec<u8>,
        authorization: Option<String>,
    },
    /// Break the connection (the chunk was partly kept).
    Break,
}

/// `Content-Range: bytes A-B/T`, `bytes */T`, `bytes A-B/*`.
struct Range {
    span: Option<(usize, usize)>,
    total: Option<usize>,
}

fn parse_range(v: &str) -> Option<Range> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<usize>().ok()?),
    };
    let span = match span.trim() {
        "*" => None,
        s => {
            let (a, b) = s.split_once('-')?;
            let (a, b) = (
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            );
            if b < a {
                return None;
            }
            Some((a, b))
        }
    };
    Some(Range { span, total })
}

fn incomplete(kept: usize) -> ApiReply {
    let mut r = ApiReply {
        status: 308,
        body: None,
        headers: Vec::new(),
        page: None,
    };
    if kept > 0 {
        r.headers.push(("Range", format!("bytes=0-{}", kept - 1)));
    }
    r
}

fn too_large(len: usize) -> ApiReply {
    errors::google_error(
        413,
        "INVALID_ARGUMENT",
        "global",
        "uploadTooLarge",
        &format!("Media larger than the maximum size of {MAX_SIZE} bytes ({len} bytes)."),
    )
}

impl Uploads {
    /// Open a session for the upload at `target` (`/gmail/v1/...`, the
    /// uploadType dropped), `body` its JSON metadata. Answers the session's
    /// URI, relative to the server (the caller makes it absolute).
    pub(crate) fn open(
        &self,
        target: &str,
        body: &[u8],
        declared_len: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<String, ApiReply> {
        let meta: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| errors::bad_request(&format!("Invalid JSON payload received. {e}")))?
        };
        if !meta.is_object() {
            return Err(errors::bad_request(
                "The metadata of a resumable upload must be a JSON object",
            ));
        }
        let total = match declared_len {
            None => None,
            Some(s) => Some(s.trim().parse::<usize>().map_err(|_| {
                errors::bad_request(&format!("Invalid X-Upload-Content-Length: {s:?}"))
            })?),
        };
        if let Some(t) = total.filter(|t| *t > MAX_SIZE) {
            return Err(too_large(t));
        }
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let id = format!("sim{serial:08x}{:08x}", rand::random::<u32>());
        let mut sessions = self.sessions.lock().unwrap();
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.serial)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                target: target.to_string(),
                meta,
                total,
                received: Vec::new(),
                authorization: authorization.map(String::from),
                done: None,
                serial,
            },
        );
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// A PUT (or POST) of `body` to session `id`.
    pub(crate) fn put(
        &self,
        id: &str,
        content_range: Option<&str>,
        body: &[u8],
        authorization: Option<&str>,
        reset: bool,
    ) -> Put {
        let mut sessions = self.sessions.lock().unwrap();
        let Some(s) = sessions.get_mut(id) else {
            return Put::Reply(errors::google_error(
                404,
                "NOT_FOUND",
                "global",
                "notFound",
                "No such upload session (it expired or never was).",
            ));
        };
        if let Some(done) = &s.done {
            return Put::Reply(done.clone());
        }
        let range = match content_range {
            None => Range {
                span: (!body.is_empty()).then(|| (0, body.len() - 1)),
                total: Some(body.len()),
            },
            Some(v) => match parse_range(v) {
                Some(r) => r,
                None => {
                    return Put::Reply(errors::bad_request(&format!(
                        "Invalid Content-Range: {v:?}"
                    )))
                }
            },
        };
        if let Some(t) = range.total {
            if s.total.is_some_and(|have| have != t) {
                return Put::Reply(errors::bad_request(&format!(
                    "Content-Range total {t} differs from the upload's length {}",
                    s.total.unwrap_or(0)
                )));
            }
            if t > MAX_SIZE {
                return Put::Reply(too_large(t));
            }
            s.total = Some(t);
        }
        match range.span {
            None => {
                // A status query.
                self.status_queries.fetch_add(1, Ordering::Relaxed);
                if !body.is_empty() {
                    return Put::Reply(errors::bad_request(
                        "Content-Range bytes */N carries no body",
                    ));
                }
            }
            Some((a, b)) => {
                self.chunks.fetch_add(1, Ordering::Relaxed);
                if b - a + 1 != body.len() {
                    return Put::Reply(errors::bad_request(&format!(
                        "Content-Range says {} bytes, the body has {}",
                        b - a + 1,
                        body.len()
                    )));
                }
                if a > s.received.len() {
                    return Put::Reply(errors::bad_request(&format!(
                        "Content-Range starts at {a}, after the {} bytes received",
                        s.received.len()
                    )));
                }
                if s.total.is_some_and(|t| b >= t) {
                    return Put::Reply(errors::bad_request("Content-Range ends past the total"));
                }
                // Bytes sent again are taken once.
                let new = &body[s.received.len() - a..];
                let broken = reset || {
                    let mut c = self.break_countdown.lock().unwrap();
                    match c.as_mut() {
                        Some(1) => {
                            *c = None;
                            true
                        }
                        Some(n) => {
                            *n -= 1;
                            false
                        }
                        None => false,
                    }
                };
                if broken {
                    let keep = (new.len() / 2) / UNIT * UNIT;
                    s.received.extend_from_slice(&new[..keep]);
                    self.broken.fetch_add(1, Ordering::Relaxed);
                    return Put::Break;
                }
                let last = s.total == Some(s.received.len() + new.len());
                let keep = if last {
                    new.len()
                } else {
                    new.len() / UNIT * UNIT
                };
                s.received.extend_from_slice(&new[..keep]);
            }
        }
        if s.total != Some(s.received.len()) {
            return Put::Reply(incomplete(s.received.len()));
        }
        use base64::Engine as _;
        let mut meta = s.meta.clone();
        meta["raw"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&s.received));
        Put::Complete {
            target: s.target.clone(),
            body: meta.to_string().into_bytes(),
            authorization: authorization
                .map(String::from)
                .or_else(|| s.authorization.clone()),
        }
    }

    /// Keep the finished upload's answer (a success; an error leaves the
    /// session open to be sent again) and free its bytes.
    pub(crate) fn finish(&self, id: &str, reply: &ApiReply) {
        if !(200..300).contains(&reply.status) {
            return;
        }
        if let Some(s) = self.sessions.lock().unwrap().get_mut(id) {
            s.done = Some(reply.clone());
            s.received = Vec::new();
            self.completed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `/_sim/uploads/break?chunk=N`.
    pub(crate) fn break_chunk(&self, n: u64) {
        *self.break_countdown.lock().unwrap() = (n > 0).then_some(n);
    }

    pub(crate) fn snapshot(&self) -> Value {
        json!({
            "sessions_opened": self.opened.load(Ordering::Relaxed),
            "chunks": self.chunks.load(Ordering::Relaxed),
            "chunks_broken": self.broken.load(Ordering::Relaxed),
            "status_queries": self.status_queries.load(Ordering::Relaxed),
            "completed": self.completed.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(p: Put) -> ApiReply {
        match p {
            Put::Reply(r) => r,
            Put::Complete { .. } => panic!("complete"),
            Put::Break => panic!("break"),
        }
    }

    #[test]
    fn chunks_keep_whole_units_and_a_broken_one_keeps_half() {
        let u = Uploads::default();
        let total = 3 * UNIT + 10;
        let id = u
            .open(
                "/gmail/v1/users/me/messages/import",
                b"{}",
                Some(&total.to_string()),
                None,
            )
            .unwrap();
        let data = vec![b'x'; total];
        // Not a multiple of the unit: only one unit is kept.
        let r = reply(u.put(
            &id,
            Some(&format!("bytes 0-{}/{total}", UNIT + 99)),
            &data[..UNIT + 100],
            None,
            false,
        ));
        assert_eq!(r.status, 308);
        assert_eq!(r.headers, vec![("Range", format!("bytes=0-{}", UNIT - 1))]);
        u.break_chunk(1);
        assert!(matches!(
            u.put(
                &id,
                Some(&format!("bytes {UNIT}-{}/{total}", total - 1)),
                &data[UNIT..],
                None,
                false
            ),
            Put::Break
        ));
        // Half of 2 units + 10, rounded down: one more unit.
        let r = reply(u.put(&id, Some(&format!("bytes */{total}")), b"", None, false));
        assert_eq!(
            r.headers,
            vec![("Range", format!("bytes=0-{}", 2 * UNIT - 1))]
        );
        let done = u.put(
            &id,
            Some(&format!("bytes {}-{}/{total}", 2 * UNIT, total - 1)),
            &data[2 * UNIT..],
            None,
            false,
        );
        let Put::Complete { body, .. } = done else {
            panic!("not complete")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["raw"].as_str().unwrap().len(), (total * 4).div_ceil(3));
        // Ranges that do not fit are 400s, not panics.
        for bad in ["bytes 5-1/10", "bytes x-1/10", "items 0-1/2", "bytes 0-1"] {
            assert!(parse_range(bad).is_none(), "{bad}");
        }
        assert_eq!(reply(u.put("nope", None, b"", None, false)).status, 404);
    }
}
