//! A small, deliberately broken Gmail: an HTTP/1.1 server on loopback whose
//! answers a test scripts one by one (wrong Content-IDs, bodies for other
//! ids, poison messages, endless listings, endless or stalled bodies, gzip
//! bombs, absurd Retry-After values). It shares no code with the client or
//! the simulator, and it only listens on 127.0.0.1.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.to_string())
        })
    }
    pub fn is_batch(&self) -> bool {
        self.path().starts_with("/batch")
    }
    /// The inner requests of a batch: (Content-ID, path and query).
    pub fn batch_parts(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.body);
        let mut out = Vec::new();
        let mut cid = String::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(v) = line
                .strip_prefix("Content-ID:")
                .or_else(|| line.strip_prefix("Content-Id:"))
            {
                cid = v
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string();
            }
            for verb in ["GET ", "POST "] {
                if let Some(rest) = line.strip_prefix(verb) {
                    let target = rest.split(' ').next().unwrap_or("").to_string();
                    out.push((cid.clone(), target));
                }
            }
        }
        out
    }
}

/// The id in `/gmail/v1/users/me/messages/ID?...`.
pub fn message_id(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    path.rsplit('/').next().unwrap_or("").to_string()
}

/// What the server does with one request.
pub enum Reply {
    /// A whole response: status, extra headers, body.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Headers, then `chunk` again and again until the client hangs up.
    Endless {
        headers: Vec<(String, String)>,
        chunk: Vec<u8>,
    },
    /// Headers and the start of a body, then nothing, ever.
    Stall {
        headers: Vec<(String, String)>,
        partial: Vec<u8>,
    },
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        let (Reply::Full { headers, .. }
        | Reply::Endless { headers, .. }
        | Reply::Stall { headers, .. }) = &mut self;
        headers.push((name.into(), value.into()));
        self
    }
    /// A batch answer: each part (Content-ID or none, status, JSON body).
    pub fn batch(parts: Vec<(Option<String>, u16, String)>) -> Reply {
        let mut body = String::new();
        for (cid, status, json) in parts {
            body.push_str("--b0undary\r\nContent-Type: application/http\r\n");
            if let Some(cid) = cid {
                body.push_str(&format!("Content-ID: <{cid}>\r\n"));
            }
            body.push_str(&format!(
                "\r\nHTTP/1.1 {status} X\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json}\r\n"
            ));
        }
        body.push_str("--b0undary--\r\n");
        Reply::Full {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "multipart/mixed; boundary=b0undary".into(),
            )],
            body: body.into_bytes(),
        }
    }
}

/// A Gmail error body.
pub fn error_json(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message,
        "errors": [{"domain": "global", "reason": reason, "message": message}]}})
}

/// A metadata-format message.
pub fn message_json(id: &str) -> String {
    serde_json::json!({
        "id": id, "threadId": id, "labelIds": ["INBOX"], "snippet": "hi",
        "sizeEstimate": 100, "historyId": "7", "internalDate": "1700000000000",
        "payload": {"headers": [{"name": "Subject", "value": format!("about {id}")}]}
    })
    .to_string()
}

/// A listing page.
pub fn list_page(ids: &[String], next: Option<&str>) -> serde_json::Value {
    let mut page = serde_json::json!({
        "messages": ids.iter().map(|id| serde_json::json!({"id": id, "threadId": id})).collect::<Vec<_>>(),
        "resultSizeEstimate": ids.len(),
    });
    if let Some(n) = next {
        page["nextPageToken"] = n.into();
    }
    page
}

pub type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

pub struct Hostile {
    pub url: String,
    /// Every request received, in order.
    pub seen: Arc<Mutex<Vec<Req>>>,
}

impl Hostile {
    /// Serve `handler` on a free loopback port, on a thread of its own,
    /// for the rest of the test process.
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Hostile {
        let handler: Handler = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        continue;
                    };
                    let (handler, seen) = (handler.clone(), seen2.clone());
                    tokio::spawn(async move {
                        let _ = serve(sock, handler, seen).await;
                    });
                }
            });
        });
        let addr: SocketAddr = rx.recv().unwrap();
        Hostile {
            url: format!("http://{addr}"),
            seen,
        }
    }

    /// How many requests so far matched `pred`.
    pub fn count(&self, pred: impl Fn(&Req) -> bool) -> usize {
        self.seen.lock().unwrap().iter().filter(|r| pred(r)).count()
    }
}

async fn serve(
    mut sock: TcpStream,
    handler: Handler,
    seen: Arc<Mutex<Vec<Req>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 << 10];
    loop {
        // One request: the head, then Content-Length bytes.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let body = buf[head_end + 4..head_end + 4 + len].to_vec();
        buf.drain(..head_end + 4 + len);
        let req = Req {
            method,
            target,
            headers,
            body,
        };
        seen.lock().unwrap().push(req.clone());
        match handler(&req) {
            Reply::Full {
                status,
                headers,
                body,
            } => {
                let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                sock.write_all(out.as_bytes()).await?;
                sock.write_all(&body).await?;
            }
            Reply::Endless { headers, chunk } => {
                let mut out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n".to_string();
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                sock.write_all(out.as_bytes()).await?;
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                // Until the client hangs up (a write fails), bounded all the
                // same: 64 GiB at most.
                for _ in 0..(64u64 << 30) / chunk.len().max(1) as u64 {
                    sock.write_all(&framed).await?;
                }
                return Ok(());
            }
            Reply::Stall { headers, partial } => {
                let mut out = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n".to_string();
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                sock.write_all(out.as_bytes()).await?;
                sock.write_all(&partial).await?;
                tokio::time::sleep(Duration::from_secs(600)).await;
                return Ok(());
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// gzip of `n` zero bytes (a bomb: tiny on the wire, huge unpacked).
pub fn gzip_zeros(n: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(zeros.len());
        enc.write_all(&zeros[..k]).unwrap();
        left -= k;
    }
    enc.finish().unwrap()
}
