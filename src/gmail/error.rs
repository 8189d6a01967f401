//! Google error answers (JSON API errors, OAuth token-endpoint errors, HTML
//! front-end pages, empty bodies) -> one typed [`ApiError`] that the retry
//! logic and the user's policy can act on.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// What kind of failure this is; policies decide by class, not by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    Rate,
    Server,
    Network,
    Auth,
    NotFound,
    Precondition,
    Invalid,
    QuotaDaily,
    Forbidden,
    /// An answer that arrived but cannot be used: not JSON, a `raw` that
    /// is not base64url, a body for another id. That item's failure, not
    /// the run's.
    Malformed,
}

impl ErrorClass {
    /// Every class, in the order the docs list them.
    pub(crate) const ALL: [ErrorClass; 10] = [
        ErrorClass::Rate,
        ErrorClass::Server,
        ErrorClass::Network,
        ErrorClass::Auth,
        ErrorClass::NotFound,
        ErrorClass::Precondition,
        ErrorClass::Invalid,
        ErrorClass::QuotaDaily,
        ErrorClass::Forbidden,
        ErrorClass::Malformed,
    ];

    /// The class named `s` (as `as_str` gives it), if any.
    pub(crate) fn parse(s: &str) -> Option<ErrorClass> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Rate => "rate",
            ErrorClass::Server => "server",
            ErrorClass::Network => "network",
            ErrorClass::Auth => "auth",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Precondition => "precondition",
            ErrorClass::Invalid => "invalid",
            ErrorClass::QuotaDaily => "quota_daily",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::Malformed => "malformed",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// HTTP status; 0 when no response arrived.
    pub status: u16,
    /// Google's reason (`rateLimitExceeded`, `failedPrecondition`, ...), the
    /// RPC status when there is none, or a name derived from the HTTP status.
    pub(crate) reason: String,
    /// One line, control characters removed, length-capped.
    pub message: String,
    pub class: ErrorClass,
    pub(crate) retry_after: Option<Duration>,
    /// What the user should do, for errors where retrying cannot help.
    pub diagnosis: Option<String>,
    /// A rate error that is the per-user concurrency limit ("Too many
    /// concurrent requests for user"), not spent quota: the cure is fewer
    /// calls in flight, not a slower pace.
    pub(crate) concurrent: bool,
}

/// The longest wait taken from the network: a Retry-After beyond it is
/// read as this (a month), so no number from a server overflows a clock.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

const MAX_MESSAGE_CHARS: usize = 300;
const MAX_SNIPPET_CHARS: usize = 200;
/// Enough of a non-JSON body for a snippet; never scan a huge page.
const MAX_SNIPPET_SCAN: usize = 64 * 1024;

const NO_GMAIL: &str = "this user has no Gmail (mailbox not enabled or not licensed); \
retrying will not help: check the address or skip this user";
const NO_SUBJECT: &str = "almost always a service account calling without a delegated subject \
(give it one: --user EMAIL or `subject` in the account), or domain-wide delegation not granted \
for these scopes in the Admin console, or a user without Gmail; retrying does not help";
const BAD_GRANT: &str = "the saved login is no longer valid (revoked, expired, or a service \
account with a wrong key, subject or clock): log in again (gmailscript auth login --account NAME) \
or check the service account";
const NO_DELEGATION: &str = "domain-wide delegation is not granted to this service account's \
client ID for these scopes: add them in the Admin console (Security > API controls)";
const API_DISABLED: &str = "the Gmail API is not enabled for this Cloud project: enable it in \
the Cloud console, wait a few minutes, then run again";

impl ApiError {
    /// Build from an HTTP error answer: its status, its `Retry-After` header
    /// if any, and its body (JSON, HTML or empty).
    pub(crate) fn from_response(
        status: u16,
        retry_after_header: Option<&str>,
        body: &[u8],
    ) -> ApiError {
        Self::from_response_at(status, retry_after_header, body, SystemTime::now())
    }

    fn from_response_at(
        status: u16,
        retry_after_header: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> ApiError {
        let parsed = parse_json(body);
        let (default_reason, phrase) = status_names(status);
        let message = match parsed.as_ref().and_then(|p| p.message.as_deref()) {
            Some(m) if !one_line_capped(m, 1).is_empty() => one_line_capped(m, MAX_MESSAGE_CHARS),
            // An error object without a message: its raw JSON would not help.
            _ if parsed.is_some() => phrase.to_string(),
            _ => body_snippet(body, phrase),
        };
        let parsed = parsed.unwrap_or_default();
        let reason = parsed.reason.unwrap_or_else(|| default_reason.to_string());
        let rpc_status = parsed.rpc_status.as_deref().unwrap_or("");
        let class = classify(status, &reason, &message, rpc_status, parsed.oauth);
        let retry_after = [
            retry_after_header.and_then(|h| parse_retry_after(h, now)),
            retry_after_in_message(&message, now),
            parsed.retry_delay,
        ]
        .into_iter()
        .flatten()
        .max()
        .map(|d| d.min(MAX_RETRY_AFTER));
        let diagnosis = match class {
            ErrorClass::QuotaDaily => Some(daily_renewal(now)),
            _ => diagnose(class, &reason, &message, rpc_status).map(str::to_string),
        };
        let concurrent =
            class == ErrorClass::Rate && message.to_ascii_lowercase().contains("concurrent");
        ApiError {
            status,
            reason,
            message,
            class,
            retry_after,
            diagnosis,
            concurrent,
        }
    }

    /// An error of `class` made on this side, with no answer behind it.
    pub(crate) fn local(class: ErrorClass, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 0,
            reason: reason.to_string(),
            message: one_line_capped(&message.into(), MAX_MESSAGE_CHARS),
            class,
            retry_after: None,
            diagnosis: None,
            concurrent: false,
        }
    }

    /// A request this side cannot send as it is (an id too long for a URL,
    /// a bad method): never retried, it would fail the same way.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        Self::local(ErrorClass::Invalid, "invalidRequest", message)
    }

    /// An answer that arrived but cannot be used (see [`ErrorClass::Malformed`]).
    pub(crate) fn malformed(message: impl Into<String>) -> ApiError {
        Self::local(ErrorClass::Malformed, "malformedAnswer", message)
    }

    /// No HTTP answer at all (connect, TLS, reset, timeout).
    pub(crate) fn network(message: impl Into<String>) -> ApiError {
        Self::local(ErrorClass::Network, "network", message)
    }

    /// The default policy ([`DefaultPolicy::decide`]) retries this error.
    ///
    /// [`DefaultPolicy::decide`]: super::runner::DefaultPolicy::decide
    pub(crate) fn is_retryable_by_default(&self) -> bool {
        matches!(
            super::runner::DefaultPolicy::decide(self.class),
            super::runner::Decision::Retry(_)
        )
    }
}

impl ApiError {
    /// The error without its diagnosis: `STATUS reason: message`, for lines
    /// that print the diagnosis in their own place.
    pub(crate) fn brief(&self) -> String {
        if self.status != 0 {
            format!("{} {}: {}", self.status, self.reason, self.message)
        } else {
            format!("{}: {}", self.reason, self.message)
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.brief())?;
        if let Some(diagnosis) = &self.diagnosis {
            write!(f, " ({diagnosis})")?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Parsed {
    reason: Option<String>,
    message: Option<String>,
    /// google.rpc status name, e.g. `RESOURCE_EXHAUSTED`.
    rpc_status: Option<String>,
    /// OAuth token-endpoint shape: `{"error":"invalid_grant", ...}`.
    oauth: bool,
    retry_delay: Option<Duration>,
}

fn parse_json(body: &[u8]) -> Option<Parsed> {
    let value: Value = serde_json::from_slice(body).ok()?;
    // Some front ends wrap the error object in a one-element array.
    let value = match value {
        Value::Array(items) => items.into_iter().next()?,
        v => v,
    };
    let error = value.get("error")?;
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(code) = error.as_str() {
        return Some(Parsed {
            reason: Some(code.to_string()),
            message: text(&value, "error_description").or_else(|| Some(code.to_string())),
            oauth: true,
            ..Parsed::default()
        });
    }
    let first = error.get("errors").and_then(|e| e.get(0));
    let details = error.get("details").and_then(Value::as_array);
    let detail = |kind: &str| {
        details?.iter().find(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(kind))
        })
    };
    let rpc_status = text(error, "status");
    Some(Parsed {
        reason: first
            .and_then(|f| text(f, "reason"))
            .or_else(|| rpc_status.clone())
            .or_else(|| detail("google.rpc.ErrorInfo").and_then(|d| text(d, "reason"))),
        message: text(error, "message").or_else(|| first.and_then(|f| text(f, "message"))),
        rpc_status,
        oauth: false,
        retry_delay: detail("google.rpc.RetryInfo")
            .and_then(|d| d.get("retryDelay")?.as_str())
            .and_then(parse_proto_duration),
    })
}

/// google.protobuf.Duration in JSON: `"30s"`, `"1.5s"`.
fn parse_proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

fn classify(status: u16, reason: &str, message: &str, rpc_status: &str, oauth: bool) -> ErrorClass {
    let lower = message.to_ascii_lowercase();
    let says = |s: &str| lower.contains(s);
    match status {
        0 | 408 => ErrorClass::Network,
        429 => ErrorClass::Rate,
        500..=599 => ErrorClass::Server,
        400..=499 if oauth => ErrorClass::Auth,
        401 => ErrorClass::Auth,
        // A quota-metric message names its window, which is more precise than
        // the reason Google pairs it with.
        403 if says("quota exceeded for quota metric") && says("per minute") => ErrorClass::Rate,
        403 if says("quota exceeded for quota metric") && says("per day") => ErrorClass::QuotaDaily,
        403 => {
            if matches!(reason, "userRateLimitExceeded" | "rateLimitExceeded") {
                ErrorClass::Rate
            } else if matches!(reason, "dailyLimitExceeded" | "quotaExceeded") || says("per day") {
                ErrorClass::QuotaDaily
            } else if rpc_status == "RESOURCE_EXHAUSTED" {
                ErrorClass::Rate
            } else {
                ErrorClass::Forbidden
            }
        }
        404 => ErrorClass::NotFound,
        400 if reason == "failedPrecondition"
            || rpc_status == "FAILED_PRECONDITION"
            || says("mail service not enabled") =>
        {
            ErrorClass::Precondition
        }
        400..=499 => ErrorClass::Invalid,
        // 1xx-3xx where an error was expected: something between us and
        // Google answered (proxy, captive portal); worth a bounded retry.
        _ => ErrorClass::Server,
    }
}

fn diagnose(
    class: ErrorClass,
    reason: &str,
    message: &str,
    rpc_status: &str,
) -> Option<&'static str> {
    match class {
        ErrorClass::Precondition
            if message
                .to_ascii_lowercase()
                .contains("mail service not enabled") =>
        {
            Some(NO_GMAIL)
        }
        ErrorClass::Precondition => Some(NO_SUBJECT),
        ErrorClass::Auth if reason == "invalid_grant" => Some(BAD_GRANT),
        ErrorClass::Auth if reason == "unauthorized_client" => Some(NO_DELEGATION),
        ErrorClass::Forbidden
            if reason == "accessNotConfigured" || reason == "SERVICE_DISABLED" =>
        {
            Some(API_DISABLED)
        }
        ErrorClass::Forbidden
            if rpc_status == "PERMISSION_DENIED" && message.contains("has not been used") =>
        {
            Some(API_DISABLED)
        }
        _ => None,
    }
}

/// When a daily quota renews: Google's quota day ends at midnight Pacific
/// time. Said in UTC with how long until then, so no time zone is guessed.
fn daily_renewal(now: SystemTime) -> String {
    let now = chrono::DateTime::<chrono::Utc>::from(now);
    let at = next_pacific_midnight(now);
    let left = (at - now).to_std().unwrap_or_default();
    format!(
        "the daily quota is spent; Google renews it at midnight Pacific time, {} UTC (in {}); \
         what was done is saved: run again then",
        at.format("%Y-%m-%d %H:%M"),
        super::client::human(Duration::from_secs(left.as_secs().div_ceil(60) * 60))
    )
}

/// The next midnight in America/Los_Angeles, in UTC: UTC-7 from the second
/// Sunday of March to the first Sunday of November (the change is at 2:00,
/// so those Sundays' midnights keep the old offset), else UTC-8.
fn next_pacific_midnight(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{Datelike, Duration as D, NaiveDate, Weekday};
    let nth_sunday = |y: i32, m: u32, n: u32| {
        NaiveDate::from_weekday_of_month_opt(y, m, Weekday::Sun, n as u8).unwrap_or_default()
    };
    let offset_hours = |d: NaiveDate| {
        let summer = d > nth_sunday(d.year(), 3, 2) && d <= nth_sunday(d.year(), 11, 1);
        if summer {
            7
        } else {
            8
        }
    };
    let today = (now - D::hours(8)).date_naive();
    for d in [today, today + D::days(1), today + D::days(2)] {
        let at = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + D::hours(offset_hours(d));
        if at > now {
            return at;
        }
    }
    now + D::days(1)
}

/// `Retry-After: 120` or `Retry-After: Fri, 27 Nov 2026 17:10:00 GMT`.
fn parse_retry_after(header: &str, now: SystemTime) -> Option<Duration> {
    let header = header.trim();
    if !header.is_empty() && header.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time".
        return Some(
            header
                .parse()
                .map_or(MAX_RETRY_AFTER, Duration::from_secs)
                .min(MAX_RETRY_AFTER),
        );
    }
    let at = httpdate::parse_http_date(header).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Gmail's `User-rate limit exceeded.  Retry after 2026-11-27T17:10:00.123Z`.
fn retry_after_in_message(message: &str, now: SystemTime) -> Option<Duration> {
    const MARK: &str = "retry after ";
    let start = message.to_ascii_lowercase().find(MARK)? + MARK.len();
    let stamp = message[start..].split_whitespace().next()?;
    let stamp = stamp.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let at = SystemTime::from(chrono::DateTime::parse_from_rfc3339(stamp).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A short readable message from a non-JSON body: the text of an HTML page
/// (Google front-end 502 pages), or the start of whatever else came.
fn body_snippet(body: &[u8], phrase: &str) -> String {
    let head = String::from_utf8_lossy(&body[..body.len().min(MAX_SNIPPET_SCAN)]);
    let text = if head.trim_start().starts_with('<') {
        super::html::page_text(&head)
    } else {
        head.into_owned()
    };
    let text = one_line_capped(&text, MAX_SNIPPET_CHARS);
    if text.is_empty() {
        format!("{phrase} (empty body)")
    } else {
        text
    }
}

/// Collapse whitespace and control characters to single spaces; cap the length.
fn one_line_capped(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    let mut chars = 0;
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        for c in (!out.is_empty())
            .then_some(' ')
            .into_iter()
            .chain(word.chars())
        {
            if chars == max_chars {
                out.push('…');
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
}

/// Reason used when the body names none, and the HTTP reason phrase.
fn status_names(status: u16) -> (&'static str, &'static str) {
    match status {
        0 => ("network", "No response"),
        400 => ("badRequest", "Bad Request"),
        401 => ("unauthorized", "Unauthorized"),
        403 => ("forbidden", "Forbidden"),
        404 => ("notFound", "Not Found"),
        405 => ("methodNotAllowed", "Method Not Allowed"),
        408 => ("requestTimeout", "Request Timeout"),
        409 => ("conflict", "Conflict"),
        413 => ("payloadTooLarge", "Payload Too Large"),
        429 => ("tooManyRequests", "Too Many Requests"),
        500 => ("internalServerError", "Internal Server Error"),
        502 => ("badGateway", "Bad Gateway"),
        503 => ("serviceUnavailable", "Service Unavailable"),
        504 => ("gatewayTimeout", "Gateway Timeout"),
        _ => match status / 100 {
            4 => ("clientError", "Client Error"),
            5 => ("serverError", "Server Error"),
            _ => ("unexpectedStatus", "Unexpected Status"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    fn now() -> SystemTime {
        SystemTime::from(chrono::DateTime::parse_from_rfc3339("2026-11-27T17:09:00Z").unwrap())
    }

    fn err(status: u16, body: &str) -> ApiError {
        ApiError::from_response_at(status, None, body.as_bytes(), now())
    }

    fn google(code: u16, reason: &str, message: &str, status: &str) -> String {
        serde_json::json!({"error": {
            "code": code, "message": message, "status": status,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }})
        .to_string()
    }

    #[track_caller]
    fn check(e: &ApiError, class: ErrorClass, reason: &str) {
        assert_eq!((e.class, e.reason.as_str()), (class, reason), "{e}");
    }

    #[test]
    fn quota_shapes_are_rate() {
        let e = err(
            429,
            &google(
                429,
                "rateLimitExceeded",
                "Too many concurrent requests for user",
                "RESOURCE_EXHAUSTED",
            ),
        );
        check(&e, Rate, "rateLimitExceeded");
        assert_eq!(
            e.to_string(),
            "429 rateLimitExceeded: Too many concurrent requests for user"
        );
        assert!(e.is_retryable_by_default());

        let e = err(
            403,
            &google(
                403,
                "userRateLimitExceeded",
                "User-rate limit exceeded.  Retry after 2026-11-27T17:10:00.123Z",
                "",
            ),
        );
        check(&e, Rate, "userRateLimitExceeded");
        assert_eq!(e.retry_after, Some(Duration::from_millis(60_123)));

        let per_minute = "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'gmail.googleapis.com' for consumer 'project_number:123456'.";
        let body = serde_json::json!({"error": {"code": 403, "message": per_minute,
            "errors": [{"message": per_minute, "domain": "usageLimits", "reason": "rateLimitExceeded"}],
            "status": "PERMISSION_DENIED"}});
        check(&err(403, &body.to_string()), Rate, "rateLimitExceeded");
        // The same message under another reason is still a per-minute limit.
        check(
            &err(403, &google(403, "quotaExceeded", per_minute, "")),
            Rate,
            "quotaExceeded",
        );
        check(
            &err(
                429,
                &google(429, "rateLimitExceeded", per_minute, "RESOURCE_EXHAUSTED"),
            ),
            Rate,
            "rateLimitExceeded",
        );

        let e = err(
            429,
            r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        check(&e, Rate, "RESOURCE_EXHAUSTED");
        assert_eq!(e.message, "Resource has been exhausted (e.g. check quota).");
        check(
            &err(
                403,
                r#"{"error":{"code":403,"message":"x","status":"RESOURCE_EXHAUSTED"}}"#,
            ),
            Rate,
            "RESOURCE_EXHAUSTED",
        );
        check(&err(429, ""), Rate, "tooManyRequests");
    }

    #[test]
    fn daily_quota_and_forbidden() {
        check(
            &err(
                403,
                &google(403, "dailyLimitExceeded", "Daily Limit Exceeded", ""),
            ),
            QuotaDaily,
            "dailyLimitExceeded",
        );
        check(
            &err(403, &google(403, "quotaExceeded", "Quota exceeded", "")),
            QuotaDaily,
            "quotaExceeded",
        );
        let per_day = "Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of service 'gmail.googleapis.com'.";
        check(
            &err(403, &google(403, "rateLimitExceeded", per_day, "")),
            QuotaDaily,
            "rateLimitExceeded",
        );
        check(
            &err(403, &google(403, "forbidden", "Sends per day exceeded", "")),
            QuotaDaily,
            "forbidden",
        );
        // 429 is a rate limit whatever it says.
        check(
            &err(429, &google(429, "rateLimitExceeded", per_day, "")),
            Rate,
            "rateLimitExceeded",
        );

        let e = err(
            403,
            &google(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
                "PERMISSION_DENIED",
            ),
        );
        check(&e, Forbidden, "insufficientPermissions");
        assert_eq!(e.diagnosis, None);
        assert!(!e.is_retryable_by_default());
        let e = err(
            403,
            &google(
                403,
                "accessNotConfigured",
                "Gmail API has not been used in project 123 before or it is disabled.",
                "PERMISSION_DENIED",
            ),
        );
        assert_eq!(
            (e.class, e.diagnosis.as_deref()),
            (Forbidden, Some(API_DISABLED))
        );
        let e = err(
            403,
            r#"{"error":{"code":403,"message":"Gmail API has not been used in project 123 before or it is disabled.","status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!(e.diagnosis.as_deref(), Some(API_DISABLED));
    }

    #[test]
    fn preconditions_carry_a_diagnosis() {
        let e = err(
            400,
            &google(
                400,
                "failedPrecondition",
                "Precondition check failed.",
                "FAILED_PRECONDITION",
            ),
        );
        check(&e, Precondition, "failedPrecondition");
        assert_eq!(e.diagnosis.as_deref(), Some(NO_SUBJECT));
        assert_eq!(
            e.to_string(),
            format!("400 failedPrecondition: Precondition check failed. ({NO_SUBJECT})")
        );
        assert!(
            NO_SUBJECT.contains("--user EMAIL") && NO_SUBJECT.contains("retrying does not help")
        );

        let e = err(
            400,
            &google(
                400,
                "failedPrecondition",
                "Mail service not enabled",
                "FAILED_PRECONDITION",
            ),
        );
        assert_eq!(
            (e.class, e.diagnosis.as_deref()),
            (Precondition, Some(NO_GMAIL))
        );
        assert!(NO_GMAIL.contains("retrying will not help"));

        // No `errors` array: the RPC status alone decides.
        let e = err(
            400,
            r#"{"error":{"code":400,"message":"Precondition check failed.","status":"FAILED_PRECONDITION"}}"#,
        );
        check(&e, Precondition, "FAILED_PRECONDITION");
        assert!(!e.is_retryable_by_default());
    }

    #[test]
    fn other_statuses() {
        check(
            &err(
                400,
                &google(
                    400,
                    "invalidArgument",
                    "Invalid id value",
                    "INVALID_ARGUMENT",
                ),
            ),
            Invalid,
            "invalidArgument",
        );
        check(
            &err(
                400,
                &google(
                    400,
                    "invalidArgument",
                    "Number of ids cannot exceed 1000",
                    "",
                ),
            ),
            Invalid,
            "invalidArgument",
        );
        check(&err(405, ""), Invalid, "methodNotAllowed");
        check(
            &err(413, "Request Entity Too Large"),
            Invalid,
            "payloadTooLarge",
        );
        check(&err(409, ""), Invalid, "conflict");
        check(
            &err(
                401,
                &google(401, "authError", "Invalid Credentials", "UNAUTHENTICATED"),
            ),
            Auth,
            "authError",
        );
        check(
            &err(
                404,
                &google(
                    404,
                    "notFound",
                    "Requested entity was not found.",
                    "NOT_FOUND",
                ),
            ),
            NotFound,
            "notFound",
        );
        check(
            &err(500, &google(500, "backendError", "Backend Error", "")),
            Server,
            "backendError",
        );
        check(
            &err(
                503,
                r#"{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}"#,
            ),
            Server,
            "UNAVAILABLE",
        );
        check(&err(504, ""), Server, "gatewayTimeout");
        check(&err(599, ""), Server, "serverError");
        check(&err(408, ""), Network, "requestTimeout");
        check(&err(302, "<html>moved</html>"), Server, "unexpectedStatus");
        // A ErrorInfo detail is the last source of a reason.
        let body = r#"{"error":{"code":403,"message":"m","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED"}]}}"#;
        assert_eq!(err(403, body).diagnosis.as_deref(), Some(API_DISABLED));
    }

    #[test]
    fn oauth_token_endpoint_errors_are_auth() {
        let e = err(
            400,
            r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
        );
        check(&e, Auth, "invalid_grant");
        assert_eq!(e.message, "Token has been expired or revoked.");
        assert_eq!(e.diagnosis.as_deref(), Some(BAD_GRANT));
        let e = err(
            401,
            r#"{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}"#,
        );
        assert_eq!(
            (e.class, e.diagnosis.as_deref()),
            (Auth, Some(NO_DELEGATION))
        );
        let e = err(400, r#"{"error":"invalid_request"}"#);
        assert_eq!((e.class, e.message.as_str()), (Auth, "invalid_request"));
        // A token endpoint that is overloaded is still a server problem.
        check(
            &err(503, r#"{"error":"temporarily_unavailable"}"#),
            Server,
            "temporarily_unavailable",
        );
    }

    #[test]
    fn non_json_bodies() {
        let page = r#"<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <title>Error 502 (Server Error)!!1</title>
  <style>
    *{margin:0;padding:0}html,code{font:15px/22px arial,sans-serif}
  </style>
  <script>var x = "<b>";</script>
  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>
  <p><b>502.</b> <ins>That’s an error.</ins>
  <p>The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.  <ins>That’s all we know.</ins>"#;
        let e = err(502, page);
        check(&e, Server, "badGateway");
        assert!(
            e.message.starts_with(
                "Error 502 (Server Error)!!1 502. That’s an error. The server encountered"
            ),
            "{}",
            e.message
        );
        assert!(
            !e.message.contains("margin")
                && !e.message.contains('<')
                && !e.message.contains("var x")
        );
        assert!(e.message.chars().count() <= MAX_SNIPPET_CHARS + 1);

        let e = err(503, "");
        assert_eq!(
            e.to_string(),
            "503 serviceUnavailable: Service Unavailable (empty body)"
        );
        assert_eq!(
            err(500, " \r\n\t").message,
            "Internal Server Error (empty body)"
        );

        let e = err(
            503,
            "upstream connect error or disconnect/reset before headers.\nreset reason: overflow",
        );
        assert_eq!(
            e.message,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        );

        let e = ApiError::from_response_at(500, None, &[0xff, 0xfe, b'a', 0, 7, b'b'], now());
        assert_eq!(e.message, "\u{fffd}\u{fffd}a b");
        assert_eq!(err(400, "{}").message, "{}");
        assert_eq!(err(400, "[]").message, "[]");
        check(&err(400, r#"{"error":42}"#), Invalid, "badRequest");
        check(
            &err(
                404,
                r#"[{"error":{"code":404,"message":"Not Found","status":"NOT_FOUND"}}]"#,
            ),
            NotFound,
            "NOT_FOUND",
        );
        let huge = "x".repeat(10 << 20);
        assert_eq!(
            err(500, &huge).message.chars().count(),
            MAX_SNIPPET_CHARS + 1
        );
    }

    #[test]
    fn messages_are_one_capped_line() {
        let long = format!("line one\r\n\tline two {}", "y".repeat(1000));
        let e = err(400, &google(400, "invalidArgument", &long, ""));
        assert!(e.message.starts_with("line one line two yyy"));
        assert!(e.message.ends_with('…'));
        assert_eq!(e.message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(!e.to_string().contains('\n'));
        // An empty top-level message falls back to the first item's.
        let body = r#"{"error":{"code":400,"message":"","errors":[{"reason":"invalid","message":"from item"}]}}"#;
        assert_eq!(err(400, body).message, "from item");
        let body = r#"{"error":{"code":500,"message":" \n","status":"INTERNAL"}}"#;
        assert_eq!(
            err(500, body).to_string(),
            "500 INTERNAL: Internal Server Error"
        );
    }

    #[test]
    fn concurrency_refusals_are_marked_where_parsed() {
        let concurrent = google(
            429,
            "rateLimitExceeded",
            "Too many concurrent requests for user",
            "RESOURCE_EXHAUSTED",
        );
        let e = err(429, &concurrent);
        assert_eq!((e.class, e.concurrent), (Rate, true));
        let quota = google(
            429,
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'",
            "RESOURCE_EXHAUSTED",
        );
        assert!(!err(429, &quota).concurrent);
        // Only rate errors are concurrency refusals.
        let other = google(
            400,
            "invalidArgument",
            "concurrent edits",
            "INVALID_ARGUMENT",
        );
        assert!(!err(400, &other).concurrent);
    }

    #[test]
    fn retry_after_forms() {
        let with = |header: &str, body: &str| {
            ApiError::from_response_at(429, Some(header), body.as_bytes(), now()).retry_after
        };
        assert_eq!(with("120", ""), Some(Duration::from_secs(120)));
        assert_eq!(with(" 0 ", ""), Some(Duration::ZERO));
        assert_eq!(
            with("Fri, 27 Nov 2026 17:10:30 GMT", ""),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            with("Fri, 27 Nov 2026 17:00:00 GMT", ""),
            Some(Duration::ZERO)
        );
        assert_eq!(with("-5", ""), None);
        assert_eq!(with("soon", ""), None);
        // Absurd numbers are a very long wait, clamped: never an overflow,
        // and never read as "no wait" (which would hammer the server).
        assert_eq!(with("99999999999999999999999", ""), Some(MAX_RETRY_AFTER));
        assert_eq!(with("18446744073709551615", ""), Some(MAX_RETRY_AFTER));
        assert_eq!(with("999999999", ""), Some(MAX_RETRY_AFTER));
        assert_eq!(
            with("Fri, 31 Dec 9999 23:59:59 GMT", ""),
            Some(MAX_RETRY_AFTER)
        );
        // The later of header and message wins.
        let body = google(
            403,
            "userRateLimitExceeded",
            "User-rate limit exceeded.  Retry after 2026-11-27T17:10:00.123Z",
            "",
        );
        assert_eq!(with("5", &body), Some(Duration::from_millis(60_123)));
        assert_eq!(with("600", &body), Some(Duration::from_secs(600)));
        let past = google(
            403,
            "userRateLimitExceeded",
            "User-rate limit exceeded. Retry after 2026-11-27T17:00:00Z.",
            "",
        );
        assert_eq!(err(403, &past).retry_after, Some(Duration::ZERO));
        let bad = google(
            403,
            "userRateLimitExceeded",
            "User-rate limit exceeded. Retry after tomorrow",
            "",
        );
        assert_eq!(err(403, &bad).retry_after, None);
        let info = r#"{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#;
        assert_eq!(
            err(429, info).retry_after,
            Some(Duration::from_millis(1500))
        );
        // Without a `now` override the result is still sane.
        let e = ApiError::from_response(429, Some("7"), b"");
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn network_errors() {
        let e = ApiError::network("connection reset by peer\n(os error 104)");
        assert_eq!(
            (e.status, e.class, e.reason.as_str()),
            (0, Network, "network")
        );
        assert_eq!(
            e.to_string(),
            "network: connection reset by peer (os error 104)"
        );
        assert!(e.is_retryable_by_default());
    }

    #[test]
    fn arbitrary_bodies_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.gen::<u64>();
        let pieces: [&[u8]; 12] = [
            b"<style",
            b"</style>",
            b"<",
            b">",
            b"{\"error\":",
            b"\"",
            b"Retry after ",
            b"2026-11-27T17:10:00Z",
            "é’".as_bytes(),
            &[0xff, 0xc3],
            b"per day",
            b"}",
        ];
        for _ in 0..5000 {
            let body: Vec<u8> = (0..next() % 12)
                .flat_map(|_| {
                    pieces[(next() % pieces.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            let status = (next() % 700) as u16;
            let e = ApiError::from_response_at(
                status,
                Some("Fri, 27 Nov 2026 17:10:30 GMT"),
                &body,
                now(),
            );
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn the_quota_day_ends_at_midnight_pacific() {
        let utc = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        for (now, want) in [
            ("2026-12-03T06:00:00Z", "2026-12-03T08:00:00Z"), // PST
            ("2026-12-03T08:00:00Z", "2026-12-04T08:00:00Z"), // just renewed
            ("2026-07-01T12:00:00Z", "2026-07-02T07:00:00Z"), // PDT
            ("2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"), // DST begins at 2:00
            ("2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"), // DST ends at 2:00
        ] {
            assert_eq!(next_pacific_midnight(utc(now)), utc(want), "{now}");
        }
        let body = google(403, "dailyLimitExceeded", "Daily Limit Exceeded", "");
        let at = SystemTime::from(utc("2026-12-03T06:00:00Z"));
        let e = ApiError::from_response_at(403, None, body.as_bytes(), at);
        assert_eq!(e.class, QuotaDaily);
        let d = e.diagnosis.unwrap();
        assert!(d.contains("2026-12-03 08:00 UTC (in 2h)"), "{d}");
    }

    #[test]
    fn class_names() {
        let names: Vec<_> = ErrorClass::ALL.iter().map(ErrorClass::as_str).collect();
        assert_eq!(
            names,
            [
                "rate",
                "server",
                "network",
                "auth",
                "not_found",
                "precondition",
                "invalid",
                "quota_daily",
                "forbidden",
                "malformed"
            ]
        );
        assert_eq!(QuotaDaily.to_string(), "quota_daily");
        // The Lua reference's class table and the LuaLS stubs name each one.
        let docs = include_str!("../../docs/lua-api.md");
        let stubs = include_str!("../../types/gmailscript.lua");
        for name in names {
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "docs/lua-api.md: {name}"
            );
            assert!(stubs.contains(&format!("\"{name}\"")), "types/: {name}");
        }
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorClass::parse("Rate"), None);
        assert_eq!(ErrorClass::parse(""), None);
    }
}
