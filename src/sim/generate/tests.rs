//! Tests of whole generated mailboxes: determinism, the pinned output of a
//! seed, sizes, MIME structure as a parser sees it, threads and labels.

use super::*;

const NOW: i64 = 1_767_225_600_123; // 2026-01-01, plus a bit

fn recipe(m: &SimMessage) -> &Recipe {
    match &m.body {
        Body::Generated(r) => r,
        Body::Stored(_) => panic!("generated messages have recipes"),
    }
}

#[test]
fn deterministic_and_independent_of_time_of_day() {
    let a = generate(7, 500, "alex.doe@example.com", NOW);
    let b = generate(7, 500, "alex.doe@example.com", NOW + 3_600_000);
    assert_eq!(a.messages.len(), 500);
    for (x, y) in a.messages.values().zip(b.messages.values()) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.label_ids, y.label_ids);
        assert_eq!(x.snippet, y.snippet);
        assert_eq!(x.raw(), y.raw());
    }
    let c = generate(8, 500, "alex.doe@example.com", NOW);
    assert_ne!(
        a.messages.keys().collect::<Vec<_>>(),
        c.messages.keys().collect::<Vec<_>>()
    );
}

/// Pins the output for one seed, so a change to the generator or an
/// upgrade of `rand`/`rand_chacha` cannot alter mailboxes silently:
/// the first messages' ids and subjects, and a SHA-256 over every
/// message's id, thread, labels, date, size, snippet and rendered bytes.
#[test]
fn seed_1_output_is_pinned() {
    use sha2::{Digest, Sha256};
    let mb = generate(1, 20, "me@example.com", NOW);
    let first: Vec<(&str, &str)> = mb
        .messages
        .values()
        .take(3)
        .map(|m| (m.id.as_str(), m.subject.as_str()))
        .collect();
    let mut h = Sha256::new();
    for m in mb.messages.values() {
        for part in [&m.id, &m.thread_id, &m.label_ids.join(","), &m.snippet] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(m.internal_date_ms.to_le_bytes());
        h.update((m.size as u64).to_le_bytes());
        h.update(m.raw());
    }
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        first,
        [
            ("185c507c19000002", "【11%オフ】週末限定セール"),
            ("1862496538800012", "来週の予定について"),
            ("1863190c66800013", "Re: 来週の予定について"),
        ],
        "first messages"
    );
    assert_eq!(
        digest, "c76db3923cabd81a0ee72f993e26e9cc445a558511af7411d870685e7a3a32a0",
        "whole mailbox"
    );
}

#[test]
fn size_matches_render_and_headers_prefix() {
    let mb = generate(11, 3_000, "me@example.com", NOW);
    for m in mb.messages.values() {
        let r = recipe(m);
        let raw = r.render();
        assert_eq!(raw.len(), m.size, "message {}", m.id);
        assert!(raw.starts_with(&r.render_headers()));
        assert!(
            raw.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'),
            "bare LF"
        );
    }
}

#[test]
fn set_date_moves_the_date_header() {
    let mut mb = generate(12, 20, "me@example.com", NOW);
    let m = mb.messages.values_mut().next().expect("a message");
    let Body::Generated(r) = &mut m.body else {
        panic!("generated")
    };
    let r = Arc::get_mut(r).expect("unshared");
    r.set_date(NOW + 1_234);
    let raw = r.render();
    assert_eq!(raw.len(), r.size());
    let parsed = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("parses");
    assert_eq!(
        parsed.date().expect("date").to_timestamp() * 1000,
        NOW - 123 + 1_000
    );
}

#[test]
fn body_text_matches_mime_parser() {
    let mb = generate(3, 800, "me@example.com", NOW);
    for m in mb.messages.values() {
        let r = recipe(m);
        let raw = r.render();
        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("parses");
        assert_eq!(
            parsed.body_text(0).as_deref(),
            Some(r.body_text().as_str()),
            "message {}",
            m.id
        );
        assert_eq!(parsed.subject(), Some(m.subject.as_str()));
        assert_eq!(parsed.attachment_count(), m.attachment_names.len());
        for (i, name) in m.attachment_names.iter().enumerate() {
            let part = parsed.attachment(i as u32).expect("attachment");
            use mail_parser::MimeHeaders;
            assert_eq!(part.attachment_name(), Some(name.as_str()));
            assert_eq!(
                part.contents(),
                &r.attachment_content(&(i + 1).to_string()).expect("content")[..]
            );
        }
        let date = parsed.date().expect("date").to_timestamp();
        assert_eq!(date * 1000, m.internal_date_ms);
    }
}

#[test]
fn ids_threads_and_labels() {
    let mb = generate(5, 5_000, "me@example.com", NOW);
    let mut threads = std::collections::HashMap::<&str, Vec<&SimMessage>>::new();
    for m in mb.messages.values() {
        assert_eq!(m.id.len(), 16);
        assert!(m
            .id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(m.internal_date_ms <= NOW && m.internal_date_ms > NOW - SPAN_MS - DAY_MS);
        threads.entry(&m.thread_id).or_default().push(m);
        let mut sorted = m.label_ids.clone();
        sorted.sort();
        assert_eq!(sorted, m.label_ids);
        for l in &m.label_ids {
            assert!(mb.labels.iter().any(|x| &x.id == l), "unknown label {l}");
        }
        if m.has_label("SPAM") || m.has_label("TRASH") || m.has_label("SENT") {
            assert!(!m.has_label("INBOX"));
        }
        assert!(m.history_id <= mb.history_id);
    }
    // Thread id is the id of the thread's first (oldest) message.
    for (tid, msgs) in &threads {
        assert_eq!(*tid, msgs[0].id);
        for m in &msgs[1..] {
            assert!(m.subject.starts_with("Re: "));
            let raw = m.raw();
            let text = String::from_utf8_lossy(&raw);
            assert!(text.contains("\r\nIn-Reply-To: <") && text.contains("\r\nReferences: <"));
        }
    }
    let long = threads.values().map(|t| t.len()).max().unwrap_or(0);
    assert!(long >= 11, "longest thread {long}");
    let n = mb.messages.len() as f64;
    let share =
        |f: &dyn Fn(&SimMessage) -> bool| mb.messages.values().filter(|m| f(m)).count() as f64 / n;
    let unread = share(&|m| m.has_label("UNREAD"));
    assert!((0.2..0.4).contains(&unread), "unread {unread}");
    let starred = share(&|m| m.has_label("STARRED"));
    assert!((0.03..0.07).contains(&starred), "starred {starred}");
    let user = share(&|m| m.label_ids.iter().any(|l| l.starts_with("Label_")));
    assert!((0.12..0.3).contains(&user), "user labels {user}");
    let spam = share(&|m| m.has_label("SPAM"));
    assert!((0.002..0.02).contains(&spam), "spam {spam}");
    let sent = share(&|m| m.has_label("SENT"));
    assert!(sent > 0.05, "sent {sent}");
    let newsletters = share(&|m| m.has_label("CATEGORY_PROMOTIONS"));
    assert!(newsletters > 0.1);
    let inbox_cat = mb
        .messages
        .values()
        .filter(|m| m.has_label("INBOX"))
        .all(|m| m.label_ids.iter().any(|l| l.starts_with("CATEGORY_")));
    assert!(inbox_cat);
    assert_eq!(mb.history_floor, mb.history_id);
    assert!(mb.history.is_empty());
}

#[test]
fn size_distribution() {
    let mb = generate(9, 20_000, "me@example.com", NOW);
    let n = mb.messages.len() as f64;
    let count = |lo: usize, hi: usize| {
        mb.messages
            .values()
            .filter(|m| (lo..hi).contains(&m.size))
            .count() as f64
            / n
    };
    let normal = count(1_000, 30_000);
    let large = count(50_000, 1_100_000);
    let huge = count(2_000_000, 8_500_000);
    assert!(normal > 0.8, "normal {normal}");
    assert!((0.03..0.07).contains(&large), "large {large}");
    assert!((0.0008..0.004).contains(&huge), "huge {huge}");
    assert!(mb
        .messages
        .values()
        .all(|m| m.size < 8_500_000 && m.size > 300));
}

#[test]
fn non_ascii_headers_are_encoded_and_decode_back() {
    let mb = generate(21, 3_000, "me@example.com", NOW);
    let mut seen_b = false;
    let mut seen_q = false;
    for m in mb.messages.values() {
        let head = recipe(m).render_headers();
        assert!(head.is_ascii(), "headers must be 7-bit");
        let text = String::from_utf8_lossy(&head);
        seen_b |= text.contains("=?UTF-8?B?");
        seen_q |= text.contains("=?UTF-8?Q?");
        assert!(text.lines().all(|l| l.len() <= 998));
        let parsed = mail_parser::MessageParser::default()
            .parse(&head[..])
            .expect("headers");
        let from = parsed.from().and_then(|a| a.first()).expect("from");
        assert_eq!(
            mailbox_str(from.name().unwrap_or(""), from.address().unwrap_or("")),
            m.from
        );
        assert_eq!(parsed.subject(), Some(m.subject.as_str()));
    }
    assert!(seen_b && seen_q);
    assert!(mb
        .messages
        .values()
        .any(|m| m.from.contains("山田") || m.from.contains("佐藤")));
    assert!(mb.messages.values().any(|m| !m.subject.is_ascii()));
}

#[test]
fn memory_per_message_is_small() {
    assert!(
        std::mem::size_of::<Recipe>() <= 160,
        "{}",
        std::mem::size_of::<Recipe>()
    );
}

/// The generated mailbox has the shape of a real one (what a script meets:
/// mostly inbox mail, some spam and trash, long threads, a few huge
/// messages). Build time and memory are in `cargo bench --bench sim`.
#[test]
fn a_generated_mailbox_has_a_realistic_shape() {
    let mb = generate(1, 20_000, "me@example.com", NOW);
    let n = mb.messages.len() as f64;
    let share = |f: &dyn Fn(&SimMessage) -> bool| {
        100.0 * mb.messages.values().filter(|m| f(m)).count() as f64 / n
    };
    let label = |l: &'static str| share(&move |m| m.label_ids.iter().any(|x| x == l));
    let within = |what: &str, v: f64, lo: f64, hi: f64| {
        assert!((lo..=hi).contains(&v), "{what}: {v:.2}% not in {lo}..{hi}%");
    };
    within("INBOX", label("INBOX"), 40.0, 65.0);
    within("SENT", label("SENT"), 12.0, 30.0);
    within("UNREAD", label("UNREAD"), 20.0, 45.0);
    within("STARRED", label("STARRED"), 2.0, 10.0);
    within("SPAM", label("SPAM"), 0.3, 3.0);
    within("TRASH", label("TRASH"), 0.3, 3.0);
    within(
        "user labels",
        share(&|m| m.label_ids.iter().any(|x| x.starts_with("Label_"))),
        10.0,
        40.0,
    );
    let mut threads = std::collections::HashMap::<&str, usize>::new();
    for m in mb.messages.values() {
        *threads.entry(&m.thread_id).or_default() += 1;
    }
    let t = threads.len() as f64;
    let tshare = |lo: usize, hi: usize| {
        100.0
            * threads
                .values()
                .filter(|&&c| (lo..=hi).contains(&c))
                .count() as f64
            / t
    };
    within("threads of 1", tshare(1, 1), 70.0, 92.0);
    within("threads of 11-30", tshare(11, 30), 0.3, 5.0);
    within(
        "2-30 KB",
        share(&|m| (2_000..30_000).contains(&m.size)),
        65.0,
        92.0,
    );
    within("over 2 MB", share(&|m| m.size >= 2_000_000), 0.05, 1.0);
    within(
        "attachments",
        share(&|m| !m.attachment_names.is_empty()),
        8.0,
        25.0,
    );
    within("non-ASCII From", share(&|m| !m.from.is_ascii()), 15.0, 50.0);
    within(
        "non-ASCII Subject",
        share(&|m| !m.subject.is_ascii()),
        10.0,
        40.0,
    );
}
