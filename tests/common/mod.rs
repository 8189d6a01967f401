//! Shared by the integration tests and the benches: a `gmailscript sim` in
//! its own process, and a client of it. Not every user needs every item.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use gmailscript::auth::FixedToken;
use gmailscript::gmail::client::ClientConfig;
use gmailscript::gmail::Client;

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
