//! Shared by the integration tests and the benches: a `gmailscript sim` in
//! its own process, and a client of it. Not every user needs every item.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
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
