//! HTTP/1.1 front of the simulator (hyper): routes requests to the REST
//! calls, the batch endpoint, the OAuth endpoints and the `/_sim` admin
//! API, and injects connection-level faults (reset, truncate, slow). It
//! also does what Google's front end does around every call: gzip when the
//! client asks the way Google documents, `X-HTTP-Method-Override`, HTML
//! pages for 502 and 504, and resets during an `--outage`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::api::{self, Call, Prepared};
use super::batch::{self, PartReply};
use super::errors::{self, ApiReply};
use super::faults::{Fault, Scope};
use super::{Sim, SimConfig, SimError};

type Body = BoxBody<Bytes, std::io::Error>;

/// Largest request body accepted (a batch of 100 modify calls is far less).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// A running simulator. `stop` ends it; dropping it ends it too.
pub struct SimHandle {
    /// e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub base_url: String,
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// Stop accepting, close every connection, and wait until done.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Build the mailboxes and start serving on 127.0.0.1.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let port = config.port;
    let sim = Arc::new(
        tokio::task::spawn_blocking(move || Sim::new(config))
            .await
            .map_err(|e| SimError::Config(format!("simulator set-up panicked: {e}")))??,
    );
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| SimError::Bind { port, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { port, source })?;
    let base_url = format!("http://{addr}");
    let _ = sim.base_url.set(base_url.clone());
    let _ = sim.serving_since.set(std::time::Instant::now());
    let (tx, mut rx) = oneshot::channel();
    let served = sim.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        let mut mail = served.config.deliver_every.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        loop {
            tokio::select! {
                _ = &mut rx => break,
                _ = async { mail.as_mut().expect("guarded").tick().await }, if mail.is_some() => {
                    deliver_to_default_user(&served);
                }
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let sim = served.clone();
                    conns.spawn(async move {
                        let svc = service_fn(move |req| serve(sim.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.shutdown().await;
    });
    Ok(SimHandle {
        base_url,
        addr,
        sim,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// `--deliver-every`: one new message for the default user.
fn deliver_to_default_user(sim: &Sim) {
    let Some(user) = sim.user(sim.default_user()).filter(|u| u.gmail) else {
        return;
    };
    let mut mb = sim.mailbox(&user).write().unwrap();
    let now = sim.clock.now_ms();
    let ids = super::deliver(&mut mb, sim.config.seed, &user.email, 1, now);
    tracing::info!("delivered {ids:?} to {}", user.email);
}

/// Returned to hyper to drop the connection without an answer.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}

impl std::error::Error for Reset {}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|e: Infallible| match e {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn json_bytes(v: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(v).unwrap_or_default()
    } else {
        serde_json::to_vec(v).unwrap_or_default()
    }
}

/// Google pretty-prints unless `prettyPrint=false`.
fn pretty(target: &str) -> bool {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    !url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "prettyPrint" && (v == "false" || v == "0"))
}

/// The body of a reply and its content type: JSON, or the front end's HTML
/// page.
fn reply_body(reply: &ApiReply, pretty: bool) -> (&'static str, Vec<u8>) {
    match &reply.page {
        Some(page) => ("text/html; charset=UTF-8", page.as_bytes().to_vec()),
        None => (
            "application/json; charset=UTF-8",
            reply
                .body
                .as_ref()
                .map(|b| json_bytes(b, pretty))
                .unwrap_or_default(),
        ),
    }
}

fn reply_response(reply: &ApiReply, pretty: bool) -> Response<Body> {
    let (content_type, body) = reply_body(reply, pretty);
    let mut r = full(reply.status, content_type, body);
    for (k, v) in &reply.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().append(*k, v);
        }
    }
    r.headers_mut().append(
        "Vary",
        HeaderValue::from_static("Origin, X-Origin, Referer"),
    );
    r
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Google compresses an answer only when the request both accepts gzip and
/// says "gzip" in its User-Agent (the performance guide's rule).
fn wants_gzip(req: &Request<Incoming>) -> bool {
    let accepts = req
        .headers()
        .get_all(hyper::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut it = e.split(';');
            let coding = it.next().unwrap_or("").trim();
            let refused = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f64>().ok())
                    == Some(0.0)
            });
            coding.eq_ignore_ascii_case("gzip") && !refused
        });
    accepts && header(req, "user-agent").is_some_and(|ua| ua.to_ascii_lowercase().contains("gzip"))
}

/// The same answer, gzip-compressed.
async fn gzip(response: Response<Body>) -> Response<Body> {
    use std::io::Write as _;
    let (mut parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let packed = enc.write_all(&bytes).and_then(|_| enc.finish());
    let Ok(packed) = packed else {
        return Response::from_parts(parts, Full::new(bytes).map_err(|e| match e {}).boxed());
    };
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    parts.headers.insert(
        hyper::header::CONTENT_ENCODING,
        HeaderValue::from_static("gzip"),
    );
    Response::from_parts(
        parts,
        Full::new(Bytes::from(packed))
            .map_err(|e: Infallible| match e {})
            .boxed(),
    )
}

async fn serve(sim: Arc<Sim>, req: Request<Incoming>) -> Result<Response<Body>, Reset> {
    sim.stats.http_request();
    let mut method = req.method().as_str().to_string();
    let mut target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut path = req.uri().path().to_string();
    // Uploads carry the message itself, up to the import limit.
    let upload = path.starts_with("/upload/gmail/v1/");
    let limit = if upload {
        super::import::MAX_UPLOAD_BODY
    } else {
        MAX_BODY
    };
    let authorization = header(&req, "authorization").map(String::from);
    let content_type = header(&req, "content-type").unwrap_or("").to_string();
    let method_override = header(&req, "x-http-method-override").map(String::from);
    let content_range = header(&req, "content-range").map(String::from);
    let upload_length = header(&req, "x-upload-content-length").map(String::from);
    let gzip_wanted = wants_gzip(&req);
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(reply_response(
                &errors::google_error(
                    413,
                    "INVALID_ARGUMENT",
                    "global",
                    "uploadTooLarge",
                    "Request body too large.",
                ),
                true,
            ))
        }
    };

    if super::directory::is_directory(&path) {
        let reply = super::directory::handle(&sim, &method, &target, authorization.as_deref());
        let response = reply_response(&reply, pretty(&target));
        return Ok(if gzip_wanted {
            sim.stats.gzip_response();
            gzip(response).await
        } else {
            response
        });
    }
    let api_call =
        upload || path.starts_with("/gmail/v1/") || path == "/batch" || path == "/batch/gmail/v1";
    if !api_call {
        let mut r = other(&sim, &method, &path, &target, &content_type, &body).await;
        // The simulator's own endpoints say its quota window, so a client
        // pointed at a sped-up simulator can pace for it (Gmail's answers
        // are left as Gmail's).
        if path.starts_with("/_sim/") {
            let window = format!("{}s", sim.quota.window.as_secs_f64());
            if let Ok(v) = HeaderValue::from_str(&window) {
                r.headers_mut().insert("x-gmailscript-sim-window", v);
            }
        }
        return Ok(r);
    }
    let mut body = body.to_vec();
    if upload {
        let asked = Resumable {
            method: &method,
            target: &target,
            content_range: content_range.as_deref(),
            upload_length: upload_length.as_deref(),
            authorization: authorization.as_deref(),
        };
        if let Some(r) = resumable(&sim, asked, &body).await? {
            return Ok(r);
        }
        // An upload is served as the plain JSON form of the same call.
        match super::import::from_upload(&target, &content_type, &body) {
            Ok((t, b)) => {
                target = t;
                path = target.split('?').next().unwrap_or("").to_string();
                body = b;
            }
            Err(reply) => return Ok(reply_response(&reply, pretty(&target))),
        }
    }
    if let Some((m, t, b)) = path
        .starts_with("/gmail/v1/")
        .then(|| {
            api::method_override(
                &method,
                &target,
                method_override.as_deref(),
                &content_type,
                &body,
            )
        })
        .flatten()
    {
        sim.stats.method_override();
        (method, target, body) = (m, t, b);
    }
    let response = api_exchange(
        &sim,
        &method,
        &target,
        &path,
        &content_type,
        authorization.as_deref(),
        &body,
    )
    .await?;
    let response_truncated = response.truncate;
    let response = if gzip_wanted {
        sim.stats.gzip_response();
        gzip(response.answer).await
    } else {
        response.answer
    };
    // Truncated after compression, as on the wire: the client's gunzip
    // meets the break.
    Ok(if response_truncated {
        truncate(response).await
    } else {
        response
    })
}

/// The parts of a request a resumable upload looks at.
struct Resumable<'a> {
    method: &'a str,
    target: &'a str,
    content_range: Option<&'a str>,
    upload_length: Option<&'a str>,
    authorization: Option<&'a str>,
}

/// `uploadType=resumable` (see [`super::resumable`]): opening a session,
/// or a PUT to one. None: not a resumable upload.
async fn resumable(
    sim: &Sim,
    r: Resumable<'_>,
    body: &[u8],
) -> Result<Option<Response<Body>>, Reset> {
    use super::resumable::Put;
    let (path, query) = r.target.split_once('?').unwrap_or((r.target, ""));
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if !params
        .iter()
        .any(|(k, v)| k == "uploadType" && v == "resumable")
    {
        return Ok(None);
    }
    let pretty = pretty(r.target);
    let upload_id = params
        .iter()
        .find(|(k, _)| k == "upload_id")
        .map(|(_, v)| v.clone());
    let Some(id) = upload_id else {
        if r.method != "POST" {
            return Ok(Some(reply_response(
                &errors::bad_request("A resumable upload session is opened with POST"),
                pretty,
            )));
        }
        if sim.in_outage() {
            return Ok(Some(reply_response(&errors::server_error(503), pretty)));
        }
        // Credentials are checked when the session opens.
        if r.authorization.is_none() {
            return Ok(Some(reply_response(&errors::login_required(), pretty)));
        }
        if sim.auth.principal(r.authorization).is_none() {
            return Ok(Some(reply_response(&errors::unauthenticated(), pretty)));
        }
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "uploadType") {
            q.append_pair(k, v);
        }
        let q = q.finish();
        let rest = path.strip_prefix("/upload").unwrap_or(path);
        let api_target = if q.is_empty() {
            rest.to_string()
        } else {
            format!("{rest}?{q}")
        };
        return Ok(Some(
            match sim
                .uploads
                .open(&api_target, body, r.upload_length, r.authorization)
            {
                Err(reply) => reply_response(&reply, pretty),
                Ok(id) => {
                    let base = sim.base_url.get().map(String::as_str).unwrap_or("");
                    let location = format!("{base}{path}?{query}&upload_id={id}");
                    let mut resp = full(200, "text/plain; charset=utf-8", Vec::new());
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        resp.headers_mut().insert(hyper::header::LOCATION, v);
                    }
                    resp
                }
            },
        ));
    };
    if r.method != "PUT" && r.method != "POST" {
        return Ok(Some(reply_response(
            &errors::bad_request("The bytes of a resumable upload go with PUT"),
            pretty,
        )));
    }
    // `--faults reset:P` strikes chunk exchanges too, keyed by what is sent.
    let key = format!("PUT {id} {}", r.content_range.unwrap_or(""));
    let reset = sim.faults.decide(Scope::Outer, &key) == Some(Fault::Reset);
    match sim
        .uploads
        .put(&id, r.content_range, body, r.authorization, reset)
    {
        Put::Reply(reply) => Ok(Some(reply_response(&reply, pretty))),
        Put::Break => {
            sim.stats.outer_fault("reset");
            Err(Reset)
        }
        Put::Complete {
            target,
            body,
            authorization,
        } => {
            let reply = api::handle(
                sim,
                Call {
                    method: "POST",
                    target: &target,
                    authorization: authorization.as_deref(),
                    body: &body,
                },
            )
            .await;
            sim.uploads.finish(&id, &reply);
            Ok(Some(reply_response(&reply, pretty)))
        }
    }
}

/// An exchange's answer, and whether to break it off halfway.
struct Exchange {
    answer: Response<Body>,
    truncate: bool,
}

/// One API exchange (a call or a batch), with the connection faults and
/// outages that strike the exchange as a whole.
async fn api_exchange(
    sim: &Sim,
    method: &str,
    target: &str,
    path: &str,
    content_type: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<Exchange, Reset> {
    // Connection faults strike API traffic only. The call is still carried
    // out first: a client cannot know whether a reset request took effect.
    // Keyed by what is asked, not by the client's random batch boundary,
    // so the same requests meet the same faults in every run.
    let asked = match batch::boundary(content_type) {
        Ok(b) => fnv_without(body, b.as_bytes()),
        Err(_) => fnv_without(body, b""),
    };
    let outer_key = format!("{method} {target} {asked:x}");
    if sim.in_outage() && sim.faults.outage_resets(&outer_key) {
        // Down hard: the exchange breaks before anything is carried out.
        sim.stats.outage_reset();
        return Err(Reset);
    }
    let outer = sim.faults.decide(Scope::Outer, &outer_key);
    if outer == Some(Fault::Slow) {
        sim.stats.outer_fault("slow");
        tokio::time::sleep(sim.faults.slow_delay).await;
    }
    let response = if path.starts_with("/gmail/v1/") {
        let reply = api::handle(
            sim,
            Call {
                method,
                target,
                authorization,
                body,
            },
        )
        .await;
        reply_response(&reply, pretty(target))
    } else if method != "POST" {
        reply_response(
            &errors::google_error(
                405,
                "UNKNOWN",
                "global",
                "badRequest",
                "The batch endpoint takes POST.",
            ),
            true,
        )
    } else {
        batch_response(sim, content_type, authorization, body).await
    };
    match outer {
        Some(Fault::Reset) => {
            sim.stats.outer_fault("reset");
            Err(Reset)
        }
        Some(Fault::Truncate) => {
            sim.stats.outer_fault("truncate");
            Ok(Exchange {
                answer: response,
                truncate: true,
            })
        }
        _ => Ok(Exchange {
            answer: response,
            truncate: false,
        }),
    }
}

/// Send the head and the first half of the body, then break the connection.
async fn truncate(response: Response<Body>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let cut = bytes.slice(..bytes.len() / 2);
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(cut)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected truncation",
        )),
    ];
    let stream = futures_util::stream::iter(frames);
    let mut r = Response::from_parts(parts, StreamBody::new(stream).boxed());
    r.headers_mut().remove(hyper::header::CONTENT_LENGTH);
    r
}

/// fnv of `bytes` with every occurrence of `cut` left out.
fn fnv_without(bytes: &[u8], cut: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (keep, next) = match memchr::memmem::find(rest, cut) {
            Some(i) if !cut.is_empty() => (&rest[..i], &rest[i + cut.len()..]),
            _ => (rest, &rest[rest.len()..]),
        };
        h = keep
            .iter()
            .fold(h, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3));
        rest = next;
    }
    h
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

async fn batch_response(
    sim: &Sim,
    content_type: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Response<Body> {
    let mut parts = match batch::boundary(content_type)
        .and_then(|b| batch::parse(body, &b, sim.config.max_batch))
    {
        Ok(parts) => parts,
        Err(e) => return reply_response(&errors::invalid(&e.0), true),
    };
    for p in &mut parts {
        let part_header = |name: &str| {
            p.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let overridden = api::method_override(
            &p.method,
            &p.target,
            part_header("x-http-method-override"),
            part_header("content-type").unwrap_or(""),
            &p.body,
        );
        if let Some((m, t, b)) = overridden {
            sim.stats.method_override();
            (p.method, p.target, p.body) = (m, t, b);
        }
    }
    sim.stats.batch(parts.len());
    // Admit every part first so they count as in flight together.
    let mut prepared = Vec::with_capacity(parts.len());
    for p in &parts {
        let auth = p
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str())
            .or(authorization);
        let early = if !METHODS.contains(&p.method.as_str()) {
            Some(errors::invalid(&format!(
                "Invalid HTTP method {:?} in batch part",
                p.method
            )))
        } else if !p.target.starts_with('/') {
            Some(errors::invalid(&format!(
                "Batch part request line must hold a path, not {:?}",
                p.target
            )))
        } else {
            None
        };
        prepared.push(match early {
            Some(reply) => Prepared::Done(reply),
            None => api::prepare(
                sim,
                Call {
                    method: &p.method,
                    target: &p.target,
                    authorization: auth,
                    body: &p.body,
                },
            ),
        });
    }
    // A batch costs more than its slowest part: the batch front end reads,
    // fans out and gathers (`--batch-latency`).
    let overhead = sim.config.batch_latency;
    let (replies, ()) = futures_util::future::join(
        join_all(prepared.into_iter().map(|p| async move {
            match p {
                Prepared::Done(r) => r,
                Prepared::Admitted(a) => api::finish(sim, *a).await,
            }
        })),
        async {
            if !overhead.is_zero() {
                tokio::time::sleep(overhead).await;
            }
        },
    )
    .await;
    let boundary = format!("batch_{:016x}", rand::random::<u64>());
    let mut out = Vec::with_capacity(replies.len() * 1024);
    for (p, r) in parts.iter().zip(&replies) {
        // A 502 or 504 part carries the front end's HTML page too: whether
        // Gmail's batch wraps it in JSON is not known, and HTML is the
        // harder case for a client.
        let (content_type, body) = reply_body(r, pretty(&p.target));
        batch::write_part(
            &mut out,
            &boundary,
            &PartReply {
                content_id: p.content_id.as_deref(),
                status: r.status,
                content_type,
                headers: &r.headers,
                body: &body,
            },
        );
    }
    batch::write_close(&mut out, &boundary);
    full(200, &format!("multipart/mixed; boundary={boundary}"), out)
}

/// `GET /_sim/stats`: the counters, the quota's limits, and the domain's
/// figures (users, mailboxes built so far, the project's window).
fn stats_snapshot(sim: &Sim) -> Value {
    let mut v = sim.stats.snapshot(
                json!({
                    "profile": sim.config.quota.name(),
                    "per_user_per_window": if sim.config.quota == super::quota::Rules::Off { Value::Null } else { json!(sim.config.quota.per_user()) },
                    "per_project_per_window": if sim.config.quota == super::quota::Rules::Off { Value::Null } else { json!(sim.quota.per_project()) },
                    "window_seconds": sim.quota.window.as_secs_f64(),
                    "speed": sim.config.speed,
                    "concurrency_limit": sim.config.concurrency,
                    "max_batch": sim.config.max_batch,
                    "per_second": sim.config.per_second,
                    "per_second_window_seconds": sim.quota.second.as_secs_f64(),
                    "daily_limit": sim.config.daily_limit,
                    "rate_penalty_seconds": sim.config.rate_penalty.map(|p| p.as_secs_f64()),
                    "charge_refused": sim.config.charge_refused,
                    "outages": sim.config.outages.iter().map(|o| json!({"at_seconds": o.at.as_secs_f64(), "for_seconds": o.length.as_secs_f64()})).collect::<Vec<_>>(),
                }),
                sim.quota.peak_in_flight(),
            );
    v["uploads"] = sim.uploads.snapshot();
    v["users_total"] = json!(sim.users.len());
    v["mailboxes_generated"] = json!(sim.mailboxes_generated());
    v["project"] = json!({
        "per_window": if sim.config.quota == super::quota::Rules::Off { Value::Null } else { json!(sim.quota.per_project()) },
        "units_in_window": sim.quota.project_units_in_window(),
    });
    v
}

fn form(body: &[u8], query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body)
        .into_owned()
        .chain(url::form_urlencoded::parse(query.as_bytes()).into_owned())
        .collect()
}

/// OAuth endpoints, the admin API, and 404s.
async fn other(
    sim: &Sim,
    method: &str,
    path: &str,
    target: &str,
    content_type: &str,
    body: &[u8],
) -> Response<Body> {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let json = |status: u16, v: Value| {
        full(
            status,
            "application/json; charset=utf-8",
            json_bytes(&v, true),
        )
    };
    match (method, path) {
        ("POST", "/token") => {
            if !content_type.starts_with("application/x-www-form-urlencoded") && !body.is_empty() {
                let e = json!({"error": "invalid_request", "error_description": "Content-Type must be application/x-www-form-urlencoded"});
                return json(400, e);
            }
            let f = form(body, query);
            let token_uri = format!(
                "{}/token",
                sim.base_url.get().map(String::as_str).unwrap_or("")
            );
            match sim
                .auth
                .token_endpoint(&f, |u| sim.user(u).is_some(), &token_uri)
            {
                Ok(v) => json(200, v),
                Err(e) => json(e.status, e.body()),
            }
        }
        ("GET", "/o/oauth2/auth") | ("GET", "/o/oauth2/v2/auth") => {
            match sim.auth.authorize(&form(b"", query)) {
                Ok(location) => {
                    let mut r = full(302, "text/html; charset=UTF-8", "");
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        r.headers_mut().insert(hyper::header::LOCATION, v);
                    }
                    r
                }
                Err(e) => full(
                    400,
                    "text/html; charset=UTF-8",
                    format!(
                        "<html><body><h1>Error 400: {}</h1><p>{}</p></body></html>",
                        e.error, e.description
                    ),
                ),
            }
        }
        ("POST", "/revoke") | ("POST", "/o/oauth2/revoke") => {
            let f = form(body, query);
            match f.get("token") {
                Some(t) if sim.auth.revoke(t) => json(200, json!({})),
                _ => json(
                    400,
                    json!({"error": "invalid_token", "error_description": "Token expired or revoked"}),
                ),
            }
        }
        ("GET", "/_sim/stats") => json(200, stats_snapshot(sim)),
        ("POST", "/_sim/uploads/break") => {
            let n = form(b"", query)
                .get("chunk")
                .and_then(|c| c.parse::<u64>().ok())
                .unwrap_or(1);
            sim.uploads.break_chunk(n);
            json(200, json!({}))
        }
        ("POST", "/_sim/stats/reset") => {
            sim.stats.reset();
            json(200, json!({}))
        }
        ("POST", "/_sim/tokens") => {
            let f = form(body, query);
            let lifetime = f
                .get("lifetime")
                .and_then(|s| s.parse::<f64>().ok())
                .map(std::time::Duration::from_secs_f64);
            let scopes = f
                .get("scope")
                .map(|s| s.split_whitespace().map(String::from).collect())
                .unwrap_or_else(|| vec![super::auth::SCOPE_FULL.to_string()]);
            let principal = match f.get("user") {
                Some(u) if sim.user(u).is_some() => super::auth::Principal {
                    email: u.clone(),
                    no_mailbox: false,
                    scopes,
                },
                Some(u) => return json(400, json!({"error": format!("no such user {u}")})),
                None => super::auth::Principal {
                    email: "robot@sim-project.iam.gserviceaccount.com".into(),
                    no_mailbox: true,
                    scopes,
                },
            };
            let (token, lifetime) = sim.auth.mint(principal, lifetime);
            json(
                200,
                json!({"access_token": token, "expires_in": lifetime.as_secs_f64()}),
            )
        }
        _ => admin_user(sim, method, path, query).unwrap_or_else(|| {
            let e = errors::unknown_method(method, path);
            reply_response(&e, true)
        }),
    }
}

/// `/_sim/users/{email}/deliver?count=N` and `/_sim/users/{email}/expire-history`.
fn admin_user(sim: &Sim, method: &str, path: &str, query: &str) -> Option<Response<Body>> {
    let rest = path.strip_prefix("/_sim/users/")?;
    let (email, action) = rest.rsplit_once('/')?;
    let email = percent_encoding::percent_decode_str(email)
        .decode_utf8()
        .ok()?
        .into_owned();
    if method != "POST" {
        return None;
    }
    let json = |status: u16, v: Value| {
        full(
            status,
            "application/json; charset=utf-8",
            json_bytes(&v, true),
        )
    };
    let Some(user) = sim.user(&email).filter(|u| u.gmail) else {
        return Some(json(
            404,
            json!({"error": format!("no Gmail user {email}")}),
        ));
    };
    let lock = sim.mailbox(&user);
    match action {
        "deliver" => {
            let count = form(b"", query)
                .get("count")
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(1)
                .min(100_000);
            let mut mb = lock.write().unwrap();
            let now = sim.clock.now_ms();
            let ids = super::deliver(&mut mb, sim.config.seed, &user.email, count, now);
            Some(json(
                200,
                json!({"ids": ids, "historyId": mb.history_id.to_string()}),
            ))
        }
        "expire-history" => {
            let mut mb = lock.write().unwrap();
            mb.expire_history();
            Some(json(200, json!({"historyId": mb.history_id.to_string()})))
        }
        _ => None,
    }
}
