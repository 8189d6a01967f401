//! Google-shaped error bodies, written by the simulator's own hand (the
//! client has its own parser; sharing code would let one hide the other).

use serde_json::{json, Value};

/// A response the API layer produces: status, extra headers, JSON body (or
/// none, for 204).
#[derive(Debug, Clone)]
pub struct ApiReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl ApiReply {
    pub fn ok(body: Value) -> Self {
        ApiReply {
            status: 200,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub fn no_content() -> Self {
        ApiReply {
            status: 204,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn is_rate_error(&self) -> bool {
        let reason = self.reason().unwrap_or_default();
        self.status == 429 || reason == "userRateLimitExceeded" || reason == "rateLimitExceeded"
    }

    pub fn reason(&self) -> Option<&str> {
        self.body
            .as_ref()?
            .pointer("/error/errors/0/reason")?
            .as_str()
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
pub fn google_error(
    code: u16,
    status: &str,
    domain: &str,
    reason: &str,
    message: &str,
) -> ApiReply {
    ApiReply {
        status: code,
        headers: Vec::new(),
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

pub fn invalid(message: &str) -> ApiReply {
    google_error(
        400,
        "INVALID_ARGUMENT",
        "global",
        "invalidArgument",
        message,
    )
}

pub fn bad_request(message: &str) -> ApiReply {
    google_error(400, "INVALID_ARGUMENT", "global", "badRequest", message)
}

pub fn failed_precondition(message: &str) -> ApiReply {
    google_error(
        400,
        "FAILED_PRECONDITION",
        "global",
        "failedPrecondition",
        message,
    )
}

pub fn not_found() -> ApiReply {
    google_error(
        404,
        "NOT_FOUND",
        "global",
        "notFound",
        "Requested entity was not found.",
    )
}

pub fn unknown_method(method: &str, path: &str) -> ApiReply {
    google_error(
        404,
        "NOT_FOUND",
        "global",
        "notFound",
        &format!("Method not found: {method} {path}"),
    )
}

pub fn method_not_allowed(method: &str, path: &str) -> ApiReply {
    google_error(
        405,
        "UNKNOWN",
        "global",
        "httpMethodNotAllowed",
        &format!("HTTP method {method} is not supported by this URL: {path}"),
    )
}

pub fn unauthenticated() -> ApiReply {
    let message = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
    ApiReply {
        status: 401,
        headers: vec![(
            "WWW-Authenticate",
            "Bearer realm=\"https://accounts.google.com/\"".to_string(),
        )],
        body: Some(json!({
            "error": {
                "code": 401,
                "message": message,
                "errors": [{
                    "message": "Invalid Credentials",
                    "domain": "global",
                    "reason": "authError",
                    "location": "Authorization",
                    "locationType": "header",
                }],
                "status": "UNAUTHENTICATED",
            }
        })),
    }
}

pub fn forbidden(message: &str) -> ApiReply {
    google_error(403, "PERMISSION_DENIED", "global", "forbidden", message)
}

pub fn insufficient_scope() -> ApiReply {
    google_error(
        403,
        "PERMISSION_DENIED",
        "global",
        "insufficientPermissions",
        "Request had insufficient authentication scopes.",
    )
}

/// A server fault (500/502/503/504) as Google words them.
pub fn server_error(code: u16) -> ApiReply {
    let (reason, message) = match code {
        500 => ("backendError", "Internal error encountered."),
        502 => ("backendError", "Bad Gateway"),
        503 => ("backendError", "The service is currently unavailable."),
        504 => ("backendError", "Deadline exceeded."),
        _ => ("backendError", "Backend Error"),
    };
    google_error(code, canonical(code), "global", reason, message)
}

/// Any other injected status, shaped by its canonical meaning.
pub fn injected(code: u16) -> ApiReply {
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
pub enum RateShape {
    /// 403 usageLimits/userRateLimitExceeded "User-rate limit exceeded.  Retry after <time>"
    UserRateLimit403,
    /// 403 usageLimits/rateLimitExceeded "Quota exceeded for quota metric ..."
    QuotaMetric403,
    /// 429 RESOURCE_EXHAUSTED "Quota exceeded for quota metric ..."
    QuotaMetric429,
    /// 429 RESOURCE_EXHAUSTED "Resource has been exhausted (e.g. check quota)."
    Exhausted429,
}

pub const RATE_SHAPES: [RateShape; 4] = [
    RateShape::UserRateLimit403,
    RateShape::QuotaMetric403,
    RateShape::QuotaMetric429,
    RateShape::Exhausted429,
];

const PER_USER_METRIC: &str = "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'gmail.googleapis.com' for consumer 'project_number:000000000000'.";

/// A per-user rate error. `retry_at` is the RFC 3339 time when quota frees,
/// `retry_after_s` the same in whole seconds for the Retry-After header
/// (sent with the 429 shapes).
pub fn rate_limited(shape: RateShape, retry_at: &str, retry_after_s: u64) -> ApiReply {
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

/// The per-project per-minute limit.
pub fn project_rate_limited(retry_after_s: u64) -> ApiReply {
    let mut reply = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "global",
        "rateLimitExceeded",
        "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'gmail.googleapis.com' for consumer 'project_number:000000000000'.",
    );
    reply
        .headers
        .push(("Retry-After", retry_after_s.max(1).to_string()));
    reply
}

/// The unpublished per-user concurrency limit.
pub fn too_many_concurrent() -> ApiReply {
    google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "global",
        "rateLimitExceeded",
        "Too many concurrent requests for user",
    )
}
