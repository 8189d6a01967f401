//! Tests of the search language end to end: queries parsed, then matched
//! against a small fixed mailbox, plus the error messages and the limits
//! on hostile input. They go through the public surface, so they cover
//! the parser and the matcher together.

use super::*;
use crate::sim::mailbox::{Body, Label, LabelType};
use std::sync::Arc;

fn ms(y: i32, m: u32, d: u32, h: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(h, 0, 0))
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// "Now" for every test: 2024-06-15 00:00 UTC.
fn now() -> i64 {
    ms(2024, 6, 15, 0)
}

struct M {
    id: &'static str,
    labels: &'static [&'static str],
    date: i64,
    size: usize,
    from: &'static str,
    to: &'static str,
    subject: &'static str,
    attachments: &'static [&'static str],
    body: &'static str,
}

fn message(m: M) -> SimMessage {
    let raw = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
        m.from, m.to, m.subject, m.body
    );
    let mut label_ids: Vec<String> = m.labels.iter().map(|l| l.to_string()).collect();
    label_ids.sort();
    SimMessage {
        id: m.id.into(),
        thread_id: m.id.into(),
        label_ids,
        internal_date_ms: m.date,
        history_id: 1,
        size: m.size,
        from: m.from.into(),
        to: m.to.into(),
        subject: m.subject.into(),
        attachment_names: m.attachments.iter().map(|a| a.to_string()).collect(),
        // HTML-escaped, as Gmail's snippets are.
        snippet: m
            .body
            .chars()
            .take(200)
            .collect::<String>()
            .replace('&', "&amp;")
            .replace('\'', "&#39;"),
        body: Body::Stored(Arc::from(raw.into_bytes())),
    }
}

fn label(id: &str, name: &str, kind: LabelType) -> Label {
    Label {
        id: id.into(),
        name: name.into(),
        kind,
    }
}

fn mailbox() -> Mailbox {
    let mut mb = Mailbox::default();
    for id in [
        "INBOX",
        "SENT",
        "SPAM",
        "TRASH",
        "DRAFT",
        "UNREAD",
        "STARRED",
        "IMPORTANT",
        "CHAT",
        "CATEGORY_PERSONAL",
        "CATEGORY_SOCIAL",
        "CATEGORY_PROMOTIONS",
        "CATEGORY_UPDATES",
        "CATEGORY_FORUMS",
    ] {
        mb.labels.push(label(id, id, LabelType::System));
    }
    mb.labels
        .push(label("Label_1", "Work/Projects", LabelType::User));
    mb.labels
        .push(label("Label_2", "Family Stuff", LabelType::User));
    let msgs = [
        M {
            id: "m1",
            labels: &["INBOX", "UNREAD", "IMPORTANT", "CATEGORY_PERSONAL"],
            date: ms(2024, 6, 10, 12),
            size: 2000,
            from: "Alice Smith <alice@example.com>",
            to: "bob@example.com",
            subject: "Dinner and a movie tonight",
            attachments: &[],
            body: "Let's meet at the café at 8.",
        },
        M {
            id: "m2",
            labels: &["INBOX", "STARRED", "Label_1"],
            date: ms(2024, 1, 15, 9),
            size: 5 << 20,
            from: "José Ñúñez <jose@example.es>",
            to: "alice@example.com, carol@example.org",
            subject: "Quarterly report",
            attachments: &["Report-Q1.PDF", "data.xlsx"],
            body: "Please find the meeting notes attached.",
        },
        M {
            id: "m3",
            labels: &["SENT"],
            date: ms(2023, 5, 1, 8),
            size: 300,
            from: "Owner <owner@example.com>",
            to: "dave@example.net",
            subject: "Re: meeting",
            attachments: &[],
            body: "See you at 12:30. Visit https://example.com/x",
        },
        M {
            id: "m4",
            labels: &["SPAM"],
            date: ms(2024, 6, 14, 10),
            size: 1000,
            from: "Prize <win@spam.test>",
            to: "owner@example.com",
            subject: "You won!!!",
            attachments: &[],
            body: "Claim your prize",
        },
        M {
            id: "m5",
            labels: &["TRASH", "CATEGORY_SOCIAL"],
            date: ms(2022, 6, 1, 0),
            size: 1500,
            from: "news@social.test",
            to: "owner@example.com",
            subject: "Weekly digest",
            attachments: &[],
            body: "ΟΔΟΣ test",
        },
        M {
            id: "m6",
            labels: &["INBOX", "Label_2"],
            date: ms(2024, 6, 14, 23),
            size: 11 << 20,
            from: "Mom <mom@family.test>",
            to: "owner@example.com",
            subject: "Photos",
            attachments: &["beach.JPG"],
            body: "Big photos from the beach & more",
        },
        M {
            id: "m7",
            labels: &["DRAFT"],
            date: ms(2024, 3, 1, 0),
            size: 100,
            from: "Owner <owner@example.com>",
            to: "x@example.com",
            subject: "Draft idea",
            attachments: &[],
            body: "not sent yet",
        },
    ];
    for m in msgs {
        let m = message(m);
        mb.messages.insert(m.id.clone(), m);
    }
    mb
}

/// Ids of the test mailbox's messages matching `q`, in id order.
fn ids(q: &str) -> Vec<String> {
    let mb = mailbox();
    let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    mb.messages
        .values()
        .filter(|m| query.matches(m, &mb, now()))
        .map(|m| m.id.clone())
        .collect()
}

fn check(q: &str, want: &[&str]) {
    assert_eq!(ids(q), want, "query {q:?}");
}

fn err(q: &str) -> String {
    match parse(q) {
        Ok(query) => panic!("{q:?} parsed as {query:?}"),
        Err(e) => e.to_string(),
    }
}

const ALL: &[&str] = &["m1", "m2", "m3", "m4", "m5", "m6", "m7"];

#[test]
fn empty_query_matches_everything() {
    for q in ["", "   ", "\t\n", "()", "{}", "!!!", "-", "OR", "\"\""] {
        assert!(parse(q).unwrap().is_empty(), "{q:?}");
        check(q, ALL);
    }
    assert!(!parse("a").unwrap().is_empty());
}

#[test]
fn bare_words_match_whole_words_anywhere() {
    check("dinner", &["m1"]);
    check("DiNnEr", &["m1"]);
    // Body only; "meet" must not match "meeting".
    check("meet", &["m1"]);
    check("meeting", &["m2", "m3"]);
    // Address words, in From and in To.
    check("alice", &["m1", "m2"]);
    check("alice@example.com", &["m1", "m2"]);
    // Attachment names.
    check("xlsx", &["m2"]);
    check("claim prize", &["m4"]);
    check("+dinner", &["m1"]);
    check("lowercase or", &[]);
}

#[test]
fn phrases_need_consecutive_words() {
    check("\"movie tonight\"", &["m1"]);
    check("\"tonight movie\"", &[]);
    check("\"MEETING notes\"", &["m2"]);
    check("\"notes meeting\"", &[]);
    check("\"(dinner)\"", &["m1"]);
    check("\"dinner OR\"", &[]);
}

#[test]
fn non_ascii_is_case_insensitive() {
    check("josé", &["m2"]);
    check("JOSÉ", &["m2"]);
    check("ñúñez", &["m2"]);
    check("CAFÉ", &["m1"]);
    check("jose", &["m2"]); // in the address
    check("οδος", &["m5"]); // final sigma folds like σ
    check("from:JOSÉ", &["m2"]);
    check("from:ñú", &["m2"]);
}

#[test]
fn times_and_urls_are_words() {
    check("12:30", &["m3"]);
    check("https://example.com", &["m3"]);
    check("HTTPS://example.com/x", &["m3"]);
}

#[test]
fn snippet_entities_do_not_match() {
    check("amp", &[]);
    check("39", &[]);
    check("let's", &["m1"]);
    check("beach", &["m6"]);
}

#[test]
fn from_and_to() {
    check("from:alice", &["m1"]);
    check("FROM:ALICE@EXAMPLE.COM", &["m1"]);
    check("from:\"Alice Smith\"", &["m1"]);
    check("from:\"smith alice\"", &[]);
    check("from:(alice OR jose)", &["m1", "m2"]);
    check("from:{alice jose}", &["m1", "m2"]);
    check("from:(alice jose)", &[]);
    check("to:alice", &["m2"]);
    check("cc:carol", &["m2"]);
    check("bcc:carol", &["m2"]);
    check("to:example.net", &["m3"]);
    check("from:me", &["m3", "m7"]);
    check("to:me", &["m1", "m2", "m4", "m5", "m6"]);
}

#[test]
fn subject() {
    check("subject:dinner", &["m1"]);
    check("subject:(dinner movie)", &["m1"]);
    check("subject:(dinner report)", &[]);
    check("subject:{dinner report}", &["m1", "m2"]);
    check("subject:\"a movie\"", &["m1"]);
    check("subject:meet", &[]);
    check("subject:meeting", &["m3"]);
    check("subject:(-dinner) in:inbox", &["m2", "m6"]);
    check("subject:(dinner (movie OR report))", &["m1"]);
}

#[test]
fn labels() {
    check("label:work-projects", &["m2"]);
    check("label:WORK-PROJECTS", &["m2"]);
    check("label:Work/Projects", &["m2"]);
    check("label:\"work projects\"", &["m2"]);
    check("label:family-stuff", &["m6"]);
    check("label:\"Family Stuff\"", &["m6"]);
    check("label:label_1", &["m2"]);
    check("label:inbox", &["m1", "m2", "m6"]);
    check("label:unread", &["m1"]);
    check("label:work", &[]);
    check("label:nonexistent", &[]);
    check("-label:work-projects in:inbox", &["m1", "m6"]);
}

#[test]
fn in_is_has_category() {
    check("in:inbox", &["m1", "m2", "m6"]);
    check("IN:INBOX", &["m1", "m2", "m6"]);
    check("in:sent", &["m3"]);
    check("in:spam", &["m4"]);
    check("in:trash", &["m5"]);
    check("in:drafts", &["m7"]);
    check("in:draft", &["m7"]);
    check("in:starred", &["m2"]);
    check("in:important", &["m1"]);
    check("in:chats", &[]);
    check("in:anywhere", ALL);
    check("is:unread", &["m1"]);
    check("is:read", &["m2", "m3", "m4", "m5", "m6", "m7"]);
    check("is:starred", &["m2"]);
    check("is:important", &["m1"]);
    check("has:attachment", &["m2", "m6"]);
    check("has:userlabels", &["m2", "m6"]);
    check("has:nouserlabels", &["m1", "m3", "m4", "m5", "m7"]);
    check("category:primary", &["m1"]);
    check("category:social", &["m5"]);
    check("category:promotions", &[]);
    check("category:updates", &[]);
    check("category:forums", &[]);
}

#[test]
fn filename() {
    check("filename:pdf", &["m2"]);
    check("filename:report-q1.pdf", &["m2"]);
    check("filename:jpg", &["m6"]);
    check("filename:\"data\"", &["m2"]);
    check("filename:docx", &[]);
}

#[test]
fn absolute_dates() {
    check("after:2024/06/10", &["m1", "m4", "m6"]);
    check("after:2024-06-10", &["m1", "m4", "m6"]);
    check("after:06/10/2024", &["m1", "m4", "m6"]);
    check("after:2024/6/10", &["m1", "m4", "m6"]);
    check("newer:2024/06/10", &["m1", "m4", "m6"]);
    check("before:2024/01/15", &["m3", "m5"]);
    check("older:2024/01/15", &["m3", "m5"]);
    check("after:2024/06/10 before:2024/06/11", &["m1"]);
    // Unix seconds: after: is inclusive, before: exclusive.
    let s = ms(2024, 6, 10, 12) / 1000;
    check(&format!("after:{s}"), &["m1", "m4", "m6"]);
    check(&format!("before:{s}"), &["m2", "m3", "m5", "m7"]);
    check(&format!("after:{}", s + 1), &["m4", "m6"]);
}

#[test]
fn relative_dates() {
    check("newer_than:1d", &["m4", "m6"]);
    check("newer_than:7d", &["m1", "m4", "m6"]);
    check("newer_than:1m", &["m1", "m4", "m6"]);
    check("newer_than:6m", &["m1", "m2", "m4", "m6", "m7"]);
    check("older_than:1y", &["m3", "m5"]);
    check("older_than:2Y", &["m5"]);
    check("-newer_than:6m", &["m3", "m5"]);
    check("older_than:0d", ALL);
}

#[test]
fn sizes() {
    check("larger:10M", &["m6"]);
    check("larger:1m", &["m2", "m6"]);
    check("size:1000000", &["m2", "m6"]);
    check("larger:2000", &["m2", "m6"]); // strictly larger
    check("smaller:1K", &["m3", "m4", "m7"]);
    check("smaller:1000", &["m3", "m7"]);
    check("larger:1K smaller:2001", &["m1", "m5"]);
}

#[test]
fn negation() {
    check("-in:inbox", &["m3", "m4", "m5", "m7"]);
    check("-from:alice in:inbox", &["m2", "m6"]);
    check("in:inbox -dinner", &["m2", "m6"]);
    check("-(dinner OR photos) in:inbox", &["m2"]);
    check("-{dinner photos} in:inbox", &["m2"]);
    check("NOT dinner in:inbox", &["m2", "m6"]);
    check("--dinner", &["m1"]);
    check("NOT -dinner", &["m1"]);
    check("-\"movie tonight\" in:inbox", &["m2", "m6"]);
    check("in:inbox - dinner", &["m1"]); // a lone "-" is ignored
}

#[test]
fn or_binds_tighter_than_and() {
    check("dinner OR report", &["m1", "m2"]);
    check("dinner | report", &["m1", "m2"]);
    check("dinner|report", &["m1", "m2"]);
    check("dinner OR report OR photos", &["m1", "m2", "m6"]);
    // (photos OR report) AND (unread OR starred), not photos OR (report
    // AND unread) OR starred.
    check("photos OR report is:unread OR is:starred", &["m2"]);
    check("dinner report OR photos", &[]);
    check("(dinner OR report) is:unread", &["m1"]);
    check("{dinner report} in:inbox", &["m1", "m2"]);
    check("{dinner report photos} -is:unread", &["m2", "m6"]);
    check("{dinner (report is:starred)}", &["m1", "m2"]);
    check("dinner AND movie", &["m1"]);
    check("(dinner movie) OR photos", &["m1", "m6"]);
}

#[test]
fn stray_connectives_are_ignored() {
    check("OR dinner", &["m1"]);
    check("dinner OR", &["m1"]);
    check("dinner OR OR report", &["m1", "m2"]);
    check("dinner | | report", &["m1", "m2"]);
    check("(dinner OR) movie", &["m1"]);
    check("dinner NOT", &["m1"]);
    check("AND dinner", &["m1"]);
    check("dinner !!! OR report", &["m1", "m2"]);
    check("dinner OR !!! report", &["m1", "m2"]);
    check("dinner OR - report", &["m1", "m2"]);
    check("dinner OR () report", &["m1", "m2"]);
}

#[test]
fn errors_name_the_operator_and_value() {
    assert_eq!(
        err("foo:bar"),
        "unsupported search operator \"foo:\" in query \"foo:bar\""
    );
    for (q, op) in [
        ("deliveredto:a@b.c", "\"deliveredto:\""),
        ("a AROUND 3 b", "\"AROUND\""),
        ("Re: hello", "\"Re:\""),
        ("subject:(foo:bar)", "\"foo:\""),
        ("list:x", "\"list:\""),
    ] {
        let e = err(q);
        assert!(
            e.starts_with("unsupported search operator ") && e.contains(op),
            "{q}: {e}"
        );
    }
    for (q, op, value) in [
        ("larger:abc", "larger:", "abc"),
        ("smaller:10X", "smaller:", "10X"),
        (
            "larger:99999999999999999999",
            "larger:",
            "99999999999999999999",
        ),
        ("after:2024/13/45", "after:", "2024/13/45"),
        ("before:2023/02/29", "before:", "2023/02/29"),
        ("after:yesterday", "after:", "yesterday"),
        ("after:24/1/1", "after:", "24/1/1"),
        ("older_than:5x", "older_than:", "5x"),
        ("newer_than:d", "newer_than:", "d"),
        (
            "older_than:99999999999999y",
            "older_than:",
            "99999999999999y",
        ),
        ("in:nowhere", "in:", "nowhere"),
        ("is:muted", "is:", "muted"),
        ("has:drive", "has:", "drive"),
        ("category:junk", "category:", "junk"),
        ("in:(inbox bogus)", "in:", "bogus"),
    ] {
        let e = err(q);
        assert!(
            e.contains(&format!("\"{op}\"")) && e.contains(&format!("\"{value}\"")),
            "{q}: {e}"
        );
    }
    for q in ["from:", "from: alice", "(from:)", "to:\"\"", "label:\"  \""] {
        assert!(err(q).contains("needs a value"), "{q}");
    }
    for (q, what) in [
        ("(dinner", '('),
        ("dinner)", ')'),
        ("{dinner", '{'),
        ("dinner}", '}'),
        ("(dinner}", '}'),
        ("\"dinner", '"'),
        ("subject:(dinner", '('),
        ("from:\"alice", '"'),
    ] {
        let e = err(q);
        assert!(e.contains(&format!("unbalanced '{what}'")), "{q}: {e}");
    }
}

#[test]
fn error_quotes_long_queries_clipped() {
    let q = format!("{} foo:bar", "word ".repeat(1000));
    let e = err(&q);
    assert!(
        e.contains("\"foo:\"") && e.contains('…') && e.len() < 400,
        "{e}"
    );
}

#[test]
fn spam_and_trash_mentions() {
    for q in [
        "in:spam",
        "in:trash",
        "IN:SPAM",
        "label:spam",
        "label:TRASH",
        "in:anywhere",
        "dinner OR in:trash",
        "-(-in:spam)",
        "{in:inbox in:spam}",
    ] {
        assert!(parse(q).unwrap().mentions_spam_or_trash(), "{q}");
    }
    for q in [
        "",
        "-in:spam",
        "in:inbox",
        "spam",
        "subject:trash",
        "-in:anywhere",
    ] {
        assert!(!parse(q).unwrap().mentions_spam_or_trash(), "{q}");
    }
}

#[test]
fn garbage_never_panics() {
    let mb = mailbox();
    let mut nasty: Vec<String> = [
        "-",
        "\"\"",
        "(",
        ")",
        "OR",
        "OR OR",
        "from:",
        "|",
        "||",
        "{",
        "}",
        "-(",
        "-)",
        "-{}",
        "NOT",
        "NOT NOT",
        "- - -",
        ":",
        "::",
        ":a",
        "a:",
        "from::",
        "from:(",
        "from:{",
        "from:)",
        "from:\"",
        "\"",
        "\"\"\"",
        "label:",
        "in:",
        "after:",
        "-from:",
        "(()",
        "())",
        "{(})",
        "漢字",
        "é",
        "\u{0}",
        "\u{200b}",
        "İstanbul",
        "ﬃ",
        "ǅ",
        "K",
        "-\u{301}",
        "a\u{301}:b",
        "日本:語",
        "ﬁle:x",
        "OR(a)OR",
        "a(b)c",
        "\"a\"b\"c\"",
        "after:-1",
        "larger:-1",
        "older_than:-1d",
        "after:9999999999999999999",
        "before:0/0/0",
        "before:0000/01/01",
        "after:2024//01",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    nasty.push("(".repeat(100_000));
    nasty.push(")".repeat(100_000));
    nasty.push("-".repeat(100_000) + "dinner");
    nasty.push("NOT ".repeat(10_000) + "dinner");
    nasty.push("dinner OR ".repeat(10_000));
    nasty.push("a ".repeat(100_000));
    nasty.push("é".repeat(100_000));
    // Deterministic random strings over the syntax's sharp edges.
    let alphabet: Vec<&str> = vec![
        " ",
        "-",
        "(",
        ")",
        "{",
        "}",
        "\"",
        "|",
        ":",
        "OR",
        "AND",
        "NOT",
        "from:",
        "subject:",
        "label:",
        "in:inbox",
        "is:",
        "a",
        "dinner",
        "é",
        "漢",
        "12:30",
        "larger:1K",
        "\u{301}",
    ];
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let mut s = String::new();
        for _ in 0..rng.gen_range(0..12) {
            s.push_str(alphabet[rng.gen_range(0..alphabet.len())]);
        }
        nasty.push(s);
    }
    for q in &nasty {
        if let Ok(query) = parse(q) {
            for m in mb.messages.values() {
                query.matches(m, &mb, now());
            }
            query.mentions_spam_or_trash();
        }
    }
}

#[test]
fn nesting_is_bounded() {
    let nested = |n| format!("{}dinner{}", "(".repeat(n), ")".repeat(n));
    check(&nested(MAX_DEPTH), &["m1"]);
    check("-(-(-(dinner)))", &["m2", "m3", "m4", "m5", "m6", "m7"]);
    for q in [
        nested(MAX_DEPTH + 1),
        "{".repeat(100_000),
        "from:(".repeat(100_000),
    ] {
        assert!(
            matches!(parse(&q), Err(QueryError::TooDeep { .. })),
            "{}",
            &q[..10]
        );
    }
}

/// A query of every kind of term matches each of many similar messages.
#[test]
fn a_compound_query_matches_each_of_many_messages() {
    let mut mb = mailbox();
    let template = mb.messages["m2"].clone();
    let messages: Vec<SimMessage> = (0..5_000)
        .map(|i| {
            let mut m = template.clone();
            m.id = format!("{i:016x}");
            m.subject = format!("Quarterly report number {i}");
            m.from = format!("Sender {i} <sender{i}@example.com>");
            m.internal_date_ms -= i * 60_000;
            m
        })
        .collect();
    mb.messages.clear();
    let q = parse(
        "from:example.com {subject:quarterly subject:annual} -label:family-stuff \
         newer_than:1y larger:1K \"report number\" -is:unread",
    )
    .unwrap();
    let n = messages.iter().filter(|m| q.matches(m, &mb, now())).count();
    assert_eq!(n, 5_000);
}

#[test]
fn rfc822msgid_finds_the_message_by_its_message_id_header() {
    let mut mb = mailbox();
    let mut m = mb.messages["m2"].clone();
    m.id = "mid1".into();
    m.body = Body::Stored(Arc::from(
        &b"From: a@b.c\r\nMessage-ID:\r\n <CAx.42@mail.example>\r\nSubject: s\r\n\r\nhi\r\n"[..],
    ));
    mb.messages.insert(m.id.clone(), m);
    let hits = |q: &str| {
        let q = parse(q).unwrap();
        let mut v: Vec<&str> = mb
            .messages
            .values()
            .filter(|m| q.matches(m, &mb, now()))
            .map(|m| m.id.as_str())
            .collect();
        v.sort();
        v
    };
    assert_eq!(hits("rfc822msgid:CAx.42@mail.example"), ["mid1"]);
    assert_eq!(hits("rfc822msgid:<CAx.42@mail.example>"), ["mid1"]);
    assert!(hits("rfc822msgid:CAx.43@mail.example").is_empty());
    // A generated message answers to the Message-ID it renders.
    let g = crate::sim::generate::generate(3, 1, "me@example.com", now());
    let gm = g.messages.values().next().unwrap();
    let header = gm.message_id_header().unwrap();
    let raw = String::from_utf8(gm.raw().into_owned()).unwrap();
    assert!(
        raw.contains(&format!("Message-ID: <{header}>")),
        "{raw:.400}"
    );
}
