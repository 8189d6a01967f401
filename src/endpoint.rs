//! `--endpoint` URLs: which are accepted, and where a token may be sent.

use crate::exit::UsageError;

/// A Google token may go over plain http only to this machine (a local
/// simulator): anywhere else anyone on the way could read it.
/// `whose` names the token in the error, e.g. "account work's".
pub(crate) fn check_token_endpoint(url: &str, whose: &str) -> Result<(), UsageError> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(()); // endpoint_url reports it
    };
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if parsed.scheme() == "http" && !loopback {
        return Err(UsageError(format!(
            "--endpoint {url:?} is plain http to another machine: {whose} Google token would cross \
             the network unencrypted. Use an https:// URL, or http:// only to this machine \
             (127.0.0.1, ::1 or localhost, e.g. a gmailscript sim)"
        )));
    }
    Ok(())
}

/// `--endpoint`'s URL without a trailing slash; only http(s).
pub(crate) fn endpoint_url(url: &str) -> Result<String, UsageError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| UsageError(format!("--endpoint {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UsageError(format!(
            "--endpoint {url:?} must be an http:// or https:// URL"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}
