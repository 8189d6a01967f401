//! One request, or one batch, to Gmail (or the simulator): base URL, user
//! id, bearer token, timeouts, connection reuse, gzip. A 401 on a single
//! call refreshes the token once and resends; batches leave that to the
//! runner, which knows which parts need it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::backoff::Backoff;
use super::batch::{self, BatchError, Decoder, InnerRequest, InnerResponse};
use super::error::{ApiError, ErrorClass};
use super::request::{ListQuery, Request};
use crate::auth::{Secret, TokenSource};

/// Google's endpoint; the simulator's base URL replaces it in tests.
pub const GOOGLE_BASE_URL: &str = "https://gmail.googleapis.com";

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme and host, no trailing slash: `https://gmail.googleapis.com`.
    pub base_url: String,
    /// The mailbox: `me`, or an address a delegated token may act for.
    pub user: String,
    /// Whole-exchange timeout (a batch of 50 raw messages can be large).
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: GOOGLE_BASE_URL.to_string(),
            user: "me".to_string(),
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(20),
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    tokens: Arc<dyn TokenSource>,
    token: Mutex<Option<Secret>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish()
    }
}

fn auth_error(e: crate::auth::AuthError) -> ApiError {
    ApiError {
        status: 401,
        reason: "authError".into(),
        message: e.0,
        class: ErrorClass::Auth,
        retry_after: None,
        diagnosis: None,
    }
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
    match resp.bytes().await {
        Ok(body) => ApiError::from_response(status, retry_after.as_deref(), &body),
        Err(e) => network_error(&e),
    }
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
            .timeout(config.timeout)
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
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The token to send now.
    pub async fn token(&self) -> Result<Secret, ApiError> {
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
    pub async fn refresh(&self, stale: &Secret) -> Result<Secret, ApiError> {
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
    pub async fn call(&self, req: &Request) -> Result<Bytes, ApiError> {
        let mut token = self.token().await?;
        let mut refreshed = false;
        loop {
            match self.call_once(req, &token).await {
                Err(e) if e.class == ErrorClass::Auth && e.status == 401 && !refreshed => {
                    let fresh = self.refresh(&token).await?;
                    if fresh == token {
                        return Err(e);
                    }
                    token = fresh;
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    /// One call, parsed as JSON (`{}` for an empty answer such as 204).
    pub async fn call_json(&self, req: &Request) -> Result<Value, ApiError> {
        parse_json(&self.call(req).await?)
    }

    async fn call_once(&self, req: &Request, token: &Secret) -> Result<Bytes, ApiError> {
        let method = reqwest::Method::from_bytes(req.http_method.as_bytes())
            .map_err(|_| ApiError::network(format!("bad HTTP method {}", req.http_method)))?;
        let mut rb = self
            .http
            .request(method, self.url(&req.path_and_query(&self.config.user)))
            .bearer_auth(token.expose());
        if let Some(body) = &req.body {
            rb = rb.json(body);
        }
        let resp = rb.send().await.map_err(|e| network_error(&e))?;
        if !resp.status().is_success() {
            return Err(error_answer(resp).await);
        }
        resp.bytes().await.map_err(|e| network_error(&e))
    }

    /// Send one batch; its answer is read part by part from the returned
    /// stream as it arrives. An error here concerns the whole batch.
    pub async fn send_batch(
        &self,
        requests: &[(String, &Request)],
        token: &Secret,
    ) -> Result<BatchStream, ApiError> {
        let inner: Vec<InnerRequest> = requests
            .iter()
            .map(|(id, r)| InnerRequest {
                content_id: id.clone(),
                method: r.http_method,
                path_and_query: r.path_and_query(&self.config.user),
                json_body: r.body.as_ref().map(|b| b.to_string().into_bytes()),
            })
            .collect();
        let (content_type, body) = batch::encode(&inner).map_err(|e| ApiError {
            status: 0,
            reason: "invalidRequest".into(),
            message: e.to_string(),
            class: ErrorClass::Invalid,
            retry_after: None,
            diagnosis: None,
        })?;
        let resp = self
            .http
            .post(self.url("/batch/gmail/v1"))
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| network_error(&e))?;
        if resp.status().as_u16() != 200 {
            return Err(error_answer(resp).await);
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let decoder = Decoder::new(&ct).map_err(|e| ApiError::network(e.to_string()))?;
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
        paged(move |token| {
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
        })
    }

    /// A call retried on rate, server and network errors; the raw answer.
    pub async fn call_retrying(&self, req: &Request, backoff: &Backoff) -> Result<Bytes, ApiError> {
        let mut retry = 0;
        loop {
            match self.call(req).await {
                Err(e) if e.is_retryable_by_default() => {
                    retry += 1;
                    match backoff.delay(retry, e.retry_after) {
                        Some(d) => tokio::time::sleep(d).await,
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

/// An answer body as JSON (`{}` for an empty answer such as 204).
fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::network(format!("answer is not JSON: {e}")))
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
    pub thread_id: String,
}

type PageFuture<T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(Vec<T>, Option<String>), ApiError>> + Send>,
>;

/// A stream over paged results: `fetch(page_token)` gives one page's items
/// and the next token. Pages are fetched only as items are consumed.
pub fn paged<T, F, Fut>(fetch: F) -> impl Stream<Item = Result<T, ApiError>> + Send + 'static
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
pub struct BatchStream {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    decoder: Decoder,
    ended: bool,
}

/// Why a batch answer stopped before all its parts arrived.
#[derive(Debug, Clone)]
pub struct BrokenBatch(pub ApiError);

impl BatchStream {
    /// The next complete part; a malformed part comes as `Err` with its
    /// index (the batch goes on); `None` when the answer ended. If it ended
    /// early (reset, truncation), the last item is `Err(Broken)`.
    pub async fn next_part(&mut self) -> Option<Result<InnerResponse, PartError>> {
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
pub enum PartError {
    /// One part could not be read; the others go on.
    Malformed { index: usize, reason: &'static str },
    /// The answer broke off: parts not yet delivered never will be.
    Broken(ApiError),
}
