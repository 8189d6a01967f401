//! The simulator against a plain HTTP client: shapes, limits, errors, quota,
//! concurrency, faults and auth, as a bulk Gmail client would notice them.

use std::time::Duration;

use gmailscript::sim::{self, faults::FaultSpec, quota::Rules, SimConfig, SimHandle};
use serde_json::{json, Value};

const TOKEN: &str = "sim-token";

fn config(messages: usize) -> SimConfig {
    SimConfig {
        messages,
        quota: Rules::Off,
        ..SimConfig::default()
    }
}

async fn start(cfg: SimConfig) -> SimHandle {
    sim::start(cfg).await.expect("simulator starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get(h: &SimHandle, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}/gmail/v1/users/me/{path}", h.base_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(h: &SimHandle, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/gmail/v1/users/me/{path}", h.base_url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The simulator's counters (`GET /_sim/stats`).
async fn sim_stats(h: &SimHandle) -> Value {
    client()
        .get(format!("{}/_sim/stats", h.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn reason(v: &Value) -> &str {
    v.pointer("/error/errors/0/reason")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn message(v: &Value) -> &str {
    v.pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// All ids, paging with `maxResults`; returns (ids, pages).
async fn list_all(h: &SimHandle, query: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("messages?{query}");
        if let Some(t) = &token {
            path.push_str(&format!("&pageToken={t}"));
        }
        let (status, v) = get(h, &path).await;
        assert_eq!(status, 200, "{v}");
        pages += 1;
        for m in v["messages"].as_array().into_iter().flatten() {
            ids.push(m["id"].as_str().unwrap().to_string());
        }
        match v["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return (ids, pages),
        }
    }
}

/// A batch body of GETs for `targets`, Content-IDs `item-N`.
fn batch_body(boundary: &str, targets: &[String]) -> String {
    let mut b = String::new();
    for (i, t) in targets.iter().enumerate() {
        b.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <item-{i}>\r\n\r\nGET {t}\r\n\r\n"
        ));
    }
    b.push_str(&format!("--{boundary}--\r\n"));
    b
}

/// One answered part: Content-ID, status, JSON body.
#[derive(Debug)]
struct PartAnswer {
    content_id: Option<String>,
    status: u16,
    body: Value,
}

/// A test-side reading of a batch answer (deliberately naive but strict).
fn read_batch(content_type: &str, body: &str) -> Vec<PartAnswer> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("boundary in Content-Type")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    assert!(
        body.trim_end().ends_with(&format!("{delim}--")),
        "batch answer ends with the close delimiter"
    );
    body.split(&delim)
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .map(|p| {
            let (mime, http) = p.trim_start().split_once("\r\n\r\n").expect("part head");
            let content_id = mime
                .lines()
                .find_map(|l| l.strip_prefix("Content-ID: "))
                .map(|s| s.trim().to_string());
            let (head, json) = http.split_once("\r\n\r\n").expect("inner head");
            let status_line = head.lines().next().unwrap();
            let mut words = status_line.split(' ');
            assert_eq!(words.next(), Some("HTTP/1.1"));
            let status: u16 = words.next().unwrap().parse().unwrap();
            assert!(words.next().is_some(), "status line has a reason phrase");
            let json = json.trim();
            PartAnswer {
                content_id,
                status,
                body: if json.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(json).expect("part body is JSON")
                },
            }
        })
        .collect()
}

async fn send_batch(h: &SimHandle, boundary: &str, body: String) -> (u16, Vec<PartAnswer>, String) {
    let r = client()
        .post(format!("{}/batch/gmail/v1", h.base_url))
        .bearer_auth(TOKEN)
        .header(
            "Content-Type",
            format!("multipart/mixed; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    if status == 200 {
        (status, read_batch(&ct, &text), text)
    } else {
        (status, Vec::new(), text)
    }
}

fn get_targets(ids: &[String], format: &str) -> Vec<String> {
    ids.iter()
        .map(|id| format!("/gmail/v1/users/me/messages/{id}?format={format}"))
        .collect()
}

#[tokio::test]
async fn auth_is_required_and_errors_are_google_shaped() {
    let h = start(config(20)).await;
    let r = client()
        .get(format!("{}/gmail/v1/users/me/profile", h.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let v: Value = r.json().await.unwrap();
    // No credentials at all: `required` "Login Required.", as Google says.
    assert_eq!(reason(&v), "required");
    assert_eq!(v["error"]["errors"][0]["message"], "Login Required.");
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(v["error"]["code"], 401);
    // A token it does not know: `authError` "Invalid Credentials".
    let r = client()
        .get(format!("{}/gmail/v1/users/me/profile", h.base_url))
        .bearer_auth("ya29.bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(reason(&v), "authError");
    assert_eq!(v["error"]["errors"][0]["message"], "Invalid Credentials");

    let (status, v) = get(&h, "profile").await;
    assert_eq!(status, 200);
    assert_eq!(v["emailAddress"], "me@example.com");
    assert_eq!(v["messagesTotal"], 20);

    // Another user's mailbox with my token: delegation denied.
    let r = client()
        .get(format!(
            "{}/gmail/v1/users/alice@example.com/profile",
            h.base_url
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    h.stop().await;
}

#[tokio::test]
async fn paged_list_of_1200_ids_with_max_results_500() {
    let h = start(config(1200)).await;
    let (ids, pages) = list_all(&h, "maxResults=500&includeSpamTrash=true").await;
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 1200);
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 1200, "no id twice across pages");
    // Newest first: ids encode the date.
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    // Spam and trash are left out unless asked for.
    let (visible, _) = list_all(&h, "maxResults=500").await;
    assert!(
        visible.len() < 1200 && visible.len() > 1000,
        "{}",
        visible.len()
    );
    let (spam, _) = list_all(&h, "labelIds=SPAM").await;
    assert!(!spam.is_empty());
    assert_eq!(
        visible.len() + spam.len() + list_all(&h, "labelIds=TRASH").await.0.len()
            - count_both(&h).await,
        1200
    );

    let (status, v) = get(&h, "messages?maxResults=501").await;
    assert_eq!(status, 400);
    assert_eq!(reason(&v), "invalidArgument");
    let (status, _) = get(&h, "messages?pageToken=zzz").await;
    assert_eq!(status, 400);
    h.stop().await;
}

/// Messages both in SPAM and TRASH (counted twice above).
async fn count_both(h: &SimHandle) -> usize {
    list_all(h, "labelIds=SPAM&labelIds=TRASH").await.0.len()
}

#[tokio::test]
async fn get_formats_have_gmails_shapes() {
    let h = start(config(50)).await;
    let (ids, _) = list_all(&h, "maxResults=50").await;
    let id = &ids[0];
    let (_, min) = get(&h, &format!("messages/{id}?format=minimal")).await;
    assert_eq!(min["id"], id.as_str());
    assert!(min["historyId"].is_string() && min["internalDate"].is_string());
    assert!(min.get("payload").is_none() && min.get("raw").is_none());
    let (_, meta) = get(
        &h,
        &format!("messages/{id}?format=metadata&metadataHeaders=Subject&metadataHeaders=from"),
    )
    .await;
    let names: Vec<String> = meta["payload"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(names.contains(&"subject".into()) && names.contains(&"from".into()));
    assert!(names.iter().all(|n| n == "subject" || n == "from"));
    let (_, raw) = get(&h, &format!("messages/{id}?format=raw")).await;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw["sizeEstimate"].as_u64().unwrap() as usize, bytes.len());
    let (_, full) = get(&h, &format!("messages/{id}")).await;
    assert!(full["payload"]["mimeType"].is_string());

    let (status, v) = get(&h, &format!("messages/{id}?format=html")).await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("minimal"), "{v}");
    let (status, v) = get(&h, "messages/not-an-id!").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = get(&h, "messages/0123456789abcdef").await;
    assert_eq!(status, 404);
    assert_eq!(reason(&v), "notFound");
    let (status, _) = get(&h, "nonsense/path").await;
    assert_eq!(status, 404);
    h.stop().await;
}

#[tokio::test]
async fn batch_answers_in_order_with_response_content_ids() {
    let h = start(SimConfig {
        concurrency: 100,
        ..config(120)
    })
    .await;
    let (ids, _) = list_all(&h, "maxResults=500&includeSpamTrash=true").await;
    let targets = get_targets(&ids[..100], "metadata");
    let (status, parts, _) = send_batch(&h, "b0und", batch_body("b0und", &targets)).await;
    assert_eq!(status, 200);
    assert_eq!(parts.len(), 100);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            p.content_id.as_deref(),
            Some(format!("<response-item-{i}>").as_str())
        );
        assert_eq!(p.status, 200);
        assert_eq!(p.body["id"], ids[i].as_str());
    }
    let stats = sim_stats(&h).await;
    assert_eq!(stats["batches"], 1);
    assert_eq!(stats["batch_parts"], 100);
    assert_eq!(stats["calls"]["messages.get"]["200"], 100);

    // 101 parts: the whole batch is refused.
    let targets = get_targets(&ids[..101], "minimal");
    let (status, _, text) = send_batch(&h, "b", batch_body("b", &targets)).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        message(&v),
        "Inner request count exceeds the limit. Received: 101, Limit: 100"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_lower_batch_limit_mimics_accounts_limited_to_50() {
    let h = start(SimConfig {
        max_batch: 50,
        ..config(60)
    })
    .await;
    let (ids, _) = list_all(&h, "maxResults=500&includeSpamTrash=true").await;
    let (status, _, _) = send_batch(
        &h,
        "b",
        batch_body("b", &get_targets(&ids[..51], "minimal")),
    )
    .await;
    assert_eq!(status, 400);
    let (status, parts, _) = send_batch(
        &h,
        "b",
        batch_body("b", &get_targets(&ids[..50], "minimal")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(parts.len(), 50);
    h.stop().await;
}

#[tokio::test]
async fn malformed_batches_get_4xx_never_a_hang() {
    let h = start(config(10)).await;
    let good = batch_body("b", &["/gmail/v1/users/me/profile".to_string()]);
    let cases: Vec<(&str, String)> = vec![
        ("multipart/mixed", good.clone()),
        ("application/json", good.clone()),
        ("multipart/mixed; boundary=b", good.replace("--b--", "")),
        (
            "multipart/mixed; boundary=b",
            good.replace("application/http", "text/plain"),
        ),
        ("multipart/mixed; boundary=b", String::new()),
        ("multipart/mixed; boundary=b", "garbage\r\n".repeat(1000)),
    ];
    for (ct, body) in cases {
        let r = client()
            .post(format!("{}/batch/gmail/v1", h.base_url))
            .bearer_auth(TOKEN)
            .header("Content-Type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{ct}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], 400);
        assert!(!message(&v).is_empty());
    }
    // Part-level problems are answered in their part.
    let body = "--b\r\nContent-Type: application/http\r\n\r\nGET http://evil.example.com/gmail/v1/users/me/profile\r\n\r\n\
--b\r\nContent-Type: application/http\r\n\r\nFROB /gmail/v1/users/me/profile\r\n\r\n\
--b\r\nContent-Type: application/http\r\n\r\nGET /gmail/v1/users/me/nothing\r\n\r\n\
--b\r\nContent-Type: application/http\r\n\r\nGET /gmail/v1/users/me/messages/zz!\r\n\r\n\
--b\r\nContent-Type: application/http\r\n\r\nGET /gmail/v1/users/me/profile\r\n\r\n--b--\r\n";
    let (status, parts, _) = send_batch(&h, "b", body.to_string()).await;
    assert_eq!(status, 200);
    let statuses: Vec<u16> = parts.iter().map(|p| p.status).collect();
    assert_eq!(statuses, vec![400, 400, 404, 400, 200]);
    assert!(parts.iter().all(|p| p.content_id.is_none()));
    h.stop().await;
}

#[tokio::test]
async fn concurrency_limit_hits_a_batch_of_100_but_not_25() {
    let h = start(config(120)).await;
    let (ids, _) = list_all(&h, "maxResults=500&includeSpamTrash=true").await;
    let (_, parts, _) = send_batch(
        &h,
        "b",
        batch_body("b", &get_targets(&ids[..100], "minimal")),
    )
    .await;
    let limited: Vec<&PartAnswer> = parts.iter().filter(|p| p.status == 429).collect();
    assert!(!limited.is_empty() && limited.len() < 100);
    for p in &limited {
        assert_eq!(message(&p.body), "Too many concurrent requests for user");
        assert_eq!(reason(&p.body), "rateLimitExceeded");
        assert_eq!(p.body["error"]["status"], "RESOURCE_EXHAUSTED");
    }
    let (_, parts, _) = send_batch(
        &h,
        "b",
        batch_body("b", &get_targets(&ids[..25], "minimal")),
    )
    .await;
    assert!(parts.iter().all(|p| p.status == 200));
    h.stop().await;
}

#[tokio::test]
async fn quota_refuses_past_the_budget_in_every_shape_and_refills() {
    // speed 60: the 2026 budget of 6,000 units per user refills every second.
    let h = start(SimConfig {
        quota: Rules::P2026,
        speed: 60.0,
        ..config(400)
    })
    .await;
    let (ids, _) = list_all(&h, "maxResults=500&includeSpamTrash=true").await;
    // list cost 5 units; then gets at 20 each: ~300 fit in one window.
    let mut ok = 0;
    let mut shapes = std::collections::BTreeSet::new();
    for chunk in ids.chunks(40).take(10) {
        let (_, parts, _) =
            send_batch(&h, "b", batch_body("b", &get_targets(chunk, "minimal"))).await;
        for p in parts {
            match p.status {
                200 => ok += 1,
                403 | 429 => {
                    shapes.insert((
                        p.status,
                        reason(&p.body).to_string(),
                        message(&p.body)[..20].to_string(),
                    ));
                }
                s => panic!("unexpected status {s}"),
            }
        }
    }
    assert!(
        (250..=320).contains(&ok),
        "about 300 gets fit the budget, got {ok}"
    );
    assert!(
        shapes.len() >= 3,
        "rate errors come in several shapes: {shapes:?}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = get(&h, &format!("messages/{}?format=minimal", ids[0])).await;
    assert_eq!(status, 200, "budget refills after the window");
    let stats = sim_stats(&h).await;
    assert!(stats["rate_errors"].as_u64().unwrap() > 0);
    assert!(stats["units_spent"].as_u64().unwrap() >= 6000);
    assert_eq!(stats["quota"]["window_seconds"], 1.0);
    h.stop().await;
}

#[tokio::test]
async fn injected_part_faults_are_reproducible() {
    let cfg = SimConfig {
        faults: FaultSpec::parse("500:0.1,503:0.1,429:0.1").unwrap(),
        seed: 42,
        ..config(100)
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let h = start(cfg.clone()).await;
        let targets: Vec<String> = (0..40)
            .map(|i| format!("/gmail/v1/users/me/messages/{:016x}?format=minimal", i + 1))
            .collect();
        let (_, parts, _) = send_batch(&h, "b", batch_body("b", &targets)).await;
        runs.push(parts.iter().map(|p| p.status).collect::<Vec<_>>());
        h.stop().await;
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    let faults = runs[0].iter().filter(|s| **s != 404).count();
    assert!(faults >= 4, "about 30% of 40 parts fail: {:?}", runs[0]);
    assert!(runs[0]
        .iter()
        .all(|s| [404, 500, 503, 429, 403].contains(s)));
}

#[tokio::test]
async fn injected_server_errors_cost_quota_and_rate_errors_do_not() {
    // Google checks quota at the front end, before the backend that fails
    // with a 5xx: a client that refunds 5xx parts would overspend.
    let h = start(SimConfig {
        faults: FaultSpec::parse("500:0.2,503:0.1,429:0.2").unwrap(),
        quota: Rules::P2026,
        seed: 7,
        ..config(100)
    })
    .await;
    let (ids, _) = list_all(&h, "maxResults=60").await;
    client()
        .post(format!("{}/_sim/stats/reset", h.base_url))
        .send()
        .await
        .unwrap();
    let (_, parts, _) = send_batch(
        &h,
        "b",
        batch_body("b", &get_targets(&ids[..60], "minimal")),
    )
    .await;
    let count = |codes: &[u16]| parts.iter().filter(|p| codes.contains(&p.status)).count() as u64;
    let (served, backend, rate) = (count(&[200]), count(&[500, 503]), count(&[429, 403]));
    assert_eq!(
        served + backend + rate,
        60,
        "{:?}",
        parts.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    assert!(
        backend >= 5 && rate >= 5,
        "faults struck: {backend} backend, {rate} rate"
    );
    let stats = sim_stats(&h).await;
    assert_eq!(stats["units_spent"], 20 * (served + backend));
    h.stop().await;
}

#[tokio::test]
async fn resets_and_truncated_bodies_break_the_exchange() {
    for (kind, spec) in [("reset", "reset:1"), ("truncate", "truncate:1")] {
        let h = start(SimConfig {
            faults: FaultSpec::parse(spec).unwrap(),
            ..config(10)
        })
        .await;
        let r = client()
            .get(format!("{}/gmail/v1/users/me/messages", h.base_url))
            .bearer_auth(TOKEN)
            .send()
            .await;
        let failed = match r {
            Err(_) => true,
            Ok(resp) => resp.bytes().await.is_err(),
        };
        assert!(failed, "{kind}: the client sees a broken exchange");
        // The admin API is never faulted.
        let stats = sim_stats(&h).await;
        assert_eq!(stats["outer_faults"][kind], 1);
        h.stop().await;
    }
}

#[tokio::test]
async fn slow_fault_answers_late() {
    let h = start(SimConfig {
        faults: FaultSpec::parse("slow:1").unwrap(),
        slow_delay: Duration::from_millis(300),
        ..config(5)
    })
    .await;
    let t = std::time::Instant::now();
    let (status, _) = get(&h, "profile").await;
    assert_eq!(status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    h.stop().await;
}

#[tokio::test]
async fn latency_model_delays_each_call() {
    let h = start(SimConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        ..config(5)
    })
    .await;
    let t = std::time::Instant::now();
    get(&h, "profile").await;
    let one = t.elapsed();
    assert!(one >= Duration::from_millis(40), "{one:?}");
    h.stop().await;
}

async fn form_post(h: &SimHandle, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(format!("{}{path}", h.base_url))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn token_endpoint_issues_short_lived_tokens() {
    let h = start(SimConfig {
        token_lifetime: Duration::from_millis(600),
        ..config(5)
    })
    .await;
    let (status, v) = form_post(
        &h,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "cid"),
            ("client_secret", "secret"),
            ("refresh_token", sim::auth::DEFAULT_REFRESH_TOKEN),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let tok = v["access_token"].as_str().unwrap().to_string();
    let call = |tok: String| {
        let url = format!("{}/gmail/v1/users/me/profile", h.base_url);
        async move {
            client()
                .get(url)
                .bearer_auth(tok)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(tok.clone()).await, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(call(tok).await, 401, "expired token");

    let (status, v) = form_post(
        &h,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "cid"),
            ("refresh_token", "bogus"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"], "invalid_grant");
    h.stop().await;
}

#[tokio::test]
async fn service_account_without_subject_hits_failed_precondition() {
    use base64::Engine as _;
    let h = start(config(5)).await;
    let now = chrono::Utc::now().timestamp();
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwt = |sub: Option<&str>| {
        let mut claims = json!({"iss": "robot@p.iam.gserviceaccount.com", "scope": "https://mail.google.com/",
            "aud": format!("{}/token", h.base_url), "iat": now, "exp": now + 3600});
        if let Some(s) = sub {
            claims["sub"] = json!(s);
        }
        format!(
            "{}.{}.{}",
            enc(br#"{"alg":"RS256"}"#),
            enc(claims.to_string().as_bytes()),
            enc(b"s")
        )
    };
    for (sub, want_status, want_message) in [
        (None, 400, "Precondition check failed."),
        (Some("nogmail@example.com"), 400, "Mail service not enabled"),
        (Some("alice@example.com"), 200, ""),
    ] {
        let assertion = jwt(sub);
        let (status, v) = form_post(
            &h,
            "/token",
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ],
        )
        .await;
        assert_eq!(status, 200, "{v}");
        let r = client()
            .get(format!("{}/gmail/v1/users/me/messages", h.base_url))
            .bearer_auth(v["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want_status, "{sub:?}");
        let v: Value = r.json().await.unwrap();
        if want_status == 400 {
            assert_eq!(message(&v), want_message);
            assert_eq!(reason(&v), "failedPrecondition");
            assert_eq!(v["error"]["status"], "FAILED_PRECONDITION");
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn mutations_change_the_mailbox_and_append_history() {
    let h = start(config(2600)).await;
    let (_, profile) = get(&h, "profile").await;
    let start_id = profile["historyId"].as_str().unwrap().to_string();
    let (ids, _) = list_all(&h, "maxResults=500&includeSpamTrash=true").await;
    assert_eq!(ids.len(), 2600);

    // batchModify takes at most 1,000 ids a call.
    let (status, v) = post(
        &h,
        "messages/batchModify",
        json!({"ids": ids[..1001], "addLabelIds": ["STARRED"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(message(&v), "Number of ids cannot exceed 1000");
    for chunk in ids[..2500].chunks(1000) {
        let (status, _) = post(
            &h,
            "messages/batchModify",
            json!({"ids": chunk, "addLabelIds": ["STARRED"], "removeLabelIds": ["UNREAD"]}),
        )
        .await;
        assert_eq!(status, 204);
    }
    let (starred, _) = list_all(&h, "maxResults=500&labelIds=STARRED&includeSpamTrash=true").await;
    assert!(starred.len() >= 2500);
    let (status, v) = post(
        &h,
        "messages/batchModify",
        json!({"ids": ids[..2], "addLabelIds": ["Label_999"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("Label_999"));

    let id = &ids[2550];
    let (status, v) = post(&h, &format!("messages/{id}/trash"), json!({})).await;
    assert_eq!(status, 200);
    assert!(v["labelIds"].as_array().unwrap().contains(&json!("TRASH")));
    let r = client()
        .delete(format!(
            "{}/gmail/v1/users/me/messages/{}",
            h.base_url, ids[2551]
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = get(&h, &format!("messages/{}", ids[2551])).await;
    assert_eq!(status, 404);

    let mut kinds = std::collections::BTreeSet::new();
    let mut token = None::<String>;
    loop {
        let mut path = format!("history?startHistoryId={start_id}&maxResults=500");
        if let Some(t) = &token {
            path.push_str(&format!("&pageToken={t}"));
        }
        let (status, v) = get(&h, &path).await;
        assert_eq!(status, 200, "{v}");
        for r in v["history"].as_array().into_iter().flatten() {
            for k in [
                "labelsAdded",
                "labelsRemoved",
                "messagesDeleted",
                "messagesAdded",
            ] {
                if r.get(k).is_some() {
                    kinds.insert(k);
                }
            }
        }
        match v["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert!(
        kinds.contains("labelsAdded") && kinds.contains("messagesDeleted"),
        "{kinds:?}"
    );

    // New mail arrives and shows in history as messagesAdded.
    let (_, now) = get(&h, "profile").await;
    let r: Value = client()
        .post(format!(
            "{}/_sim/users/me@example.com/deliver?count=3",
            h.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_ids = r["ids"].as_array().unwrap();
    assert_eq!(new_ids.len(), 3);
    let (_, v) = get(
        &h,
        &format!(
            "history?startHistoryId={}&historyTypes=messageAdded",
            now["historyId"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(v["history"].as_array().unwrap().len(), 3);
    let (_, newest) = get(&h, "messages?maxResults=3").await;
    assert_eq!(
        newest["messages"][0]["id"],
        new_ids[2].clone(),
        "new mail lists first"
    );

    // History too old: 404, so the client falls back to a full sync.
    client()
        .post(format!(
            "{}/_sim/users/me@example.com/expire-history",
            h.base_url
        ))
        .send()
        .await
        .unwrap();
    let (status, v) = get(&h, &format!("history?startHistoryId={start_id}")).await;
    assert_eq!(status, 404);
    assert_eq!(reason(&v), "notFound");
    h.stop().await;
}

#[tokio::test]
async fn stop_closes_the_port() {
    let h = start(config(5)).await;
    let addr = h.addr;
    h.stop().await;
    // Binding the same address proves the simulator let go of it. A connect
    // would be flaky: the loopback port is free for any other test's
    // simulator to take, and a connect can even reach itself (TCP self-connect).
    let again = std::net::TcpListener::bind(addr);
    assert!(
        again.is_ok(),
        "port {addr} still held after stop: {again:?}"
    );
}

/// The first page of ids of the default user (minimal listing).
async fn first_ids(h: &SimHandle, n: usize) -> Vec<String> {
    let (status, v) = get(h, &format!("messages?maxResults={n}")).await;
    assert_eq!(status, 200, "{v}");
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_seed_gives_the_same_mailbox_whatever_the_real_date() {
    // These ids are fixed for seed 1 and the default calendar (2026-06-01);
    // with the wall clock in the generator they changed every day.
    let h = start(config(50)).await;
    assert_eq!(
        first_ids(&h, 3).await,
        ["19e6cc9671800031", "19e18a5ce6000009", "19e1894694000008"]
    );
    let (_, newest) = get(&h, "messages/19e6cc9671800031?format=minimal").await;
    let date: i64 = newest["internalDate"].as_str().unwrap().parse().unwrap();
    assert!(date < sim::DEFAULT_START_MS && date > sim::DEFAULT_START_MS - 30 * 86_400_000);
    // Searches by age count from the simulator's today, not the real one.
    let (_, v) = get(&h, "messages?q=newer_than:7d&maxResults=500").await;
    assert!(
        v["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    h.stop().await;

    // Another calendar moves the dates (and so the ids) with it.
    let start_2020 = 1_577_836_800_000; // 2020-01-01
    let h = start(SimConfig {
        start_ms: start_2020,
        ..config(50)
    })
    .await;
    let ids = first_ids(&h, 3).await;
    assert_ne!(ids[0], "19e6cc9671800031");
    let (_, newest) = get(&h, &format!("messages/{}?format=minimal", ids[0])).await;
    let date: i64 = newest["internalDate"].as_str().unwrap().parse().unwrap();
    assert!(date < start_2020 && date > start_2020 - 30 * 86_400_000);
    // New mail is dated by the same calendar.
    let delivered: Value = client()
        .post(format!(
            "{}/_sim/users/me@example.com/deliver?count=1",
            h.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = delivered["ids"][0].as_str().unwrap();
    let (_, m) = get(&h, &format!("messages/{id}?format=minimal")).await;
    let date: i64 = m["internalDate"].as_str().unwrap().parse().unwrap();
    assert!((start_2020..start_2020 + 3_600_000).contains(&date), "{m}");
    h.stop().await;
}

/// `gmailscript sim` under a faked wall clock (libfaketime, preloaded so
/// the child is the simulator itself and `kill` reaches it), when the
/// machine has it: the mailbox must not notice.
#[tokio::test]
async fn the_sim_binary_serves_the_same_ids_under_a_faked_clock() {
    use std::io::BufRead as _;
    let bin = env!("CARGO_BIN_EXE_gmailscript");
    let libfaketime = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if libfaketime.is_none() {
        eprintln!("libfaketime not installed: only the unfaked run is checked");
    }
    let mut seen = Vec::new();
    for offset in [None, Some("+400d"), Some("-200d")] {
        let mut cmd = std::process::Command::new(bin);
        match (offset, libfaketime) {
            (None, _) => {}
            (Some(_), None) => continue,
            (Some(o), Some(lib)) => {
                cmd.env("LD_PRELOAD", lib)
                    .env("FAKETIME", o)
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            }
        }
        let mut child = cmd
            .args(["sim", "--port", "0", "--messages", "30", "--seed", "4"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut url = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        let v: Value = client()
            .get(format!(
                "{}/gmail/v1/users/me/messages?maxResults=5",
                url.trim()
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        seen.push((offset, v["messages"].clone()));
    }
    assert!(
        seen[0].1.as_array().is_some_and(|m| m.len() == 5),
        "{seen:?}"
    );
    for (offset, ids) in &seen[1..] {
        assert_eq!(ids, &seen[0].1, "wall clock {offset:?}");
    }
}

/// A plain GET of `path` under the user's API root: status, headers, text.
async fn get_raw(h: &SimHandle, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = client()
        .get(format!("{}/gmail/v1/users/me/{path}", h.base_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// Call `path` until it answers 200 (the signal that a limit or an outage
/// is over), at most `within`; returns how many calls it took.
async fn until_ok(h: &SimHandle, path: &str, within: Duration) -> usize {
    let deadline = std::time::Instant::now() + within;
    let mut calls = 0;
    loop {
        calls += 1;
        let r = client()
            .get(format!("{}/gmail/v1/users/me/{path}", h.base_url))
            .bearer_auth(TOKEN)
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            return calls;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} still refused after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The RFC 3339 time in "... Retry after <time>".
fn retry_after_time(message: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let at = message
        .split("Retry after ")
        .nth(1)
        .unwrap_or_else(|| panic!("no Retry after in {message:?}"));
    chrono::DateTime::parse_from_rfc3339(at.trim()).unwrap()
}

#[tokio::test]
async fn a_rate_penalty_locks_the_user_out_and_says_until_when() {
    // 100 units a second: the fifth get of a burst passes it, and the user
    // is then locked out for 1.5 s (speed 1).
    let h = start(SimConfig {
        quota: Rules::P2026,
        per_second: Some(100),
        rate_penalty: Some(Duration::from_millis(1500)),
        ..config(20)
    })
    .await;
    let ids = first_ids(&h, 10).await; // 5 units
    let (_, parts, text) =
        send_batch(&h, "b", batch_body("b", &get_targets(&ids, "minimal"))).await;
    let statuses: Vec<u16> = parts.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    let mut reasons = std::collections::BTreeSet::new();
    for p in parts.iter().filter(|p| p.status != 200) {
        assert!(
            message(&p.body).starts_with("User-rate limit exceeded.  Retry after "),
            "{}",
            p.body
        );
        reasons.insert((p.status, reason(&p.body).to_string()));
    }
    assert!(reasons.iter().all(|r| [
        (403, "userRateLimitExceeded".to_string()),
        (403, "rateLimitExceeded".to_string()),
        (429, "rateLimitExceeded".to_string())
    ]
    .contains(r)));
    assert_eq!(
        text.matches("Retry-After: ").count(),
        6,
        "every lockout part says when"
    );

    // A cheap call in the lockout is refused too, naming the lockout's end.
    let (status, headers, body) = get_raw(&h, "labels").await;
    assert!(status == 403 || status == 429, "{status} {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let end = retry_after_time(message(&v));
    let left = end.signed_duration_since(chrono::Utc::now());
    assert!(
        left > chrono::Duration::zero() && left <= chrono::Duration::milliseconds(1600),
        "{left:?}"
    );
    let header: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&header), "Retry-After {header}");
    let stats = sim_stats(&h).await;
    assert_eq!(stats["penalties"], 1, "one lockout started");
    assert_eq!(stats["refusals"]["penalty"], 7);
    assert_eq!(stats["quota"]["rate_penalty_seconds"], 1.5);

    // At the time it named, the user may call again.
    tokio::time::sleep(
        (left + chrono::Duration::milliseconds(30))
            .to_std()
            .unwrap(),
    )
    .await;
    let (status, _, body) = get_raw(&h, "labels").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim_stats(&h).await["penalties"], 1);
    h.stop().await;
}

#[tokio::test]
async fn a_per_second_budget_refuses_a_burst_the_minute_allows() {
    let h = start(SimConfig {
        quota: Rules::P2026,
        per_second: Some(100),
        ..config(20)
    })
    .await;
    let ids = first_ids(&h, 10).await; // 5 units
    let (_, parts, _) = send_batch(&h, "b", batch_body("b", &get_targets(&ids, "minimal"))).await;
    let ok = parts.iter().filter(|p| p.status == 200).count();
    assert_eq!(ok, 4, "95 units left in the second: four gets of 20");
    for p in parts.iter().filter(|p| p.status != 200) {
        assert!([403, 429].contains(&p.status));
        assert!(
            ["userRateLimitExceeded", "rateLimitExceeded"].contains(&reason(&p.body)),
            "{}",
            p.body
        );
    }
    let stats = sim_stats(&h).await;
    assert_eq!(stats["refusals"]["per_second"], 6);
    assert!(stats["refusals"].get("per_minute").is_none());
    assert_eq!(stats["penalties"], 0, "no lockout unless --rate-penalty");
    assert_eq!(stats["quota"]["per_second"], 100);
    // The short window frees within a second.
    until_ok(
        &h,
        &format!("messages/{}?format=minimal", ids[9]),
        Duration::from_secs(3),
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn charge_refused_makes_refused_calls_spend_their_units() {
    for charge in [false, true] {
        let h = start(SimConfig {
            quota: Rules::P2026,
            per_second: Some(100),
            charge_refused: charge,
            ..config(20)
        })
        .await;
        let ids = first_ids(&h, 10).await;
        client()
            .post(format!("{}/_sim/stats/reset", h.base_url))
            .send()
            .await
            .unwrap();
        let (_, parts, _) =
            send_batch(&h, "b", batch_body("b", &get_targets(&ids, "minimal"))).await;
        assert_eq!(parts.iter().filter(|p| p.status == 200).count(), 4);
        let stats = sim_stats(&h).await;
        let refused = if charge { 6 * 20 } else { 0 };
        assert_eq!(stats["units_spent"], 4 * 20 + refused, "charge {charge}");
        assert_eq!(stats["units_refused"], refused);
        assert_eq!(stats["quota"]["charge_refused"], charge);
        h.stop().await;
    }
}

#[tokio::test]
async fn a_daily_limit_answers_daily_limit_exceeded_until_pacific_midnight() {
    // The calendar starts 2026-06-01T00:00Z, 17:00 in California: the
    // quota day ends after 7 hours of quota clock, 2 s at this speed.
    let h = start(SimConfig {
        quota: Rules::P2026,
        daily_limit: Some(10),
        speed: 7.0 * 3600.0 / 2.0,
        ..config(20)
    })
    .await;
    for _ in 0..10 {
        let (status, _, body) = get_raw(&h, "labels").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, body) = get_raw(&h, "labels").await;
    assert_eq!(status, 403);
    assert!(headers.get("retry-after").is_none());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reason(&v), "dailyLimitExceeded");
    assert_eq!(v["error"]["errors"][0]["domain"], "usageLimits");
    assert!(message(&v).starts_with(
        "Daily Limit Exceeded. The quota will be reset at midnight Pacific Time (PT)."
    ));
    let stats = sim_stats(&h).await;
    assert_eq!(stats["daily_limit_errors"], 1);
    assert_eq!(stats["rate_errors"], 0, "a daily limit is not a rate error");
    assert_eq!(stats["refusals"]["daily"], 1);
    // The next quota day starts with a fresh budget.
    until_ok(&h, "labels", Duration::from_secs(6)).await;
    h.stop().await;
}

#[tokio::test]
async fn an_outage_answers_503_or_resets_then_ends() {
    use gmailscript::sim::faults::Outage;
    let h = start(SimConfig {
        outages: vec![Outage {
            at: Duration::ZERO,
            length: Duration::from_secs(3),
        }],
        seed: 3,
        ..config(20)
    })
    .await;
    let (mut unavailable, mut resets) = (0, 0);
    for i in 0..30 {
        let r = client()
            .get(format!(
                "{}/gmail/v1/users/me/messages/{:016x}?format=minimal",
                h.base_url,
                i + 1
            ))
            .bearer_auth(TOKEN)
            .send()
            .await;
        match r {
            Err(_) => resets += 1,
            Ok(r) => {
                assert_eq!(r.status(), 503);
                let v: Value = r.json().await.unwrap();
                assert_eq!(reason(&v), "backendError");
                assert_eq!(v["error"]["status"], "UNAVAILABLE");
                unavailable += 1;
            }
        }
    }
    assert!(
        unavailable > 0 && resets > 0,
        "{unavailable} 503s, {resets} resets"
    );
    // A batch answered in the outage has every part 503.
    let targets: Vec<String> = (0..5)
        .map(|i| format!("/gmail/v1/users/me/messages/{:016x}", i + 1))
        .collect();
    let mut answered = None;
    for _ in 0..20 {
        let r = client()
            .post(format!("{}/batch/gmail/v1", h.base_url))
            .bearer_auth(TOKEN)
            .header("Content-Type", "multipart/mixed; boundary=b")
            .body(batch_body("b", &targets))
            .send()
            .await;
        if let Ok(r) = r {
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            answered = Some(read_batch(&ct, &r.text().await.unwrap()));
            break;
        }
    }
    let parts = answered.expect("some batch answered within 20 tries");
    assert!(parts.iter().all(|p| p.status == 503), "{parts:?}");
    let stats = sim_stats(&h).await;
    assert!(stats["outage"]["503"].as_u64().unwrap() >= unavailable + 5);
    assert!(stats["outage"]["reset"].as_u64().unwrap() >= resets);
    // It ends.
    until_ok(&h, "profile", Duration::from_secs(10)).await;
    h.stop().await;
}

#[tokio::test]
async fn front_end_502_and_504_are_html_pages_other_statuses_json() {
    for code in [502u16, 504, 503] {
        let h = start(SimConfig {
            faults: FaultSpec::parse(&format!("{code}:1")).unwrap(),
            ..config(5)
        })
        .await;
        let (status, headers, body) = get_raw(&h, "profile").await;
        assert_eq!(status, code);
        let ct = headers["content-type"].to_str().unwrap();
        if code == 503 {
            assert!(ct.starts_with("application/json"), "{ct}");
            assert!(serde_json::from_str::<Value>(&body).is_ok());
        } else {
            assert_eq!(ct, "text/html; charset=UTF-8");
            let title = if code == 502 {
                "<title>Error 502 (Server Error)!!1</title>"
            } else {
                "<title>Error 504 (Gateway Timeout)!!1</title>"
            };
            assert!(body.contains(title), "{body}");
            assert!(body.contains(&format!("<b>{code}.</b>")));
            // In a batch part too.
            let r = client()
                .post(format!("{}/batch/gmail/v1", h.base_url))
                .bearer_auth(TOKEN)
                .header("Content-Type", "multipart/mixed; boundary=b")
                .body(batch_body("b", &["/gmail/v1/users/me/profile".to_string()]))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            assert!(text.contains(&format!("HTTP/1.1 {code} ")), "{text}");
            assert!(text.contains("Content-Type: text/html; charset=UTF-8\r\n"));
            assert!(text.contains(title));
        }
        h.stop().await;
    }
}

#[tokio::test]
async fn gzip_only_when_asked_as_google_documents() {
    use std::io::Read as _;
    let h = start(config(5)).await;
    let plain = reqwest::Client::builder().no_gzip().build().unwrap();
    let ask = |ua: &'static str| {
        plain
            .get(format!("{}/gmail/v1/users/me/profile", h.base_url))
            .bearer_auth(TOKEN)
            .header("Accept-Encoding", "gzip")
            .header("User-Agent", ua)
    };
    let r = ask("my-backup/1.0 (gzip)").send().await.unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let packed = r.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_string(&mut text)
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["emailAddress"], "me@example.com");
    // Accept-Encoding alone is not enough: "gzip" must be in the User-Agent.
    let r = ask("my-backup/1.0").send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["emailAddress"], "me@example.com");
    assert_eq!(sim_stats(&h).await["gzip_responses"], 1);
    h.stop().await;

    // A truncated answer is cut after compression: the gunzip breaks.
    let h = start(SimConfig {
        faults: FaultSpec::parse("truncate:1").unwrap(),
        ..config(5)
    })
    .await;
    for decoding in [false, true] {
        // A client reading raw bytes, and one decoding on the fly.
        let c = if decoding { client() } else { plain.clone() };
        let r = c
            .get(format!("{}/gmail/v1/users/me/messages", h.base_url))
            .bearer_auth(TOKEN)
            .header("Accept-Encoding", "gzip")
            .header("User-Agent", "my-backup/1.0 (gzip)")
            .send()
            .await;
        let broken = match r {
            Err(_) => true,
            Ok(r) => r.bytes().await.is_err(),
        };
        assert!(broken, "the client sees the break, not a short valid body");
    }
    assert_eq!(sim_stats(&h).await["outer_faults"]["truncate"], 2);
    h.stop().await;
}

#[tokio::test]
async fn fields_selects_parts_of_the_answer() {
    let h = start(config(30)).await;
    let (status, v) = get(
        &h,
        "messages?maxResults=5&fields=messages(id),nextPageToken",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let obj = v.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        ["messages", "nextPageToken"],
        "no resultSizeEstimate"
    );
    assert!(v["messages"].as_array().unwrap().iter().all(|m| m
        .as_object()
        .unwrap()
        .keys()
        .collect::<Vec<_>>()
        == ["id"]));
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, m) = get(&h, &format!("messages/{id}?fields=id,threadId")).await;
    assert_eq!(
        m.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "threadId"]
    );
    let (_, m) = get(
        &h,
        &format!("messages/{id}?format=metadata&metadataHeaders=Subject&fields=payload/headers"),
    )
    .await;
    assert_eq!(m.as_object().unwrap().len(), 1);
    assert_eq!(m["payload"].as_object().unwrap().len(), 1);
    assert_eq!(m["payload"]["headers"][0]["name"], "Subject");
    // A name the resource does not have, or a broken selection: 400.
    for bad in ["idd", "messages(id", "payload/headers(nme)"] {
        let (status, v) = get(&h, &format!("messages/{id}?fields={bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(reason(&v), "invalidParameter");
        assert!(message(&v).starts_with("Invalid field selection "), "{v}");
    }
    // Errors are never filtered.
    let (status, v) = get(&h, "messages/0123456789abcdef?fields=id").await;
    assert_eq!(status, 404);
    assert_eq!(reason(&v), "notFound");
    h.stop().await;
}

#[tokio::test]
async fn access_token_in_the_query_and_the_method_override() {
    let h = start(config(10)).await;
    let url = |path: &str| format!("{}/gmail/v1/users/me/{path}", h.base_url);
    let r = client()
        .get(url("profile?access_token=sim-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(url("profile?access_token=bogus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(reason(&v), "authError");

    // A long GET sent as POST with its query in a form body, as
    // google-api-python-client does past 2 KB.
    let id = first_ids(&h, 1).await.remove(0);
    let override_get = |body: String| {
        client()
            .post(url(&format!("messages/{id}")))
            .bearer_auth(TOKEN)
            .header("X-HTTP-Method-Override", "GET")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let r = override_get("format=metadata&metadataHeaders=Subject".into())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["payload"]["headers"].as_array().unwrap().len(), 1);
    assert_eq!(sim_stats(&h).await["method_overrides"], 1);
    // The moved query is checked like any other.
    let r = override_get("format=metadata&frob=1".into())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Without the header a POST to a GET method is not found.
    let r = client()
        .post(url(&format!("messages/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    h.stop().await;
}

#[tokio::test]
async fn an_unknown_query_parameter_is_refused_not_ignored() {
    let h = start(config(10)).await;
    let (status, v) = get(&h, "messages?maxResults=5&max_results=5").await;
    assert_eq!(status, 400);
    assert_eq!(reason(&v), "invalid");
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        message(&v),
        "Invalid JSON payload received. Unknown name \"max_results\": Cannot bind query parameter. Field 'max_results' could not be found in request message."
    );
    // Another method's parameter is unknown too; system ones are fine.
    let (status, _) = get(&h, "profile?q=x").await;
    assert_eq!(status, 400);
    let (status, v) = get(&h, "profile?prettyPrint=false&quotaUser=u1&alt=json").await;
    assert_eq!(status, 200, "{v}");
    // In a batch part as well.
    let (_, parts, _) = send_batch(
        &h,
        "b",
        batch_body("b", &["/gmail/v1/users/me/labels?colour=red".to_string()]),
    )
    .await;
    assert_eq!(parts[0].status, 400);
    h.stop().await;
}

#[tokio::test]
async fn a_messages_history_id_is_a_valid_start_and_ids_have_gaps() {
    let h = start(config(50)).await;
    let (ids, _) = list_all(&h, "maxResults=500&includeSpamTrash=true").await;
    // An older message's historyId: history lists the mail after it.
    let (_, old) = get(&h, &format!("messages/{}?format=minimal", ids[10])).await;
    let start_id = old["historyId"].as_str().unwrap();
    let (status, v) = get(
        &h,
        &format!("history?startHistoryId={start_id}&maxResults=500"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let added: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messagesAdded"][0]["message"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(added.len(), 10, "the ten newer messages");
    assert!(added.iter().all(|a| ids[..10].contains(&a.to_string())));
    // Changes take ids with gaps.
    for id in &ids[..12] {
        let (status, _) = post(
            &h,
            &format!("messages/{id}/modify"),
            json!({"addLabelIds": ["STARRED"]}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (_, v) = get(&h, "profile").await;
    let now: u64 = v["historyId"].as_str().unwrap().parse().unwrap();
    let (_, hist) = get(
        &h,
        &format!("history?startHistoryId={start_id}&maxResults=500"),
    )
    .await;
    let rec: Vec<u64> = hist["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(rec.windows(2).all(|w| w[0] < w[1]));
    assert!(rec.windows(2).any(|w| w[1] - w[0] > 1), "gaps: {rec:?}");
    assert_eq!(*rec.last().unwrap(), now);
    // Older than any record kept: 404.
    let (status, _) = get(&h, "history?startHistoryId=1").await;
    assert_eq!(status, 404);
    h.stop().await;
}

#[tokio::test]
async fn labels_create_makes_user_labels_and_refuses_as_gmail_does() {
    let h = start(config(5)).await;
    let (status, made) = post(&h, "labels", json!({"name": "Work/2024"})).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["name"], "Work/2024");
    assert_eq!(made["type"], "user");
    let id = made["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("Label_"), "{id}");
    let (_, list) = get(&h, "labels").await;
    assert!(list["labels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == id.as_str()));
    // The new label can be put on a message at once.
    let (_, page) = get(&h, "messages?maxResults=1").await;
    let msg = page["messages"][0]["id"].as_str().unwrap().to_string();
    let (status, m) = post(
        &h,
        &format!("messages/{msg}/modify"),
        json!({"addLabelIds": [id]}),
    )
    .await;
    assert_eq!(status, 200, "{m}");

    // Taken in any case: 409; reserved or malformed: 400.
    let (status, v) = post(&h, "labels", json!({"name": "work/2024"})).await;
    assert_eq!((status, reason(&v)), (409, "duplicate"), "{v}");
    for bad in [
        "INBOX",
        "Muted",
        "starred",
        "",
        " padded",
        "a//b",
        "CATEGORY_SOCIAL",
    ] {
        let (status, v) = post(&h, "labels", json!({"name": bad})).await;
        assert_eq!(
            (status, reason(&v)),
            (400, "invalidArgument"),
            "{bad:?}: {v}"
        );
        assert_eq!(v["error"]["message"], "Invalid label name");
    }
    let (status, _) = post(&h, "labels", json!({})).await;
    assert_eq!(status, 400);
    h.stop().await;
}

async fn send_label(h: &SimHandle, method: &str, id: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = client()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/gmail/v1/users/me/labels/{id}", h.base_url),
        )
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn labels_update_patch_and_delete_keep_gmails_name_rules() {
    let h = start(config(5)).await;
    let (_, a) = post(&h, "labels", json!({"name": "Projects"})).await;
    let (_, b) = post(&h, "labels", json!({"name": "Archive"})).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let (_, page) = get(&h, "messages?maxResults=1").await;
    let msg = page["messages"][0]["id"].as_str().unwrap().to_string();
    post(
        &h,
        &format!("messages/{msg}/modify"),
        json!({"addLabelIds": [a]}),
    )
    .await;

    // update (PUT) needs a name; patch may change it or leave it.
    let (status, v) = send_label(&h, "PUT", a, Some(json!({"name": "Projects/2024"}))).await;
    assert_eq!(
        (status, v["name"].as_str()),
        (200, Some("Projects/2024")),
        "{v}"
    );
    let (status, v) = send_label(&h, "PUT", a, Some(json!({}))).await;
    assert_eq!((status, message(&v)), (400, "Invalid label name"), "{v}");
    let (status, v) = send_label(
        &h,
        "PATCH",
        a,
        Some(json!({"labelListVisibility": "labelShow"})),
    )
    .await;
    assert_eq!(
        (status, v["name"].as_str()),
        (200, Some("Projects/2024")),
        "{v}"
    );
    // Its own name in another case is no conflict; another label's is 409.
    let (status, v) = send_label(&h, "PATCH", a, Some(json!({"name": "projects/2024"}))).await;
    assert_eq!(
        (status, v["name"].as_str()),
        (200, Some("projects/2024")),
        "{v}"
    );
    let (status, v) = send_label(&h, "PATCH", a, Some(json!({"name": "ARCHIVE"}))).await;
    assert_eq!((status, reason(&v)), (409, "duplicate"), "{v}");
    // Reserved and localised system names are refused on rename too.
    for bad in ["Muted", "Posteingang", "boîte de réception", "SPAM"] {
        let (status, v) = send_label(&h, "PATCH", b, Some(json!({"name": bad}))).await;
        assert_eq!(
            (status, message(&v)),
            (400, "Invalid label name"),
            "{bad}: {v}"
        );
        let (status, v) = post(&h, "labels", json!({"name": bad})).await;
        assert_eq!(
            (status, message(&v)),
            (400, "Invalid label name"),
            "{bad}: {v}"
        );
    }
    // System labels are not changed or deleted.
    let (status, v) = send_label(&h, "PUT", "INBOX", Some(json!({"name": "Mine"}))).await;
    assert_eq!((status, message(&v)), (400, "Invalid label"), "{v}");
    let (status, v) = send_label(&h, "DELETE", "INBOX", None).await;
    assert_eq!(
        (status, message(&v)),
        (400, "Invalid delete request"),
        "{v}"
    );
    let (status, _) = send_label(&h, "DELETE", "Label_999", None).await;
    assert_eq!(status, 404);

    // delete: the label goes, and off the message that had it.
    let (status, _) = send_label(&h, "DELETE", a, None).await;
    assert_eq!(status, 204);
    let (status, _) = get(&h, &format!("labels/{a}")).await;
    assert_eq!(status, 404);
    let (_, m) = get(&h, &format!("messages/{msg}?format=minimal")).await;
    assert!(
        !m["labelIds"].as_array().unwrap().iter().any(|l| l == a),
        "{m}"
    );
    h.stop().await;
}

// ---- A Workspace domain: the Directory, suspended users, delegation and
// the project's budget shared by every user.

const DIRECTORY_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";

fn domain(n: usize, messages: usize) -> SimConfig {
    SimConfig {
        users: sim::domain_users("example.com", n),
        no_gmail: Vec::new(),
        ..config(messages)
    }
}

/// A token for `user` (None: a service account without a subject).
async fn mint(h: &SimHandle, user: Option<&str>, scope: &str) -> String {
    let mut form = vec![("scope", scope)];
    if let Some(u) = user {
        form.push(("user", u));
    }
    let (status, v) = form_post(h, "/_sim/tokens", &form).await;
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

/// `GET {base}{path}` with `token` (None: no credentials).
async fn get_as(h: &SimHandle, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut r = client().get(format!("{}{path}", h.base_url));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn directory(h: &SimHandle, query: &str) -> (u16, Value) {
    get_as(
        h,
        Some(TOKEN),
        &format!("/admin/directory/v1/users?{query}"),
    )
    .await
}

fn emails(v: &Value) -> Vec<String> {
    v["users"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| u["primaryEmail"].as_str().unwrap().to_string())
        .collect()
}

/// Every user the query lists, paging with `maxResults`; (emails, pages).
async fn directory_all(h: &SimHandle, query: &str) -> (Vec<String>, usize) {
    let (mut all, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let mut q = query.to_string();
        if let Some(t) = &token {
            q.push_str(&format!("&pageToken={t}"));
        }
        let (status, v) = directory(h, &q).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["kind"], "admin#directory#users");
        pages += 1;
        all.extend(emails(&v));
        match v["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return (all, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

#[tokio::test]
async fn the_directory_of_1200_users_pages_500_at_a_time_and_builds_no_mailbox() {
    let h = start(domain(1199, 5)).await;
    let (all, pages) = directory_all(&h, "customer=my_customer&maxResults=500").await;
    assert_eq!(pages, 3, "500 + 500 + 200");
    assert_eq!(all.len(), 1200);
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, all, "each user once, in address order");
    assert!(all.contains(&"admin@example.com".to_string()));
    assert!(all.contains(&"user1199@example.com".to_string()));
    // The same by domain; the default page is 100.
    let (by_domain, _) = directory_all(&h, "domain=example.com&maxResults=500").await;
    assert_eq!(by_domain, all);
    let (_, v) = directory(&h, "customer=my_customer").await;
    assert_eq!(emails(&v).len(), 100);
    // Out of range or garbage: 400 "Invalid Input", as Google answers.
    for bad in [
        "maxResults=501",
        "maxResults=0",
        "maxResults=ten",
        "pageToken=forged",
    ] {
        let (status, v) = directory(&h, &format!("customer=my_customer&{bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(message(&v), "Invalid Input");
        assert_eq!(reason(&v), "invalid");
    }
    // Listing 1,200 users built no mailbox beyond the default user's.
    let stats = sim_stats(&h).await;
    assert_eq!(stats["users_total"], 1200);
    assert_eq!(stats["mailboxes_generated"], 1);
    assert_eq!(
        stats["units_spent"], 0,
        "the Directory spends no Gmail units"
    );
    h.stop().await;
}

#[tokio::test]
async fn directory_queries_filter_and_flags_say_suspended_and_no_gmail() {
    let h = start(SimConfig {
        suspended: vec!["user2@example.com".into(), "user5@example.com".into()],
        no_gmail: vec!["user7@example.com".into()],
        ..domain(12, 5)
    })
    .await;
    let list = |q: &'static str| {
        let h = &h;
        async move {
            let (status, v) = directory(h, &format!("customer=my_customer&{q}")).await;
            assert_eq!(status, 200, "{q}: {v}");
            emails(&v)
        }
    };
    let user = |n: &[u32]| -> Vec<String> {
        let mut v: Vec<String> = n.iter().map(|i| format!("user{i}@example.com")).collect();
        v.sort();
        v
    };
    assert_eq!(list("query=isSuspended%3Dtrue").await, user(&[2, 5]));
    let active = list("query=isSuspended%3Dfalse").await;
    assert_eq!(active.len(), 11, "{active:?}");
    assert!(!active.contains(&"user2@example.com".to_string()));
    assert_eq!(
        list("query=orgUnitPath%3D%2FSales").await,
        user(&[1, 4, 7, 10])
    );
    assert_eq!(
        list("query=orgUnitPath%3D%2FEngineering%20isSuspended%3Dfalse").await,
        user(&[8, 11])
    );
    assert_eq!(list("query=email%3Auser1*").await, user(&[1, 10, 11, 12]));
    assert_eq!(
        list("query=isAdmin%3Dtrue").await,
        vec!["admin@example.com"]
    );
    // Descending, and showDeleted=true lists the deleted users: none, and
    // Google leaves `users` out of an empty page.
    let desc = list("orderBy=email&sortOrder=DESCENDING").await;
    assert_eq!(desc.first().map(String::as_str), Some("user9@example.com"));
    let (status, v) = directory(&h, "customer=my_customer&showDeleted=true").await;
    assert_eq!(status, 200);
    assert!(v.get("users").is_none(), "{v}");

    // The resource's flags.
    let (_, v) = directory(&h, "customer=my_customer&maxResults=500").await;
    let find = |e: &str| {
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["primaryEmail"] == e)
            .cloned()
            .unwrap()
    };
    let admin = find("admin@example.com");
    assert_eq!(admin["isAdmin"], true);
    assert_eq!(admin["orgUnitPath"], "/");
    assert_eq!(admin["kind"], "admin#directory#user");
    assert_eq!(admin["name"]["fullName"], "Admin Example");
    let s = find("user2@example.com");
    assert_eq!(
        (s["suspended"].clone(), s["isMailboxSetup"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(s["suspensionReason"], "ADMIN");
    let n = find("user7@example.com");
    assert_eq!(
        (n["suspended"].clone(), n["isMailboxSetup"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(find("user3@example.com")["orgUnitPath"], "/Support");
    assert_eq!(find("user3@example.com")["isAdmin"], false);

    // fields= partial answers, as GAM asks.
    let (_, v) = directory(
        &h,
        "customer=my_customer&maxResults=2&fields=nextPageToken,users(primaryEmail,suspended)",
    )
    .await;
    assert_eq!(
        v["users"][0],
        json!({"primaryEmail": "admin@example.com", "suspended": false})
    );
    assert!(v["nextPageToken"].is_string());

    // users.get by address or id; an unknown user is 404.
    let (status, u) = get_as(
        &h,
        Some(TOKEN),
        "/admin/directory/v1/users/user7@example.com",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(u["isMailboxSetup"], false);
    let id = u["id"].as_str().unwrap().to_string();
    let (status, again) = get_as(&h, Some(TOKEN), &format!("/admin/directory/v1/users/{id}")).await;
    assert_eq!(
        (status, again["primaryEmail"].clone()),
        (200, json!("user7@example.com"))
    );
    let (status, v) = get_as(
        &h,
        Some(TOKEN),
        "/admin/directory/v1/users/ghost@example.com",
    )
    .await;
    assert_eq!((status, reason(&v)), (404, "notFound"));

    // What Google refuses.
    for (q, want_status, want_message) in [
        ("", 400, "Bad Request"),
        (
            "domain=other.org",
            403,
            "Not Authorized to access this resource/api",
        ),
        (
            "customer=C0123456",
            403,
            "Not Authorized to access this resource/api",
        ),
        (
            "customer=my_customer&query=frobnicate%3D1",
            400,
            "Invalid Input",
        ),
        (
            "customer=my_customer&orderBy=shoeSize",
            400,
            "Invalid Input",
        ),
    ] {
        let (status, v) = directory(&h, q).await;
        assert_eq!(
            (status, message(&v)),
            (want_status, want_message),
            "{q}: {v}"
        );
        assert!(
            v["error"].get("status").is_none(),
            "Directory errors carry no status: {v}"
        );
    }
    let (status, v) = directory(&h, "customer=my_customer&colour=blue").await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("colour"), "{v}");
    h.stop().await;
}

#[tokio::test]
async fn the_directory_needs_its_scope_and_an_administrator() {
    let h = start(domain(3, 5)).await;
    let path = "/admin/directory/v1/users?customer=my_customer";
    let gmail_only = mint(&h, Some("admin@example.com"), "https://mail.google.com/").await;
    let (status, v) = get_as(&h, Some(&gmail_only), path).await;
    assert_eq!(
        (status, reason(&v)),
        (403, "insufficientPermissions"),
        "{v}"
    );
    assert_eq!(
        message(&v),
        "Request had insufficient authentication scopes."
    );

    let not_admin = mint(&h, Some("user1@example.com"), DIRECTORY_SCOPE).await;
    let no_subject = mint(&h, None, DIRECTORY_SCOPE).await;
    for token in [&not_admin, &no_subject] {
        let (status, v) = get_as(&h, Some(token), path).await;
        assert_eq!((status, reason(&v)), (403, "forbidden"), "{v}");
        assert_eq!(message(&v), "Not Authorized to access this resource/api");
    }
    let (status, v) = get_as(&h, None, path).await;
    assert_eq!((status, reason(&v)), (401, "required"), "{v}");
    let (status, _) = get_as(&h, Some("ya29.forged"), path).await;
    assert_eq!(status, 401);

    // The admin with either directory scope may list.
    for scope in [
        DIRECTORY_SCOPE,
        "https://www.googleapis.com/auth/admin.directory.user",
    ] {
        let admin = mint(&h, Some("admin@example.com"), scope).await;
        let (status, v) = get_as(&h, Some(&admin), path).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(emails(&v).len(), 4);
    }
    // A directory token is no Gmail token.
    let admin = mint(&h, Some("admin@example.com"), DIRECTORY_SCOPE).await;
    let (status, v) = get_as(&h, Some(&admin), "/gmail/v1/users/me/profile").await;
    assert_eq!((status, reason(&v)), (403, "insufficientPermissions"));
    h.stop().await;
}

/// A service account's JWT bearer grant for `sub`.
async fn jwt_grant(h: &SimHandle, sub: &str, scope: &str) -> (u16, Value) {
    use base64::Engine as _;
    let now = chrono::Utc::now().timestamp();
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let claims = json!({"iss": "robot@p.iam.gserviceaccount.com", "scope": scope, "sub": sub,
        "aud": format!("{}/token", h.base_url), "iat": now, "exp": now + 3600});
    let assertion = format!(
        "{}.{}.{}",
        enc(br#"{"alg":"RS256"}"#),
        enc(claims.to_string().as_bytes()),
        enc(b"s")
    );
    form_post(
        h,
        "/token",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ],
    )
    .await
}

#[tokio::test]
async fn delegation_gives_any_user_of_the_domain_its_own_mailbox_and_no_one_else() {
    let h = start(SimConfig {
        suspended: vec!["user40@example.com".into()],
        ..domain(50, 5)
    })
    .await;
    for sub in [
        "user37@example.com",
        "USER12@example.com",
        "user40@example.com",
    ] {
        let (status, v) = jwt_grant(&h, sub, "https://mail.google.com/").await;
        assert_eq!(status, 200, "{sub}: {v}");
        let tok = v["access_token"].as_str().unwrap();
        let (status, p) = get_as(&h, Some(tok), "/gmail/v1/users/me/profile").await;
        assert_eq!(status, 200, "{p}");
        assert!(p["emailAddress"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(sub));
        // Its own mailbox, no one else's.
        let (status, v) = get_as(&h, Some(tok), "/gmail/v1/users/user1@example.com/profile").await;
        assert_eq!(status, 403, "{v}");
    }
    for sub in ["user51@example.com", "someone@other.org"] {
        let (status, v) = jwt_grant(&h, sub, "https://mail.google.com/").await;
        assert_eq!(status, 400, "{sub}: {v}");
        assert_eq!(v["error"], "invalid_grant");
        assert_eq!(v["error_description"], "Invalid email or User ID");
    }
    // The saved subject, the admin, lists with the directory scope.
    let (status, v) = jwt_grant(&h, "admin@example.com", DIRECTORY_SCOPE).await;
    assert_eq!(status, 200);
    let (status, list) = get_as(
        &h,
        v["access_token"].as_str(),
        "/admin/directory/v1/users?customer=my_customer&query=isSuspended%3Dfalse&maxResults=500",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(emails(&list).len(), 50, "51 users, one suspended");
    h.stop().await;
}

#[tokio::test]
async fn a_suspended_users_ids_list_but_its_messages_fail_and_cost_units() {
    for (kind, want_status, want_reason) in [
        (sim::SuspendedError::Backend, 500, "backendError"),
        (sim::SuspendedError::Forbidden, 403, "forbidden"),
    ] {
        let h = start(SimConfig {
            suspended: vec!["user2@example.com".into()],
            suspended_error: kind,
            quota: Rules::P2026,
            ..domain(3, 20)
        })
        .await;
        let tok = mint(&h, Some("user2@example.com"), "https://mail.google.com/").await;
        let base = "/gmail/v1/users/me";
        let (status, list) = get_as(&h, Some(&tok), &format!("{base}/messages?maxResults=5")).await;
        assert_eq!(status, 200, "{list}");
        let id = list["messages"][0]["id"].as_str().unwrap().to_string();
        for path in ["profile", "labels", "threads?maxResults=2"] {
            let (status, v) = get_as(&h, Some(&tok), &format!("{base}/{path}")).await;
            assert_eq!(status, 200, "{path}: {v}");
        }
        for path in [
            format!("messages/{id}"),
            format!("messages/{id}?format=raw"),
        ] {
            let (status, v) = get_as(&h, Some(&tok), &format!("{base}/{path}")).await;
            assert_eq!(
                (status, reason(&v)),
                (want_status, want_reason),
                "{path}: {v}"
            );
        }
        let r = client()
            .post(format!("{}{base}/messages/{id}/trash", h.base_url))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want_status, "trash");
        // Another user of the domain is untouched.
        let other = mint(&h, Some("user1@example.com"), "https://mail.google.com/").await;
        let (_, l) = get_as(&h, Some(&other), &format!("{base}/messages?maxResults=1")).await;
        let oid = l["messages"][0]["id"].as_str().unwrap();
        let (status, _) = get_as(&h, Some(&other), &format!("{base}/messages/{oid}")).await;
        assert_eq!(status, 200);
        // The refused gets and the trash spent their units: 5 + 1 + 1 + 10
        // for the lists, 20 + 20 + 20 for the failures.
        let stats = sim_stats(&h).await;
        assert_eq!(
            stats["units_by_user"]["user2@example.com"],
            5 + 1 + 1 + 10 + 60
        );
        assert_eq!(stats["calls_by_user"]["user2@example.com"], 7);
        h.stop().await;
    }
}

#[tokio::test]
async fn the_project_budget_binds_across_users_who_are_each_far_under_their_own() {
    let h = start(SimConfig {
        quota: Rules::P2026,
        project_quota: Some(1000),
        ..domain(9, 5)
    })
    .await;
    let mut tokens = Vec::new();
    for i in 0..10 {
        let u = if i == 0 {
            "admin@example.com".to_string()
        } else {
            format!("user{i}@example.com")
        };
        tokens.push(mint(&h, Some(&u), "https://mail.google.com/").await);
    }
    // 10 users x 5 gets x 20 units = the project's 1,000.
    for tok in &tokens {
        let (_, l) = get_as(&h, Some(tok), "/gmail/v1/users/me/labels").await;
        assert!(l["labels"].is_array());
    }
    let (mut refused, mut served) = (None, 0);
    'outer: for round in 0..30 {
        for tok in &tokens {
            let r = client()
                .get(format!(
                    "{}/gmail/v1/users/me/messages?maxResults=1",
                    h.base_url
                ))
                .bearer_auth(tok)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let v: Value = r.json().await.unwrap();
            if status != 200 {
                refused = Some((round, status, retry_after, v));
                break 'outer;
            }
            served += 1;
        }
    }
    let (round, status, retry_after, v) = refused.expect("the project's budget binds");
    // 10 labels.list at 1 unit, then messages.list at 5: 198 lists fill the
    // 1,000 units; the 199th (round 19) is refused, for a user who has
    // spent about 100.
    assert_eq!((served, round), (198, 19));
    assert!(status == 429 || status == 403, "{status} {v}");
    assert_eq!(reason(&v), "rateLimitExceeded");
    assert!(
        message(&v).contains("limit 'Queries per minute' of service"),
        "{v}"
    );
    assert!(!message(&v).contains("per user"), "{v}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    let stats = sim_stats(&h).await;
    assert_eq!(stats["refusals"]["project"], 1);
    assert_eq!(stats["project"]["per_window"], 1000);
    assert_eq!(stats["quota"]["per_project_per_window"], 1000);
    let in_window = stats["project"]["units_in_window"].as_u64().unwrap();
    assert!(in_window > 995 && in_window <= 1000, "{in_window}");
    let by_user = stats["units_by_user"].as_object().unwrap();
    assert_eq!(by_user.len(), 10);
    assert!(by_user.values().all(|u| u.as_u64().unwrap() < 6000 / 50));
    assert_eq!(
        by_user.values().map(|u| u.as_u64().unwrap()).sum::<u64>(),
        in_window
    );
    h.stop().await;
}

#[tokio::test]
async fn a_thousand_users_start_without_building_their_mailboxes() {
    let t = std::time::Instant::now();
    let h = start(SimConfig {
        messages: 1000,
        ..domain(1000, 1000)
    })
    .await;
    // A figure for the report, not a timed assertion.
    eprintln!(
        "1,001 users x 1,000 messages: serving after {:?}",
        t.elapsed()
    );
    let stats = sim_stats(&h).await;
    assert_eq!(stats["users_total"], 1001);
    assert_eq!(
        stats["mailboxes_generated"], 1,
        "only the default user's at start"
    );
    let tok = mint(&h, Some("user500@example.com"), "https://mail.google.com/").await;
    let (status, p) = get_as(&h, Some(&tok), "/gmail/v1/users/me/profile").await;
    assert_eq!(status, 200);
    assert_eq!(p["messagesTotal"], 1000, "built on first use, whole");
    assert_eq!(sim_stats(&h).await["mailboxes_generated"], 2);
    h.stop().await;
}

async fn upload(
    h: &SimHandle,
    path_and_query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = client()
        .post(format!(
            "{}/upload/gmail/v1/users/me/{path_and_query}",
            h.base_url
        ))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn related(labels: &[&str], raw: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--imp\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n--imp\r\nContent-Type: message/rfc822\r\n\r\n",
        json!({ "labelIds": labels })
    )
    .into_bytes();
    b.extend_from_slice(raw);
    b.extend_from_slice(b"\r\n--imp--\r\n");
    b
}

#[tokio::test]
async fn import_and_insert_take_uploads_merge_message_ids_and_show_in_history() {
    let h = start(config(5)).await;
    let (_, profile) = get(&h, "profile").await;
    let start_history = profile["historyId"].as_str().unwrap().to_string();
    let (_, label) = post(&h, "labels", json!({"name": "Restored/2024"})).await;
    let label_id = label["id"].as_str().unwrap().to_string();
    let raw = b"From: Ann <ann@example.org>\r\nTo: me@example.com\r\nSubject: imported one\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <imp-1@example.org>\r\n\r\nHello from the past.\r\n".to_vec();

    // Multipart: metadata with labels, then the message; bytes kept as sent.
    let (status, v) = upload(
        &h,
        "messages/import?uploadType=multipart&neverMarkSpam=true",
        "multipart/related; boundary=imp",
        related(&["INBOX", &label_id], &raw),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (_, got) = get(&h, &format!("messages/{id}?format=raw")).await;
    use base64::Engine as _;
    let back = base64::engine::general_purpose::URL_SAFE
        .decode(got["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(back, raw, "the message's bytes are the ones uploaded");
    let mut labels: Vec<&str> = got["labelIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    labels.sort();
    assert_eq!(labels, vec!["INBOX", label_id.as_str()]);
    // internalDateSource defaults to dateHeader for import.
    assert_eq!(got["internalDate"], "1704189600000");
    let (_, hits) = get(&h, "messages?q=rfc822msgid:imp-1@example.org").await;
    assert_eq!(hits["messages"][0]["id"], id.as_str());

    // The same Message-ID again: the same message, the new label added.
    let (status, again) = upload(
        &h,
        "messages/import?uploadType=multipart",
        "multipart/related; boundary=imp",
        related(&["STARRED"], &raw),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["id"],
        id.as_str(),
        "a re-import merges into the message"
    );
    let (_, hits) = get(&h, "messages?q=rfc822msgid:imp-1@example.org").await;
    assert_eq!(hits["messages"].as_array().unwrap().len(), 1);
    let (_, got) = get(&h, &format!("messages/{id}?format=minimal")).await;
    assert!(got["labelIds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "STARRED"));

    // Without a Message-ID every import is a new message (uploadType=media: no labels).
    let plain = b"Subject: no id\r\n\r\nbody\r\n".to_vec();
    let (s1, a) = upload(
        &h,
        "messages/import?uploadType=media",
        "message/rfc822",
        plain.clone(),
    )
    .await;
    let (s2, b) = upload(
        &h,
        "messages/import?uploadType=media",
        "message/rfc822",
        plain,
    )
    .await;
    assert_eq!((s1, s2), (200, 200));
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["labelIds"], json!([]));

    // The plain JSON form; insert uses receivedTime by default.
    let raw2 = b"Subject: inserted\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <ins-1@x>\r\n\r\nx\r\n";
    let (status, ins) = post(
        &h,
        "messages",
        json!({"raw": base64::engine::general_purpose::URL_SAFE.encode(raw2), "labelIds": ["INBOX", "UNREAD"]}),
    )
    .await;
    assert_eq!(status, 200, "{ins}");
    let (_, got) = get(
        &h,
        &format!("messages/{}?format=minimal", ins["id"].as_str().unwrap()),
    )
    .await;
    assert_ne!(
        got["internalDate"], "1704189600000",
        "insert dates by receipt"
    );

    // The imports are in history as messagesAdded.
    let (_, hist) = get(
        &h,
        &format!("history?startHistoryId={start_history}&historyTypes=messageAdded"),
    )
    .await;
    let added: Vec<&str> = hist["history"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["messagesAdded"].as_array().unwrap())
        .map(|m| m["message"]["id"].as_str().unwrap())
        .collect();
    assert!(added.contains(&id.as_str()), "{hist}");
    assert_eq!(added.len(), 4, "imported, two without id, inserted: {hist}");

    // Refusals: an unknown label, a reserved name, no message, bad parameters.
    let (status, v) = upload(
        &h,
        "messages/import?uploadType=multipart",
        "multipart/related; boundary=imp",
        related(&["Label_999"], &raw),
    )
    .await;
    assert_eq!((status, message(&v)), (400, "Invalid label: Label_999"));
    let (status, v) = post(&h, "labels", json!({"name": "Muted"})).await;
    assert_eq!((status, message(&v)), (400, "Invalid label name"));
    let (status, _) = post(&h, "messages/import", json!({"labelIds": ["INBOX"]})).await;
    assert_eq!(status, 400);
    let (status, v) = upload(
        &h,
        "messages/import?uploadType=media&internalDateSource=yesterday",
        "message/rfc822",
        raw.clone(),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = upload(
        &h,
        "messages?uploadType=media&neverMarkSpam=true",
        "message/rfc822",
        raw.clone(),
    )
    .await;
    assert!(
        status == 400 && message(&v).contains("Cannot bind query parameter"),
        "insert has no neverMarkSpam: {v}"
    );
    let (status, _) = upload(&h, "messages/import", "message/rfc822", raw.clone()).await;
    assert_eq!(status, 400, "an upload names its uploadType");
    let (status, v) = upload(
        &h,
        "messages/import?uploadType=multipart",
        "multipart/related; boundary=imp",
        b"--imp\r\n".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // The spam classifier: a message that says it is spam lands in SPAM
    // unless neverMarkSpam.
    let spam = b"Subject: win\r\nX-Spam-Flag: YES\r\nMessage-ID: <s1@x>\r\n\r\n$$$\r\n".to_vec();
    let (_, v) = upload(
        &h,
        "messages/import?uploadType=multipart",
        "multipart/related; boundary=imp",
        related(&["INBOX"], &spam),
    )
    .await;
    assert_eq!(v["labelIds"], json!(["SPAM"]));
    let spam2 = b"Subject: win\r\nX-Spam-Flag: YES\r\nMessage-ID: <s2@x>\r\n\r\n$$$\r\n".to_vec();
    let (_, v) = upload(
        &h,
        "messages/import?uploadType=multipart&neverMarkSpam=true",
        "multipart/related; boundary=imp",
        related(&["INBOX"], &spam2),
    )
    .await;
    assert_eq!(v["labelIds"], json!(["INBOX"]));

    // A batch may carry the JSON form, not an upload.
    let boundary = "bb";
    let enc = base64::engine::general_purpose::URL_SAFE
        .encode(b"Subject: batched\r\nMessage-ID: <b1@x>\r\n\r\nx\r\n");
    let body = format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <a>\r\n\r\nPOST /gmail/v1/users/me/messages/import\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <b>\r\n\r\nPOST /upload/gmail/v1/users/me/messages/import?uploadType=media\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\n--{boundary}--\r\n",
        json!({"raw": enc, "labelIds": ["INBOX"]})
    );
    let (status, parts, _) = send_batch(&h, boundary, body).await;
    assert_eq!(status, 200);
    assert_eq!(parts[0].status, 200);
    assert_eq!(parts[1].status, 404, "no media in a batch");

    // Import costs 25 units, insert too.
    client()
        .post(format!("{}/_sim/stats/reset", h.base_url))
        .send()
        .await
        .unwrap();
    let one = b"Subject: priced\r\nMessage-ID: <p1@x>\r\n\r\nx\r\n".to_vec();
    let (status, _) = upload(
        &h,
        "messages/import?uploadType=media",
        "message/rfc822",
        one.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sim_stats(&h).await["units_spent"], 25);
    let (status, _) = upload(&h, "messages?uploadType=media", "message/rfc822", one).await;
    assert_eq!(status, 200);
    assert_eq!(sim_stats(&h).await["units_spent"], 50);
    h.stop().await;
}

#[tokio::test]
async fn an_upload_past_the_discovery_max_size_is_refused_naming_it() {
    let h = start(config(1)).await;
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.resize(gmailscript::sim::import::MAX_SIZE + 1, b'x');
    let (status, v) = upload(
        &h,
        "messages/import?uploadType=media",
        "message/rfc822",
        big,
    )
    .await;
    assert_eq!(status, 413, "{v}");
    assert!(message(&v).contains("157286400"), "{v}");
    h.stop().await;
}

#[tokio::test]
async fn import_needs_the_insert_modify_or_full_scope() {
    let h = start(config(1)).await;
    let mint = |scope: &'static str| {
        let h = &h;
        async move {
            let (_, v) = form_post(
                h,
                "/_sim/tokens",
                &[("user", "alice@example.com"), ("scope", scope)],
            )
            .await;
            v["access_token"].as_str().unwrap().to_string()
        }
    };
    let raw = b"Subject: s\r\nMessage-ID: <scope@x>\r\n\r\nx\r\n".to_vec();
    for (scope, want) in [
        ("https://www.googleapis.com/auth/gmail.readonly", 403),
        ("https://www.googleapis.com/auth/gmail.insert", 200),
        ("https://www.googleapis.com/auth/gmail.modify", 200),
    ] {
        let token = mint(scope).await;
        let r = client()
            .post(format!(
                "{}/upload/gmail/v1/users/me/messages/import?uploadType=media",
                h.base_url
            ))
            .bearer_auth(token)
            .header("content-type", "message/rfc822")
            .body(raw.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{scope}");
    }
    h.stop().await;
}
