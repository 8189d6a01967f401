//! The simulator's OAuth side: access tokens and whom they stand for, and a
//! token endpoint that serves the grants Google's libraries use (refresh
//! token, authorization code from the installed-app flow, and the JWT bearer
//! grant of service accounts). Tokens are short-lived so clients' refresh
//! paths get exercised.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

pub(crate) const SCOPE_FULL: &str = "https://mail.google.com/";
const SCOPE_MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";
const SCOPE_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
const SCOPE_METADATA: &str = "https://www.googleapis.com/auth/gmail.metadata";
/// The Admin SDK Directory scopes `users.list` and `users.get` take
/// (discovery document admin.directory_v1), besides cloud-platform.
const SCOPE_DIRECTORY_USER: &str = "https://www.googleapis.com/auth/admin.directory.user";
const SCOPE_DIRECTORY_USER_READONLY: &str =
    "https://www.googleapis.com/auth/admin.directory.user.readonly";
const SCOPE_CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
pub(crate) const SCOPE_INSERT: &str = "https://www.googleapis.com/auth/gmail.insert";

/// Who an access token acts for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Principal {
    /// The mailbox owner: the user, or the service account itself when it
    /// called without a delegated subject (which has no mailbox).
    pub(crate) email: String,
    /// A service account token without `sub`: every mailbox call answers
    /// 400 failedPrecondition, as on the real service.
    pub(crate) no_mailbox: bool,
    pub(crate) scopes: Vec<String>,
}

impl Principal {
    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
    pub(crate) fn can_read(&self) -> bool {
        [SCOPE_FULL, SCOPE_MODIFY, SCOPE_READONLY, SCOPE_METADATA]
            .iter()
            .any(|s| self.has(s))
    }
    /// Only gmail.metadata: no bodies, no search.
    pub(crate) fn metadata_only(&self) -> bool {
        self.has(SCOPE_METADATA)
            && ![SCOPE_FULL, SCOPE_MODIFY, SCOPE_READONLY]
                .iter()
                .any(|s| self.has(s))
    }
    pub(crate) fn can_modify(&self) -> bool {
        self.has(SCOPE_FULL) || self.has(SCOPE_MODIFY)
    }
    pub(crate) fn can_delete(&self) -> bool {
        self.has(SCOPE_FULL)
    }
    /// May read the Directory's users (if also an administrator).
    pub(crate) fn can_read_directory(&self) -> bool {
        [
            SCOPE_DIRECTORY_USER,
            SCOPE_DIRECTORY_USER_READONLY,
            SCOPE_CLOUD_PLATFORM,
        ]
        .iter()
        .any(|s| self.has(s))
    }
}

#[derive(Debug)]
struct AccessToken {
    principal: Principal,
    expires: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Grant {
    email: String,
    scopes: Vec<String>,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct PendingCode {
    grant: Grant,
    redirect_uri: String,
    challenge: Option<String>,
}

/// A token-endpoint failure: Google's `{"error","error_description"}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OAuthError {
    pub(crate) status: u16,
    pub(crate) error: &'static str,
    pub(crate) description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status: if error == "invalid_client" || error == "unauthorized_client" {
                401
            } else {
                400
            },
            error,
            description: description.into(),
        }
    }
    pub(crate) fn body(&self) -> Value {
        json!({ "error": self.error, "error_description": self.description })
    }
}

#[derive(Debug)]
pub(crate) struct Auth {
    default_user: String,
    lifetime: Duration,
    state: Mutex<AuthState>,
}

#[derive(Debug, Default)]
struct AuthState {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, Grant>,
    codes: HashMap<String, PendingCode>,
    counter: u64,
}

/// The refresh token that is always valid for the default user, so a client
/// can be pointed at the simulator without going through a login.
pub const DEFAULT_REFRESH_TOKEN: &str = "sim-refresh-token";

impl Auth {
    pub(crate) fn new(default_user: &str, fixed_token: &str, lifetime: Duration) -> Self {
        let mut state = AuthState::default();
        // The fixed token and refresh token stand for the default user with
        // every right: all of Gmail, and reading the Directory (which
        // answers only when the default user is its administrator).
        let all = || {
            vec![
                SCOPE_FULL.to_string(),
                SCOPE_DIRECTORY_USER_READONLY.to_string(),
            ]
        };
        state.access.insert(
            fixed_token.to_string(),
            AccessToken {
                principal: Principal {
                    email: default_user.to_string(),
                    no_mailbox: false,
                    scopes: all(),
                },
                expires: None,
            },
        );
        state.refresh.insert(
            DEFAULT_REFRESH_TOKEN.to_string(),
            Grant {
                email: default_user.to_string(),
                scopes: all(),
                revoked: false,
            },
        );
        Auth {
            default_user: default_user.to_string(),
            lifetime,
            state: Mutex::new(state),
        }
    }

    /// Who the `Authorization` header stands for; None when missing,
    /// unknown or expired (the caller answers 401).
    pub(crate) fn principal(&self, authorization: Option<&str>) -> Option<Principal> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let st = self.state.lock().unwrap();
        let t = st.access.get(token)?;
        match t.expires {
            Some(e) if Instant::now() >= e => None,
            _ => Some(t.principal.clone()),
        }
    }

    /// Mint an access token (also used by the admin API for tests).
    pub(crate) fn mint(
        &self,
        principal: Principal,
        lifetime: Option<Duration>,
    ) -> (String, Duration) {
        let lifetime = lifetime.unwrap_or(self.lifetime);
        let mut st = self.state.lock().unwrap();
        st.counter += 1;
        let token = format!("ya29.sim-{}-{:x}", st.counter, rand::random::<u64>());
        st.access.insert(
            token.clone(),
            AccessToken {
                principal,
                expires: Some(Instant::now() + lifetime),
            },
        );
        (token, lifetime)
    }

    fn token_reply(&self, grant: &Grant, refresh: Option<String>, no_mailbox: bool) -> Value {
        let (token, lifetime) = self.mint(
            Principal {
                email: grant.email.clone(),
                no_mailbox,
                scopes: grant.scopes.clone(),
            },
            None,
        );
        let mut v = json!({
            "access_token": token,
            "expires_in": lifetime.as_secs().max(1),
            "scope": grant.scopes.join(" "),
            "token_type": "Bearer",
        });
        if let Some(r) = refresh {
            v["refresh_token"] = json!(r);
        }
        v
    }

    /// `POST /token` with a form body.
    pub(crate) fn token_endpoint(
        &self,
        form: &HashMap<String, String>,
        known_user: impl Fn(&str) -> bool,
        token_uri: &str,
    ) -> Result<Value, OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        match field("grant_type") {
            Some("refresh_token") => {
                field("client_id").ok_or_else(|| {
                    OAuthError::new("invalid_request", "Missing required parameter: client_id")
                })?;
                let rt = field("refresh_token").ok_or_else(|| {
                    OAuthError::new(
                        "invalid_request",
                        "Missing required parameter: refresh_token",
                    )
                })?;
                let grant = self.state.lock().unwrap().refresh.get(rt).cloned();
                match grant {
                    Some(g) if !g.revoked => Ok(self.token_reply(&g, None, false)),
                    _ => Err(OAuthError::new(
                        "invalid_grant",
                        "Token has been expired or revoked.",
                    )),
                }
            }
            Some("authorization_code") => {
                let code = field("code").ok_or_else(|| {
                    OAuthError::new("invalid_request", "Missing required parameter: code")
                })?;
                let pending = self.state.lock().unwrap().codes.remove(code);
                let pending = pending
                    .ok_or_else(|| OAuthError::new("invalid_grant", "Malformed auth code."))?;
                if field("redirect_uri") != Some(pending.redirect_uri.as_str()) {
                    return Err(OAuthError::new("redirect_uri_mismatch", "Bad Request"));
                }
                if let Some(challenge) = &pending.challenge {
                    let verifier = field("code_verifier").unwrap_or("");
                    if &pkce_s256(verifier) != challenge && verifier != challenge {
                        return Err(OAuthError::new("invalid_grant", "Invalid code verifier."));
                    }
                }
                let refresh = {
                    let mut st = self.state.lock().unwrap();
                    st.counter += 1;
                    let r = format!("1//sim-refresh-{}-{:x}", st.counter, rand::random::<u64>());
                    st.refresh.insert(r.clone(), pending.grant.clone());
                    r
                };
                Ok(self.token_reply(&pending.grant, Some(refresh), false))
            }
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                let assertion = field("assertion").ok_or_else(|| {
                    OAuthError::new("invalid_request", "Missing required parameter: assertion")
                })?;
                let claims = jwt_claims(assertion)?;
                let iss = claims["iss"].as_str().unwrap_or("");
                let scope = claims["scope"].as_str().unwrap_or("");
                if iss.is_empty() {
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "Invalid JWT: no iss claim.",
                    ));
                }
                if scope.is_empty() {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        "Invalid OAuth scope or ID token audience provided.",
                    ));
                }
                let aud = claims["aud"].as_str().unwrap_or("");
                if aud != token_uri && !aud.ends_with("/token") {
                    return Err(OAuthError::new(
                        "invalid_grant",
                        format!("Invalid JWT: aud must be the token endpoint {token_uri}"),
                    ));
                }
                // Real wall time: the client signs iat/exp with its own
                // clock, as it does for Google.
                let now = chrono::Utc::now().timestamp();
                let iat = claims["iat"].as_i64().unwrap_or(0);
                let exp = claims["exp"].as_i64().unwrap_or(0);
                if exp <= now || exp - iat > 3600 || iat > now + 300 {
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
                    ));
                }
                let scopes: Vec<String> = scope.split_whitespace().map(String::from).collect();
                match claims["sub"].as_str().filter(|s| !s.is_empty()) {
                    Some(sub) if known_user(sub) => Ok(self.token_reply(
                        &Grant {
                            email: sub.to_string(),
                            scopes,
                            revoked: false,
                        },
                        None,
                        false,
                    )),
                    // Any address the simulator serves gets a token for
                    // its own mailbox (domain-wide delegation), a suspended
                    // one too (administrators' reports: its ids still list).
                    // Any other `sub`, in the domain or outside it, is "the
                    // user does not exist" in Google's table of service
                    // account errors: 400 invalid_grant "Invalid email or
                    // User ID" (GAM reports it as "Service not
                    // applicable/Does not exist", GAM-team/GAM#1452).
                    Some(_) => Err(OAuthError::new("invalid_grant", "Invalid email or User ID")),
                    // No subject: a token for the service account itself,
                    // which has no mailbox.
                    None => Ok(self.token_reply(
                        &Grant {
                            email: iss.to_string(),
                            scopes,
                            revoked: false,
                        },
                        None,
                        true,
                    )),
                }
            }
            Some(other) => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("Invalid grant_type: {other}"),
            )),
            None => Err(OAuthError::new(
                "unsupported_grant_type",
                "Invalid grant_type: ",
            )),
        }
    }

    /// `GET /o/oauth2/auth`: consent is given at once (for `login_hint` or
    /// the default user) and the browser is sent back with a code. Returns
    /// the redirect location.
    pub(crate) fn authorize(&self, q: &HashMap<String, String>) -> Result<String, OAuthError> {
        let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        get("client_id").ok_or_else(|| {
            OAuthError::new("invalid_request", "Missing required parameter: client_id")
        })?;
        let redirect = get("redirect_uri").ok_or_else(|| {
            OAuthError::new(
                "invalid_request",
                "Missing required parameter: redirect_uri",
            )
        })?;
        if get("response_type") != Some("code") {
            return Err(OAuthError::new(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        if !(redirect.starts_with("http://127.0.0.1")
            || redirect.starts_with("http://localhost")
            || redirect.starts_with("http://[::1]"))
        {
            return Err(OAuthError::new(
                "invalid_request",
                "redirect_uri must be a loopback address for installed apps (the out-of-band flow is retired)",
            ));
        }
        let scopes: Vec<String> = get("scope")
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        if scopes.is_empty() {
            return Err(OAuthError::new(
                "invalid_request",
                "Missing required parameter: scope",
            ));
        }
        let email = get("login_hint").unwrap_or(&self.default_user).to_string();
        let code = {
            let mut st = self.state.lock().unwrap();
            st.counter += 1;
            let code = format!("4/sim-code-{}-{:x}", st.counter, rand::random::<u64>());
            st.codes.insert(
                code.clone(),
                PendingCode {
                    grant: Grant {
                        email,
                        scopes: scopes.clone(),
                        revoked: false,
                    },
                    redirect_uri: redirect.to_string(),
                    challenge: get("code_challenge").map(String::from),
                },
            );
            code
        };
        let mut url = url::Url::parse(redirect)
            .map_err(|_| OAuthError::new("invalid_request", "redirect_uri is not a URL"))?;
        url.query_pairs_mut().append_pair("code", &code);
        if let Some(state) = get("state") {
            url.query_pairs_mut().append_pair("state", state);
        }
        url.query_pairs_mut()
            .append_pair("scope", &scopes.join(" "));
        Ok(url.to_string())
    }

    /// Revoke a refresh token (or an access token). True if it existed.
    pub(crate) fn revoke(&self, token: &str) -> bool {
        let mut st = self.state.lock().unwrap();
        if let Some(g) = st.refresh.get_mut(token) {
            g.revoked = true;
            return true;
        }
        st.access.remove(token).is_some()
    }
}

fn pkce_s256(verifier: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The claims of a JWT. The signature is not checked: the simulator knows no
/// service-account keys, and what it tests is the client's flow.
fn jwt_claims(jwt: &str) -> Result<Value, OAuthError> {
    let bad = || OAuthError::new("invalid_grant", "Invalid JWT Signature.");
    let mut parts = jwt.split('.');
    let (_header, claims, _sig) = (
        parts.next(),
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
    );
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn jwt(claims: Value) -> String {
        let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            e(br#"{"alg":"RS256","typ":"JWT"}"#),
            e(claims.to_string().as_bytes()),
            e(b"sig")
        )
    }

    #[test]
    fn fixed_token_and_refresh_grant() {
        let a = Auth::new("me@example.com", "T", Duration::from_secs(60));
        assert_eq!(
            a.principal(Some("Bearer T")).unwrap().email,
            "me@example.com"
        );
        assert!(a.principal(Some("Bearer nope")).is_none());
        assert!(a.principal(None).is_none());
        let refresh = || {
            let grant = form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "c"),
                ("refresh_token", DEFAULT_REFRESH_TOKEN),
            ]);
            a.token_endpoint(&grant, |_| true, "http://x/token")
        };
        let v = refresh().unwrap();
        let tok = v["access_token"].as_str().unwrap();
        assert_eq!(v["expires_in"], 60);
        assert!(a.principal(Some(&format!("Bearer {tok}"))).is_some());
        assert!(a.revoke(DEFAULT_REFRESH_TOKEN));
        let e = refresh().unwrap_err();
        assert_eq!(e.error, "invalid_grant");
    }

    #[test]
    fn short_lived_tokens_expire() {
        let a = Auth::new("me@example.com", "T", Duration::from_millis(30));
        let (tok, _) = a.mint(
            Principal {
                email: "me@example.com".into(),
                no_mailbox: false,
                scopes: vec![],
            },
            None,
        );
        assert!(a.principal(Some(&format!("Bearer {tok}"))).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(a.principal(Some(&format!("Bearer {tok}"))).is_none());
    }

    #[test]
    fn jwt_grant_with_and_without_subject() {
        let a = Auth::new("me@example.com", "T", Duration::from_secs(60));
        let now = chrono::Utc::now().timestamp();
        let claims = |sub: Option<&str>| {
            let mut c = json!({"iss": "sa@p.iam.gserviceaccount.com", "scope": SCOPE_READONLY,
                "aud": "http://x/token", "iat": now, "exp": now + 3600});
            if let Some(s) = sub {
                c["sub"] = json!(s);
            }
            jwt(c)
        };
        let grant = |j: String| {
            a.token_endpoint(
                &form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &j),
                ]),
                |u| u == "me@example.com",
                "http://x/token",
            )
        };
        let v = grant(claims(Some("me@example.com"))).unwrap();
        let p = a
            .principal(Some(&format!(
                "Bearer {}",
                v["access_token"].as_str().unwrap()
            )))
            .unwrap();
        assert_eq!(p.email, "me@example.com");
        assert!(!p.no_mailbox && p.can_read() && !p.can_modify());
        let v = grant(claims(None)).unwrap();
        let p = a
            .principal(Some(&format!(
                "Bearer {}",
                v["access_token"].as_str().unwrap()
            )))
            .unwrap();
        assert!(p.no_mailbox);
        assert_eq!(
            grant(claims(Some("ghost@example.com"))).unwrap_err().error,
            "invalid_grant"
        );
        assert_eq!(grant("garbage".into()).unwrap_err().error, "invalid_grant");
    }

    #[test]
    fn installed_app_code_flow_with_pkce() {
        let a = Auth::new("me@example.com", "T", Duration::from_secs(60));
        let verifier = "a-verifier-of-enough-length-0123456789abcdef";
        let loc = a
            .authorize(&form(&[
                ("client_id", "c"),
                ("redirect_uri", "http://127.0.0.1:5000/"),
                ("response_type", "code"),
                ("scope", SCOPE_READONLY),
                ("state", "xyz"),
                ("code_challenge", &pkce_s256(verifier)),
                ("code_challenge_method", "S256"),
            ]))
            .unwrap();
        let url = url::Url::parse(&loc).unwrap();
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "xyz");
        let v = a
            .token_endpoint(
                &form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &q["code"]),
                    ("redirect_uri", "http://127.0.0.1:5000/"),
                    ("client_id", "c"),
                    ("code_verifier", verifier),
                ]),
                |_| true,
                "http://x/token",
            )
            .unwrap();
        assert!(v["refresh_token"].as_str().unwrap().starts_with("1//"));
        // A code is good once.
        let again = a.token_endpoint(
            &form(&[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", "http://127.0.0.1:5000/"),
            ]),
            |_| true,
            "http://x/token",
        );
        assert_eq!(again.unwrap_err().error, "invalid_grant");
        assert!(a
            .authorize(&form(&[
                ("client_id", "c"),
                ("redirect_uri", "urn:ietf:wg:oauth:2.0:oob"),
                ("response_type", "code"),
                ("scope", "s")
            ]))
            .is_err());
    }
}
