//! Shared by the integration tests and the benches: a `gmailscript sim` in
//! its own process, and a client of it. Not every user needs every item.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use gmailscript::auth::FixedToken;
use gmailscript::gmail::client::ClientConfig;
use gmailscript::gmail::Client;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_gmailscript");

/// A simulator process on a free port; killed when dropped.
pub struct SimProcess {
    child: Child,
    /// The base URL it printed as its first line.
    pub url: String,
}

impl SimProcess {
    pub fn start(args: &[&str]) -> SimProcess {
        let mut child = Command::new(BIN)
            .args(["sim", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gmailscript sim starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        SimProcess {
            child,
            url: line.trim().to_string(),
        }
    }
}

impl SimProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A blocking GET or POST of `path` with the simulator's token; the
    /// JSON answer (null for an empty body). Panics, naming the call, on a
    /// connection error, a status other than 2xx or a body that is not
    /// JSON: a test must not read a failed call as an empty answer.
    pub fn http(&self, post: bool, path: &str) -> Value {
        let (status, value) = self.call(post, path);
        assert!(
            (200..300).contains(&status),
            "{} {}{path} answered {status}: {value}",
            if post { "POST" } else { "GET" },
            self.url
        );
        value
    }

    /// A GET whose failure the test expects (an injected fault, say): the
    /// status and the JSON answer, whatever the status. Still panics on a
    /// connection error or a body that is not JSON.
    pub fn try_get(&self, path: &str) -> (u16, Value) {
        self.call(false, path)
    }

    fn call(&self, post: bool, path: &str) -> (u16, Value) {
        let method = if post { "POST" } else { "GET" };
        let url = format!("{}{path}", self.url);
        let (status, body) = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let c = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap();
            let req = if post { c.post(&url) } else { c.get(&url) };
            let r = req
                .bearer_auth("sim-token")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = r.status();
            let body = r
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: reading the answer: {e}"));
            (status, body)
        });
        if body.is_empty() {
            return (status.as_u16(), Value::Null);
        }
        let text = String::from_utf8_lossy(&body);
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{method} {url}: the answer is not JSON ({e}): {text}"));
        (status.as_u16(), value)
    }

    pub fn get(&self, path: &str) -> Value {
        self.http(false, path)
    }

    pub fn post(&self, path: &str) -> Value {
        self.http(true, path)
    }

    /// The simulator's counters (`GET /_sim/stats`).
    pub fn stats(&self) -> Value {
        self.get("/_sim/stats")
    }

    /// An access token of `user` (the simulator's admin API mints it).
    pub fn token_for(&self, user: &str) -> String {
        let v = self.post(&format!("/_sim/tokens?user={user}"));
        v["access_token"].as_str().unwrap().to_string()
    }

    /// Ids messages.list gives (spam and trash left out, as backup lists).
    pub fn listed(&self) -> HashSet<String> {
        self.listed_where("")
    }

    /// Ids messages.list gives for `query` (`q=...`, `labelIds=...`), every
    /// page of them.
    pub fn listed_where(&self, query: &str) -> HashSet<String> {
        let mut ids = HashSet::new();
        let mut token = String::new();
        loop {
            let v = self.get(&format!(
                "/gmail/v1/users/me/messages?{query}&maxResults=500{token}"
            ));
            for m in v["messages"].as_array().into_iter().flatten() {
                ids.insert(m["id"].as_str().unwrap().to_string());
            }
            match v["nextPageToken"].as_str() {
                Some(t) => token = format!("&pageToken={t}"),
                None => return ids,
            }
        }
    }
}

/// An engine client of `url` with the simulator's fixed token.
pub fn client(url: &str) -> Arc<Client> {
    Arc::new(
        Client::new(
            ClientConfig {
                base_url: url.to_string(),
                ..ClientConfig::default()
            },
            Arc::new(FixedToken::new("sim-token")),
        )
        .unwrap(),
    )
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A service account key file for the simulator in `dir` (`sa-key.json`),
/// signing with a throwaway RSA key that openssl makes.
pub fn service_key(dir: &Path, sim: &SimProcess) -> PathBuf {
    let pem = dir.join("sa.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl makes the test's RSA key");
    assert!(made.status.success(), "{made:?}");
    let key = dir.join("sa-key.json");
    std::fs::write(
        &key,
        serde_json::json!({
            "type": "service_account",
            "project_id": "sim-project",
            "private_key_id": "0123456789abcdef",
            "private_key": std::fs::read_to_string(&pem).unwrap(),
            "client_email": "robot@sim-project.iam.gserviceaccount.com",
            "client_id": "109876543210",
            "auth_uri": format!("{}/o/oauth2/auth", sim.url),
            "token_uri": format!("{}/token", sim.url),
        })
        .to_string(),
    )
    .unwrap();
    key
}
