//! Google-shaped error bodies, written by the simulator's own hand (the
//! client has its own parser; sharing code would let one hide the other).

use serde_json::{json, Value};

/// A response the API layer produces: status, extra headers, JSON body (or
/// none, for 204), or an HTML page (Google's front end's 502 and 504).
#[derive(Debug, Clone)]
pub(crate) struct ApiReply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<Value>,
    /// A `text/html` body instead of JSON.
    pub(crate) page: Option<String>,
}

impl ApiReply {
    pub(crate) fn ok(body: Value) -> Self {
        ApiReply {
            status: 200,
            headers: Vec::new(),
            body: Some(body),
            page: None,
        }
    }

    pub(crate) fn no_content() -> Self {
        ApiReply {
            status: 204,
            headers: Vec::new(),
            body: None,
            page: None,
        }
    }
}

/// The canonical status string Google puts in `error.status`.
fn canonical(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// `{"error":{"code","message","errors":[{"message","domain","reason"}],"status"}}`
pub(crate) fn google_error(
    code: u16,
    status: &str,
    domain: &str,
    reason: &str,
    message: &str,
) -> ApiReply {
    ApiReply {
        status: code,
        headers: Vec::new(),
        page: None,
        body: Some(json!({
            "error": {
                "code": code,
                "message": message,
                "errors": [{ "message": message, "domain": domain, "reason": reason }],
                "status": status,
            }
        })),
    }
}

pub(crate) fn invalid(message: &str) -> ApiReply {
    google_error(
        400,
        "INVALID_ARGUMENT",
        "global",
        "invalidArgument",
        message,
    )
}

pub(crate) fn bad_request(message: &str) -> ApiReply {
    google_error(400, "INVALID_ARGUMENT", "global", "badRequest", message)
}

pub(crate) fn failed_precondition(message: &str) -> ApiReply {
    google_error(
        400,
        "FAILED_PRECONDITION",
        "global",
        "failedPrecondition",
        message,
    )
}

pub(crate) fn not_found() -> ApiReply {
    google_error(
        404,
        "NOT_FOUND",
        "global",
        "notFound",
        "Requested entity was not found.",
    )
}

pub(crate) fn unknown_method(method: &str, path: &str) -> ApiReply {
    google_error(
        404,
        "NOT_FOUND",
        "global",
        "notFound",
        &format!("Method not found: {method} {path}"),
    )
}

/// A token the service does not accept (expired, revoked, unknown).
pub(crate) fn unauthenticated() -> ApiReply {
    let message = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
    auth_error(message, "Invalid Credentials", "authError")
}

/// No credentials at all: Google answers `required` "Login Required.",
/// not `authError`.
pub(crate) fn login_required() -> ApiReply {
    let message = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
    auth_error(message, "Login Required.", "required")
}

fn auth_error(message: &str, inner: &str, reason: &str) -> ApiReply {
    ApiReply {
        status: 401,
        headers: vec![(
            "WWW-Authenticate",
            "Bearer realm=\"https://accounts.google.com/\"".to_string(),
        )],
        page: None,
        body: Some(json!({
            "error": {
                "code": 401,
                "message": message,
                "errors": [{
                    "message": inner,
                    "domain": "global",
                    "reason": reason,
                    "location": "Authorization",
                    "locationType": "header",
                }],
                "status": "UNAUTHENTICATED",
            }
        })),
    }
}

pub(crate) fn forbidden(message: &str) -> ApiReply {
    google_error(403, "PERMISSION_DENIED", "global", "forbidden", message)
}

pub(crate) fn insufficient_scope() -> ApiReply {
    google_error(
        403,
        "PERMISSION_DENIED",
        "global",
        "insufficientPermissions",
        "Request had insufficient authentication scopes.",
    )
}

/// A server fault (500/502/503/504) as Google words them. 502 and 504 come
/// from Google's front end as an HTML page, not JSON (the "Error 502
/// (Server Error)!!1" page in googleapis/google-api-ruby-client#23641,
/// google-api-php-client#2421): a client that expects JSON must cope.
pub(crate) fn server_error(code: u16) -> ApiReply {
    let (reason, message) = match code {
        500 => ("backendError", "Internal error encountered."),
        502 | 504 => return front_end_page(code),
        503 => ("backendError", "The service is currently unavailable."),
        _ => ("backendError", "Backend Error"),
    };
    google_error(code, canonical(code), "global", reason, message)
}

/// Google's front end's error page. The 502 page is copied in shape from
/// public reports; the 504 page is not seen in them, so it is the same page
/// with Google's usual title for the status (an assumption).
fn front_end_page(code: u16) -> ApiReply {
    let (title, text) = match code {
        502 => (
            "Server Error",
            "The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.",
        ),
        _ => (
            "Gateway Timeout",
            "The server did not answer in time and could not complete your request.<p>Please try again in 30 seconds.",
        ),
    };
    let page = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <meta name=viewport content=\"initial-scale=1, minimum-scale=1, width=device-width\">\n  <title>Error {code} ({title})!!1</title>\n  <style>\n    *{{margin:0;padding:0}}html,code{{font:15px/22px arial,sans-serif}}html{{background:#fff;color:#222;padding:15px}}body{{margin:7% auto 0;max-width:390px;min-height:180px;padding:30px 0 15px}}p{{margin:11px 0 22px;overflow:hidden}}ins{{color:#777;text-decoration:none}}\n  </style>\n  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>\n  <p><b>{code}.</b> <ins>That\u{2019}s an error.</ins>\n  <p>{text}  <ins>That\u{2019}s all we know.</ins>\n"
    );
    ApiReply {
        status: code,
        headers: Vec::new(),
        body: None,
        page: Some(page),
    }
}

/// Any other injected status, shaped by its canonical meaning.
pub(crate) fn injected(code: u16) -> ApiReply {
    match code {
        401 => unauthenticated(),
        404 => not_found(),
        400 => failed_precondition("Precondition check failed."),
        500..=599 => server_error(code),
        _ => google_error(
            code,
            canonical(code),
            "global",
            "unknown",
            "Injected fault.",
        ),
    }
}

/// The shapes a per-minute quota error takes on the real service (all seen
/// in public reports). All of them mean "slow down"; which one a client sees
/// varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateShape {
    /// 403 usageLimits/userRateLimitExceeded "User-rate limit exceeded.  Retry after <time>"
    UserRateLimit403,
    /// 403 usageLimits/rateLimitExceeded "Quota exceeded for quota metric ..."
    QuotaMetric403,
    /// 429 RESOURCE_EXHAUSTED "Quota exceeded for quota metric ..."
    QuotaMetric429,
    /// 429 RESOURCE_EXHAUSTED "Resource has been exhausted (e.g. check quota)."
    Exhausted429,
}

pub(crate) const RATE_SHAPES: [RateShape; 4] = [
    RateShape::UserRateLimit403,
    RateShape::QuotaMetric403,
    RateShape::QuotaMetric429,
    RateShape::Exhausted429,
];

const PER_USER_METRIC: &str = "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'gmail.googleapis.com' for consumer 'project_number:000000000000'.";

/// A per-user rate error. `retry_at` is the RFC 3339 time when quota frees,
/// `retry_after_s` the same in whole seconds for the Retry-After header
/// (sent with the 429 shapes).
pub(crate) fn rate_limited(shape: RateShape, retry_at: &str, retry_after_s: u64) -> ApiReply {
    let mut reply = match shape {
        RateShape::UserRateLimit403 => google_error(
            403,
            "PERMISSION_DENIED",
            "usageLimits",
            "userRateLimitExceeded",
            &format!("User-rate limit exceeded.  Retry after {retry_at}"),
        ),
        RateShape::QuotaMetric403 => google_error(
            403,
            "PERMISSION_DENIED",
            "usageLimits",
            "rateLimitExceeded",
            PER_USER_METRIC,
        ),
        RateShape::QuotaMetric429 => google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "global",
            "rateLimitExceeded",
            PER_USER_METRIC,
        ),
        RateShape::Exhausted429 => google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "global",
            "rateLimitExceeded",
            "Resource has been exhausted (e.g. check quota).",
        ),
    };
    if reply.status == 429 {
        reply
            .headers
            .push(("Retry-After", retry_after_s.max(1).to_string()));
    }
    reply
}

const PER_PROJECT_METRIC: &str = "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'gmail.googleapis.com' for consumer 'project_number:000000000000'.";

/// The per-project per-minute limit: Google's quota-metric message with the
/// project's limit name ('Queries per minute', without "per user", as
/// Google names project limits, e.g. GoogleCloudPlatform/python-docs-samples#3482),
/// as a 429 RESOURCE_EXHAUSTED, or (`as_403`) in the 403 usageLimits form
/// the per-user metric also takes (GAM-team/got-your-back#287, #309: GYB
/// did not take that one for a rate error). Both carry Retry-After.
pub(crate) fn project_rate_limited(as_403: bool, retry_after_s: u64) -> ApiReply {
    let mut reply = if as_403 {
        google_error(
            403,
            "PERMISSION_DENIED",
            "usageLimits",
            "rateLimitExceeded",
            PER_PROJECT_METRIC,
        )
    } else {
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "global",
            "rateLimitExceeded",
            PER_PROJECT_METRIC,
        )
    };
    reply
        .headers
        .push(("Retry-After", retry_after_s.max(1).to_string()));
    reply
}

/// A suspended user's message call. What Gmail answers is not documented;
/// administrators report two things, both after the mailbox's ids were
/// listed without trouble: "Temp error backendError" on every get until
/// GYB gave up after 10 tries (GAM-team/got-your-back#114, 2016; the
/// maintainer: "Google doesn't allow backup of suspended user"), and a
/// 403 on every get (got-your-back#258, 2020; #116 shows the 403's words,
/// "The caller does not have permission - forbidden"). The default is the
/// harsher one: a 500 that looks transient, so a client that retries it
/// blindly spends its retries and its quota on a mailbox that will never
/// answer.
pub(crate) fn suspended(kind: super::SuspendedError) -> ApiReply {
    match kind {
        super::SuspendedError::Backend => server_error(500),
        super::SuspendedError::Forbidden => google_error(
            403,
            "PERMISSION_DENIED",
            "global",
            "forbidden",
            "The caller does not have permission",
        ),
    }
}

/// An Admin SDK Directory error. Its answers carry no `error.status`
/// (the 400 "Invalid Input" body in googleapis/google-api-ruby-client#468,
/// 2023).
pub(crate) fn directory_error(code: u16, reason: &str, message: &str) -> ApiReply {
    let mut reply = google_error(code, "", "global", reason, message);
    if let Some(e) = reply.body.as_mut().and_then(|b| b["error"].as_object_mut()) {
        e.remove("status");
    }
    reply
}

/// A caller who is not an administrator, a service account without a
/// subject, or another customer's domain (googleapis/google-api-nodejs-client#1884,
/// 66degrees/agm#9).
pub(crate) fn directory_not_authorized() -> ApiReply {
    directory_error(
        403,
        "forbidden",
        "Not Authorized to access this resource/api",
    )
}

/// `users.list` without `customer` or `domain` (google-api-python-client#579).
pub(crate) fn directory_bad_request() -> ApiReply {
    directory_error(400, "badRequest", "Bad Request")
}

/// A parameter value the Directory does not take (maxResults out of range,
/// a query it cannot parse, a bad page token).
pub(crate) fn directory_invalid_input() -> ApiReply {
    directory_error(400, "invalid", "Invalid Input")
}

/// The unpublished per-user concurrency limit.
pub(crate) fn too_many_concurrent() -> ApiReply {
    google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "global",
        "rateLimitExceeded",
        "Too many concurrent requests for user",
    )
}

/// The shapes of a `--rate-penalty` lockout, all carrying "Retry after
/// <time>" (the lockout's end) and a Retry-After header: 403
/// userRateLimitExceeded, 403 rateLimitExceeded with the same message
/// (googleapis/google-api-ruby-client#20544, GAM-team/GAMADV-XTD3#337), and
/// the 429 form.
pub(crate) const PENALTY_SHAPES: usize = 3;

pub(crate) fn rate_penalty(shape: usize, retry_at: &str, retry_after_s: u64) -> ApiReply {
    let message = format!("User-rate limit exceeded.  Retry after {retry_at}");
    let mut reply = match shape % PENALTY_SHAPES {
        0 => google_error(
            403,
            "PERMISSION_DENIED",
            "usageLimits",
            "userRateLimitExceeded",
            &message,
        ),
        1 => google_error(
            403,
            "PERMISSION_DENIED",
            "usageLimits",
            "rateLimitExceeded",
            &message,
        ),
        _ => google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "global",
            "rateLimitExceeded",
            &message,
        ),
    };
    reply
        .headers
        .push(("Retry-After", retry_after_s.max(1).to_string()));
    reply
}

/// The per-user daily budget is spent (`--daily-limit`). Google's words
/// (murer/dsopz#3 and others): the quota resets at midnight Pacific time.
pub(crate) fn daily_limit_exceeded() -> ApiReply {
    let message = "Daily Limit Exceeded. The quota will be reset at midnight Pacific Time (PT). You may monitor your quota usage and adjust limits in the API Console: https://console.developers.google.com/apis/api/gmail.googleapis.com/quotas?project=000000000000";
    let mut reply = google_error(
        403,
        "PERMISSION_DENIED",
        "usageLimits",
        "dailyLimitExceeded",
        message,
    );
    if let Some(e) = reply
        .body
        .as_mut()
        .and_then(|b| b.pointer_mut("/error/errors/0"))
    {
        e["extendedHelp"] = json!(
            "https://console.developers.google.com/apis/api/gmail.googleapis.com/quotas?project=000000000000"
        );
    }
    reply
}

/// A query parameter the method does not have. Google's API front end
/// refuses to bind it rather than ignore it.
pub(crate) fn unknown_parameter(name: &str) -> ApiReply {
    google_error(
        400,
        "INVALID_ARGUMENT",
        "global",
        "invalid",
        &format!(
            "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. Field '{name}' could not be found in request message."
        ),
    )
}

/// A `fields=` selection that does not parse or names no field.
pub(crate) fn invalid_fields(selection: &str) -> ApiReply {
    let message = format!("Invalid field selection {selection}");
    let mut reply = google_error(
        400,
        "INVALID_ARGUMENT",
        "global",
        "invalidParameter",
        &message,
    );
    if let Some(e) = reply
        .body
        .as_mut()
        .and_then(|b| b.pointer_mut("/error/errors/0"))
    {
        e["location"] = json!("fields");
        e["locationType"] = json!("parameter");
    }
    reply
}
