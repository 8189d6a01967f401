//! One request, or one batch, to Gmail (or the simulator): base URL, user
//! id, bearer token, timeouts, connection reuse, gzip. A 401 on a single
//! call refreshes the token once and resends; batches leave that to the
//! runner, which knows which parts need it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::sync::watch;

use super::backoff::Backoff;
use super::batch::{self, BatchError, Decoder, InnerRequest, InnerResponse};
use super::error::{ApiError, ErrorClass};
use super::request::{ListQuery, Request};
use crate::auth::{Secret, TokenSource};

/// Google's endpoint; the simulator's base URL replaces it in tests.
pub(crate) const GOOGLE_BASE_URL: &str = "https://gmail.googleapis.com";

/// The largest answer body taken, after decompression: one call's answer
/// or one batch part. Gmail's largest message (50 MB, the import limit in
/// the discovery document) is ~67 MB as base64url in JSON; this leaves room
/// for that and refuses an endless or bomb-sized body long before memory
/// runs out.
const MAX_BODY: usize = 96 << 20;

/// Messages larger than this (5 MiB) go as resumable uploads, in chunks;
/// smaller ones as one multipart upload.
const RESUMABLE_ABOVE: usize = 5 << 20;

/// The chunk of a resumable upload: 4 MiB, a multiple of the 256 KiB that
/// Google requires of every chunk but the last.
const UPLOAD_CHUNK: usize = 16 * 256 * 1024;

/// Broken chunk exchanges taken in one upload before it fails as a whole.
const MAX_BROKEN_CHUNKS: u32 = 5;

/// Whether `uri` is on the server `base` (scheme, host and port).
fn same_origin(uri: &str, base: &str) -> bool {
    match (url::Url::parse(uri), url::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Error answers are short; only this much of one is read.
const MAX_ERROR_BODY: usize = 256 << 10;

/// Google refuses URLs much over 8 KB; a longer one is our own mistake
/// (a huge id), to be reported, not sent and retried.
const MAX_URL_LEN: usize = 8 << 10;

/// A listing whose pages come back empty this many times in a row, each
/// with a next-page token, is looping, not paging.
const MAX_EMPTY_PAGES: u32 = 20;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme and host, no trailing slash: `https://gmail.googleapis.com`.
    pub base_url: String,
    /// The mailbox: `me`, or an address a delegated token may act for.
    pub user: String,
    /// No byte for this long, while waiting for an answer or reading one,
    /// ends that exchange as a network error. A whole-exchange limit would
    /// cut a big batch that is still arriving; this one only a stalled one.
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// The longest wait taken before a retry (a server's Retry-After); a
    /// longer one stops the work instead, saying when to come back.
    pub max_wait: Duration,
    /// See [`MAX_BODY`].
    pub max_body: usize,
    /// Said with a refused token (401): where the token came from and what
    /// to do, as the caller knows it. Never the token itself.
    pub auth_hint: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: GOOGLE_BASE_URL.to_string(),
            user: "me".to_string(),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(20),
            max_wait: Duration::from_secs(15 * 60),
            max_body: MAX_BODY,
            auth_hint: None,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    tokens: Arc<dyn TokenSource>,
    token: Mutex<Option<Secret>>,
    /// Turns true on Ctrl-C: a wait before a retry ends at once.
    cancel: Mutex<Option<watch::Receiver<bool>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish()
    }
}

/// A token that could not be had: a refusal stops (class `auth`); a token
/// endpoint out of reach is a network error, retried like any other.
fn auth_error(e: crate::auth::AuthError) -> ApiError {
    if e.transient {
        return ApiError::network(e.message);
    }
    let mut err = ApiError::local(ErrorClass::Auth, "authError", e.message);
    err.status = 401;
    err
}

/// A media upload's body (`uploadType=multipart`): `multipart/related`, the
/// metadata JSON, then the message's bytes untouched. The boundary is
/// random and checked not to occur in the message.
fn upload_body(meta: &Value, raw: &[u8]) -> (String, Vec<u8>) {
    let boundary = loop {
        let b = format!("gmailscript_{:032x}", rand::random::<u128>());
        if memchr::memmem::find(raw, b.as_bytes()).is_none() {
            break b;
        }
    };
    let mut body = Vec::with_capacity(raw.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(raw);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; boundary={boundary}"), body)
}

/// An error answer: its status, Retry-After and body as one [`ApiError`]
/// (a body that breaks off is a network error).
async fn error_answer(resp: reqwest::Response) -> ApiError {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    match read_body(resp, MAX_ERROR_BODY, true).await {
        Ok(body) => ApiError::from_response(status, retry_after.as_deref(), &body),
        Err(e) => e,
    }
}

/// An answer's body, decompressed, at most `limit` bytes. Past the limit
/// it is refused (`malformed`), or, with `cut`, its first `limit` bytes
/// kept (enough of an error page to say what it was).
async fn read_body(resp: reqwest::Response, limit: usize, cut: bool) -> Result<Bytes, ApiError> {
    let mut stream = resp.bytes_stream();
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| network_error(&e))?;
        if body.len().saturating_add(chunk.len()) > limit {
            if cut {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn too_large(limit: usize) -> ApiError {
    ApiError::malformed(format!(
        "the answer is larger than {} MiB, more than any Gmail message; not read further",
        limit >> 20
    ))
}

/// When a wait of `d` from now ends, as a person reads it.
pub(crate) fn wall_time_after(d: Duration) -> String {
    let at = SystemTime::now()
        .checked_add(d)
        .unwrap_or_else(|| SystemTime::now() + super::error::MAX_RETRY_AFTER);
    chrono::DateTime::<chrono::Local>::from(at)
        .format("%Y-%m-%d %H:%M %:z")
        .to_string()
}

/// A wait longer than `max_wait` that `cause` asked for: the work stops
/// here; the error says when to come back.
pub(crate) fn wait_too_long(cause: &ApiError, wait: Duration, max_wait: Duration) -> ApiError {
    let mut e = cause.clone();
    e.diagnosis = Some(format!(
        "Gmail asks to wait until {} ({}), longer than --max-wait {}; run again then",
        wall_time_after(wait),
        human(wait),
        human(max_wait)
    ));
    e
}

/// `90s` → `1m30s`, `3h`, `2d4h`: a duration as a person reads it.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (dd, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(dd, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out = format!("{}ms", d.as_millis());
    }
    out
}

/// A transport failure, described without the URL's query (which may hold
/// user data) and never with headers.
fn network_error(e: &reqwest::Error) -> ApiError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the answer"
    } else if e.is_builder() {
        // Made here, not by the network: it would fail the same way again.
        return ApiError::invalid(format!("cannot build the request: {e}"));
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    ApiError::network(if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    })
}

impl Client {
    pub fn new(config: ClientConfig, tokens: Arc<dyn TokenSource>) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .read_timeout(config.idle_timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .gzip(true)
            .user_agent(concat!(
                "gmailscript/",
                env!("CARGO_PKG_VERSION"),
                " (gzip)"
            ))
            .build()
            .map_err(|e| ApiError::network(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            config: ClientConfig {
                base_url: config.base_url.trim_end_matches('/').to_string(),
                ..config
            },
            tokens,
            token: Mutex::new(None),
            cancel: Mutex::new(None),
        })
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Ctrl-C: `cancel` turning true ends any wait before a retry at once.
    pub(crate) fn watch_cancel(&self, cancel: watch::Receiver<bool>) {
        *self.cancel.lock().unwrap() = Some(cancel);
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|c| *c.borrow())
    }

    /// A client of mailbox `user` with the same server, connections and
    /// credentials: a service account mints tokens for `user` as its
    /// subject; one user's token is sent as it is (Gmail then answers 403
    /// unless that token may act for `user`).
    pub(crate) async fn for_user(&self, user: &str) -> Result<Client, ApiError> {
        let (tokens, token) = match self.tokens.for_subject(user).await {
            Some(Ok(t)) => (t, None),
            Some(Err(e)) => return Err(auth_error(e)),
            None => (self.tokens.clone(), self.token.lock().unwrap().clone()),
        };
        Ok(Client {
            http: self.http.clone(),
            config: ClientConfig {
                user: user.to_string(),
                ..self.config.clone()
            },
            tokens,
            token: Mutex::new(token),
            cancel: Mutex::new(self.cancel.lock().unwrap().clone()),
        })
    }

    /// Wait `d` before retrying what failed with `cause`: at most
    /// `max_wait` (longer: [`wait_too_long`]), and not past a Ctrl-C.
    pub(crate) async fn wait_to_retry(
        &self,
        d: Duration,
        cause: &ApiError,
    ) -> Result<(), ApiError> {
        if d > self.config.max_wait {
            return Err(wait_too_long(cause, d, self.config.max_wait));
        }
        let cancel = self.cancel.lock().unwrap().clone();
        let Some(mut cancel) = cancel else {
            tokio::time::sleep(d).await;
            return Ok(());
        };
        if *cancel.borrow() {
            return Err(cancelled(cause));
        }
        tracing::debug!("waiting {:.1}s to retry after: {cause}", d.as_secs_f64());
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = cancel.wait_for(|c| *c) => Err(cancelled(cause)),
        }
    }

    /// A request this side must not send: a bad HTTP method, a path that
    /// climbs out of `users/{user}/`, a URL longer than Google takes. The
    /// error is `invalid` (never retried).
    pub(crate) fn check(&self, req: &Request) -> Result<(), ApiError> {
        if reqwest::Method::from_bytes(req.verb.as_bytes()).is_err() {
            return Err(ApiError::invalid(format!("bad HTTP method {:?}", req.verb)));
        }
        let climbs = req.path.split('/').any(|seg| {
            let seg = seg.to_ascii_lowercase().replace("%2e", ".");
            seg == ".." || seg == "."
        });
        if climbs || req.path.contains('\\') || req.path.to_ascii_lowercase().contains("%2f") {
            return Err(ApiError::invalid(format!(
                "the path {:?} leaves users/{{user}}/ (no '.', '..' or encoded '/' segments)",
                cut(&req.path, 60)
            )));
        }
        if let Some(media) = &req.media {
            if media.len() > super::request::MAX_UPLOAD {
                return Err(ApiError::invalid(format!(
                    "the message is {} bytes, more than Gmail's import limit of {} bytes (150 MiB, mediaUpload.maxSize)",
                    media.len(),
                    super::request::MAX_UPLOAD
                )));
            }
        }
        let len = self.config.base_url.len() + req.path_and_query(&self.config.user).len();
        if len > MAX_URL_LEN {
            return Err(ApiError::invalid(format!(
                "the request URL would be {len} bytes, more than Gmail takes ({MAX_URL_LEN}); \
                 an id or query that long is not Gmail's"
            )));
        }
        Ok(())
    }

    /// A refused token (401) says, as its diagnosis, where it came from
    /// and what to do (`auth_hint`); other errors are left as they are.
    pub(crate) fn explain(&self, mut e: ApiError) -> ApiError {
        if e.class == ErrorClass::Auth && e.status == 401 && e.diagnosis.is_none() {
            e.diagnosis = self.config.auth_hint.clone();
        }
        e
    }

    /// The token to send now.
    pub(crate) async fn token(&self) -> Result<Secret, ApiError> {
        if let Some(t) = self.token.lock().unwrap().clone() {
            return Ok(t);
        }
        let t = self.tokens.token().await.map_err(auth_error)?;
        *self.token.lock().unwrap() = Some(t.clone());
        Ok(t)
    }

    /// `stale` drew a 401: a fresh token, fetched once however many parts
    /// saw the 401 (a later caller with the same stale token gets the new
    /// one without another refresh).
    pub(crate) async fn refresh(&self, stale: &Secret) -> Result<Secret, ApiError> {
        if let Some(t) = self.token.lock().unwrap().clone() {
            if &t != stale {
                return Ok(t);
            }
        }
        let t = self.tokens.refresh(stale).await.map_err(auth_error)?;
        *self.token.lock().unwrap() = Some(t.clone());
        Ok(t)
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.config.base_url, path_and_query)
    }

    /// One call. 401 refreshes the token once and resends; any other error
    /// answer becomes an [`ApiError`] (no retry here: that is policy).
    pub(crate) async fn call(&self, req: &Request) -> Result<Bytes, ApiError> {
        self.check(req)?;
        let mut token = self.token().await?;
        let mut refreshed = false;
        loop {
            match self.call_once(req, &token).await {
                Err(e) if e.class == ErrorClass::Auth && e.status == 401 && !refreshed => {
                    let fresh = self.refresh(&token).await?;
                    if fresh == token {
                        return Err(self.explain(e));
                    }
                    token = fresh;
                    refreshed = true;
                }
                other => return other.map_err(|e| self.explain(e)),
            }
        }
    }

    /// A GET of `path_and_query` under the base URL, outside
    /// `gmail/v1/users/{user}/` (the Admin SDK Directory), as JSON; a 401
    /// refreshes the token once, as `call` does.
    pub(crate) async fn get_json_at(&self, path_and_query: &str) -> Result<Value, ApiError> {
        let mut token = self.token().await?;
        let mut refreshed = false;
        loop {
            let resp = self
                .http
                .get(self.url(path_and_query))
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| network_error(&e))?;
            if resp.status().is_success() {
                return parse_json(&read_body(resp, self.config.max_body, false).await?);
            }
            let e = error_answer(resp).await;
            if e.class == ErrorClass::Auth && e.status == 401 && !refreshed {
                let fresh = self.refresh(&token).await?;
                if fresh != token {
                    token = fresh;
                    refreshed = true;
                    continue;
                }
            }
            return Err(self.explain(e));
        }
    }

    /// One call, parsed as JSON (`{}` for an empty answer such as 204).
    pub async fn call_json(&self, req: &Request) -> Result<Value, ApiError> {
        parse_json(&self.call(req).await?)
    }

    /// One call with `token` as it is (a 401 is the caller's to handle):
    /// how the runner sends what cannot go in a batch (media uploads).
    pub(crate) async fn send_one(&self, req: &Request, token: &Secret) -> Result<Bytes, ApiError> {
        self.check(req)?;
        self.call_once(req, token)
            .await
            .map_err(|e| self.explain(e))
    }

    async fn call_once(&self, req: &Request, token: &Secret) -> Result<Bytes, ApiError> {
        let method = reqwest::Method::from_bytes(req.verb.as_bytes())
            .map_err(|_| ApiError::invalid(format!("bad HTTP method {}", req.verb)))?;
        if let Some(media) = req.media.as_ref().filter(|m| m.len() > RESUMABLE_ABOVE) {
            return self.resumable(req, token, media).await;
        }
        let target = match &req.media {
            Some(_) => req.upload_path_and_query(&self.config.user),
            None => req.path_and_query(&self.config.user),
        };
        let mut rb = self
            .http
            .request(method, self.url(&target))
            .bearer_auth(token.expose());
        if let Some(media) = &req.media {
            let meta = req.body.clone().unwrap_or_else(|| serde_json::json!({}));
            let (content_type, body) = upload_body(&meta, media);
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        } else if let Some(body) = &req.body {
            rb = rb.json(body);
        }
        let started = std::time::Instant::now();
        let resp = rb.send().await.map_err(|e| network_error(&e))?;
        tracing::debug!(
            "{} {} -> {} in {}ms",
            req.verb,
            req.path_and_query(&self.config.user),
            resp.status().as_u16(),
            started.elapsed().as_millis()
        );
        if !resp.status().is_success() {
            return Err(error_answer(resp).await);
        }
        read_body(resp, self.config.max_body, false).await
    }

    /// A resumable upload (`uploadType=resumable`): open a session with the
    /// metadata, then PUT the bytes in [`UPLOAD_CHUNK`]s. A chunk whose
    /// exchange breaks (or meets a 5xx) is not sent again blindly: the
    /// session is asked where it stands (`Content-Range: bytes */TOTAL`)
    /// and the upload goes on from the offset it reports. A session that
    /// is gone (404, 410) is a network error, so the whole import is sent
    /// again by the caller's retry.
    async fn resumable(
        &self,
        req: &Request,
        token: &Secret,
        media: &Bytes,
    ) -> Result<Bytes, ApiError> {
        let total = media.len();
        let meta = req.body.clone().unwrap_or_else(|| serde_json::json!({}));
        let open = format!(
            "/upload{}&uploadType=resumable",
            req.path_and_query(&self.config.user)
        );
        let resp = self
            .http
            .post(self.url(&open))
            .bearer_auth(token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=UTF-8",
            )
            .header("X-Upload-Content-Type", "message/rfc822")
            .header("X-Upload-Content-Length", total.to_string())
            .body(meta.to_string())
            .send()
            .await
            .map_err(|e| network_error(&e))?;
        if !resp.status().is_success() {
            return Err(error_answer(resp).await);
        }
        let session = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| {
                ApiError::network(
                    "the resumable upload was opened without a session URI (no Location)",
                )
            })?;
        // The session URI is sent the token: only if it is the server asked.
        if !same_origin(&session, &self.config.base_url) {
            return Err(ApiError::invalid(format!(
                "the upload session URI is on another server than {}; not sending the token there",
                self.config.base_url
            )));
        }
        let mut offset = 0usize;
        let mut ask = false;
        let mut broken = 0u32;
        let exchanges = total.div_ceil(UPLOAD_CHUNK) * 3 + 2 * MAX_BROKEN_CHUNKS as usize;
        for _ in 0..exchanges {
            let rb = self.http.put(&session).bearer_auth(token.expose());
            let rb = if ask {
                rb.header(reqwest::header::CONTENT_RANGE, format!("bytes */{total}"))
                    .body(Vec::new())
            } else {
                let end = (offset + UPLOAD_CHUNK).min(total);
                rb.header(
                    reqwest::header::CONTENT_RANGE,
                    format!("bytes {offset}-{}/{total}", end - 1),
                )
                .body(media.slice(offset..end))
            };
            let failed = match rb.send().await {
                Err(e) => network_error(&e),
                Ok(resp) => match resp.status().as_u16() {
                    200 | 201 => return read_body(resp, self.config.max_body, false).await,
                    308 => {
                        let range = resp
                            .headers()
                            .get(reqwest::header::RANGE)
                            .and_then(|v| v.to_str().ok());
                        let kept = match range {
                            None => 0,
                            Some(r) => r
                                .strip_prefix("bytes=0-")
                                .and_then(|n| n.trim().parse::<usize>().ok())
                                .and_then(|n| n.checked_add(1))
                                .filter(|k| *k <= total)
                                .ok_or_else(|| {
                                    ApiError::network(format!(
                                        "the upload session answered a Range that is not of this upload: {:?}",
                                        cut(r, 60)
                                    ))
                                })?,
                        };
                        offset = kept;
                        // Everything kept but no answer yet: ask again.
                        ask = kept == total;
                        continue;
                    }
                    404 | 410 => {
                        return Err(ApiError::network(format!(
                            "the upload session is gone (HTTP {}); the message is sent again",
                            resp.status().as_u16()
                        )))
                    }
                    s if s >= 500 => error_answer(resp).await,
                    _ => return Err(error_answer(resp).await),
                },
            };
            broken += 1;
            if broken > MAX_BROKEN_CHUNKS {
                return Err(failed);
            }
            tracing::debug!(
                "upload of {total} bytes broke at {offset} ({failed}); asking the session where it stands"
            );
            self.wait_to_retry(Duration::from_millis(100 << broken.min(6)), &failed)
                .await?;
            ask = true;
        }
        Err(ApiError::network(format!(
            "the resumable upload of {total} bytes did not finish in {exchanges} exchanges"
        )))
    }

    /// Send one batch; its answer is read part by part from the returned
    /// stream as it arrives. An error here concerns the whole batch.
    pub(crate) async fn send_batch(
        &self,
        requests: &[(String, &Request)],
        token: &Secret,
    ) -> Result<BatchStream, ApiError> {
        let inner: Vec<InnerRequest> = requests
            .iter()
            .map(|(id, r)| InnerRequest {
                content_id: id.clone(),
                verb: r.verb,
                path_and_query: r.path_and_query(&self.config.user),
                json_body: r.body.as_ref().map(|b| b.to_string().into_bytes()),
            })
            .collect();
        let (content_type, body) =
            batch::encode(&inner).map_err(|e| ApiError::invalid(e.to_string()))?;
        let started = std::time::Instant::now();
        let resp = self
            .http
            .post(self.url("/batch/gmail/v1"))
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| network_error(&e))?;
        tracing::debug!(
            "POST /batch/gmail/v1 ({} calls) -> {} in {}ms",
            requests.len(),
            resp.status().as_u16(),
            started.elapsed().as_millis()
        );
        if resp.status().as_u16() != 200 {
            return Err(self.explain(error_answer(resp).await));
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let decoder = Decoder::new(&ct)
            .map_err(|e| ApiError::network(e.to_string()))?
            .with_max_part_len(self.config.max_body);
        Ok(BatchStream {
            body: Box::pin(resp.bytes_stream()),
            decoder,
            ended: false,
        })
    }

    /// Every message id a query matches, page by page as the consumer pulls
    /// (memory stays at one page). Transient errors are retried with
    /// `backoff`; others end the stream with that error.
    pub fn list_messages(
        self: &Arc<Self>,
        query: ListQuery,
        backoff: Backoff,
    ) -> impl Stream<Item = Result<MessageRef, ApiError>> + Send + 'static {
        let client = self.clone();
        let mut seen = SeenIds::default();
        let pages = paged(move |token| {
            let (client, query, backoff) = (client.clone(), query.clone(), backoff.clone());
            async move {
                let page = client
                    .call_json_retrying(&Request::list_messages(&query, token.as_deref()), &backoff)
                    .await?;
                let refs = page["messages"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| {
                                Some(MessageRef {
                                    id: m["id"].as_str()?.to_string(),
                                    thread_id: m["threadId"].as_str().unwrap_or("").to_string(),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Ok((refs, page["nextPageToken"].as_str().map(String::from)))
            }
        });
        // A listing never hands out an id twice, whatever the pages say.
        pages.filter(move |r| {
            futures_util::future::ready(match r {
                Ok(m) => seen.insert(&m.id),
                Err(_) => true,
            })
        })
    }

    /// A call retried on rate, server and network errors; the raw answer.
    /// Waits are bounded by `max_wait` and end on Ctrl-C.
    pub(crate) async fn call_retrying(
        &self,
        req: &Request,
        backoff: &Backoff,
    ) -> Result<Bytes, ApiError> {
        let mut retry = 0;
        loop {
            match self.call(req).await {
                Err(e) if e.is_retryable_by_default() && !self.cancelled() => {
                    retry += 1;
                    match backoff.delay(retry, e.retry_after) {
                        Some(d) => self.wait_to_retry(d, &e).await?,
                        None => return Err(e),
                    }
                }
                other => return other,
            }
        }
    }

    /// A call retried on rate, server and network errors, parsed as JSON.
    pub async fn call_json_retrying(
        &self,
        req: &Request,
        backoff: &Backoff,
    ) -> Result<Value, ApiError> {
        let body = self.call_retrying(req, backoff).await?;
        parse_json(&body)
    }
}

/// An answer body as JSON (`{}` for an empty answer such as 204). One that
/// is not JSON is `malformed`.
fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("answer is not JSON: {e}")))
}

/// Ctrl-C ended the wait before a retry of what failed with `cause`.
fn cancelled(cause: &ApiError) -> ApiError {
    let mut e = ApiError::local(
        ErrorClass::Network,
        "cancelled",
        format!("cancelled (Ctrl-C) while waiting to retry after: {cause}"),
    );
    e.retry_after = cause.retry_after;
    e
}

/// At most `n` characters of `s`, for error messages.
fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Message ids seen by one listing. Gmail's ids are 16 hex digits, kept
/// as the number they spell (8 bytes each, exact); any other id as text.
#[derive(Default)]
struct SeenIds {
    hex: HashSet<u64>,
    other: HashSet<Box<str>>,
}

impl SeenIds {
    /// True the first time `id` is seen.
    fn insert(&mut self, id: &str) -> bool {
        match u64::from_str_radix(id, 16) {
            // Only the canonical spelling, so "0a" and "a" stay two ids.
            Ok(n) if id.len() == 16 && id.bytes().all(|b| !b.is_ascii_uppercase()) => {
                self.hex.insert(n)
            }
            _ => self.other.insert(id.into()),
        }
    }
}

/// Stops a listing that loops: a page token it was given before, or
/// [`MAX_EMPTY_PAGES`] empty pages in a row that each promise more.
#[derive(Default)]
pub(crate) struct PageGuard {
    tokens: HashSet<String>,
    empty_run: u32,
    pages: u64,
}

impl PageGuard {
    /// Judge one page (`items` on it, then `next`) before following `next`.
    pub(crate) fn check(
        &mut self,
        what: &str,
        items: usize,
        next: Option<&str>,
    ) -> Result<(), ApiError> {
        self.pages += 1;
        self.empty_run = if items == 0 { self.empty_run + 1 } else { 0 };
        let Some(next) = next else { return Ok(()) };
        if !self.tokens.insert(next.to_string()) {
            return Err(ApiError::malformed(format!(
                "{what}: page {} gives a page token already followed ({}); the server's paging \
                 loops, so the listing stops here",
                self.pages,
                cut(next, 40)
            )));
        }
        if self.empty_run >= MAX_EMPTY_PAGES {
            return Err(ApiError::malformed(format!(
                "{what}: {} empty pages in a row, each promising more; the server's paging \
                 loops, so the listing stops here",
                self.empty_run
            )));
        }
        Ok(())
    }
}

/// history.list's own failure: a start too old is not an error to retry
/// but a signal to fall back to a full listing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HistoryError {
    #[error("history from {0} is no longer kept (404): a full sync is needed")]
    TooOld(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl Client {
    /// One page of history.list from `start`. A 404 (the start is older
    /// than the history Gmail keeps) is [`HistoryError::TooOld`].
    pub async fn history_page(
        &self,
        start: &str,
        page_token: Option<&str>,
        backoff: &Backoff,
    ) -> Result<Value, HistoryError> {
        match self
            .call_json_retrying(&Request::list_history(start, page_token), backoff)
            .await
        {
            Err(e) if e.class == ErrorClass::NotFound => {
                Err(HistoryError::TooOld(start.to_string()))
            }
            other => Ok(other?),
        }
    }
}

/// A message's id and thread, as messages.list gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub id: String,
    pub(crate) thread_id: String,
}

type PageFuture<T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(Vec<T>, Option<String>), ApiError>> + Send>,
>;

/// A stream over paged results: `fetch(page_token)` gives one page's items
/// and the next token. Pages are fetched only as items are consumed.
fn paged<T, F, Fut>(fetch: F) -> impl Stream<Item = Result<T, ApiError>> + Send + 'static
where
    T: Send + 'static,
    F: Fn(Option<String>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), ApiError>> + Send + 'static,
{
    enum State<T> {
        Start,
        Page(std::vec::IntoIter<T>, Option<String>),
        Done,
    }
    let fetch = Arc::new(move |t: Option<String>| -> PageFuture<T> { Box::pin(fetch(t)) });
    let guard = Arc::new(Mutex::new(PageGuard::default()));
    // Each page is judged before its next token is followed.
    let fetch = move |t: Option<String>| -> PageFuture<T> {
        let (fetch, guard) = (fetch.clone(), guard.clone());
        Box::pin(async move {
            let (items, next) = fetch(t).await?;
            guard
                .lock()
                .unwrap()
                .check("messages.list", items.len(), next.as_deref())?;
            Ok((items, next))
        })
    };
    let fetch = Arc::new(fetch);
    futures_util::stream::unfold(State::Start, move |mut state| {
        let fetch = fetch.clone();
        async move {
            loop {
                match state {
                    State::Done => return None,
                    State::Page(mut items, next) => match items.next() {
                        Some(item) => return Some((Ok(item), State::Page(items, next))),
                        None => match next {
                            Some(token) => match fetch(Some(token)).await {
                                Ok((items, next)) => state = State::Page(items.into_iter(), next),
                                Err(e) => return Some((Err(e), State::Done)),
                            },
                            None => return None,
                        },
                    },
                    State::Start => match fetch(None).await {
                        Ok((items, next)) => state = State::Page(items.into_iter(), next),
                        Err(e) => return Some((Err(e), State::Done)),
                    },
                }
            }
        }
    })
}

/// The parts of a batch answer, in the order they arrive.
pub(crate) struct BatchStream {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    decoder: Decoder,
    ended: bool,
}

impl BatchStream {
    /// The next complete part; a malformed part comes as `Err` with its
    /// index (the batch goes on); `None` when the answer ended. If it ended
    /// early (reset, truncation), the last item is `Err(Broken)`.
    pub(crate) async fn next_part(&mut self) -> Option<Result<InnerResponse, PartError>> {
        loop {
            match self.decoder.next_part() {
                Ok(Some(p)) => return Some(Ok(p)),
                Err(BatchError::Malformed { index, reason }) => {
                    return Some(Err(PartError::Malformed { index, reason }))
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(PartError::Broken(ApiError::network(e.to_string()))));
                }
                Ok(None) if self.ended => return None,
                // The closing delimiter came: whatever follows is not read.
                Ok(None) if self.decoder.is_done() => {
                    self.ended = true;
                    return None;
                }
                Ok(None) => {}
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.decoder.push(&chunk),
                Some(Err(e)) => {
                    self.ended = true;
                    return Some(Err(PartError::Broken(network_error(&e))));
                }
                None => {
                    self.ended = true;
                    // Drain what is complete before judging the end.
                    if let Ok(Some(p)) = self.decoder.next_part() {
                        return Some(Ok(p));
                    }
                    return match self.decoder.finish() {
                        Ok(()) => None,
                        Err(e) => Some(Err(PartError::Broken(ApiError::network(e.to_string())))),
                    };
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum PartError {
    /// One part could not be read (the `index`th of the answer); the
    /// others go on.
    Malformed { index: usize, reason: &'static str },
    /// The answer broke off: parts not yet delivered never will be.
    Broken(ApiError),
}
