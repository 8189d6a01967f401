//! Rendering: a [`Recipe`] turned into the bytes of an RFC 5322 message
//! (trace headers, MIME structure, text and HTML bodies, attachments), and
//! the cheap views of it the simulator needs without rendering it all
//! (size, headers, body text, snippet, one attachment).

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::headers::{
    boundary, encoded_words, folded_list, header_text, message_id, phrase, rfc5322_date, sig,
    user_name,
};
use super::layout::{count_lines, write_lines, ByteSink, Count, Mix};
use super::pools::{contact, words, Person, SERVICES, WORDS_EN};
use super::{FileKind, Lang, Party, Recipe, Style, DAY_MS};
use crate::sim::render::snippet;

impl FileKind {
    fn content_type(self) -> &'static str {
        match self {
            FileKind::Pdf => "application/pdf",
            FileKind::Png => "image/png",
            FileKind::Jpg => "image/jpeg",
            FileKind::Zip => "application/zip",
            FileKind::Txt => "text/plain; charset=\"US-ASCII\"",
            FileKind::Ics => "text/calendar; charset=\"UTF-8\"; method=REQUEST",
        }
    }
}

impl FileKind {
    /// Leading and trailing bytes of a file of this kind; random bytes
    /// fill the middle.
    fn magic(self) -> (&'static [u8], &'static [u8]) {
        match self {
            FileKind::Pdf => (
                b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nstream\n",
                b"\nendstream\nendobj\n%%EOF\n",
            ),
            FileKind::Png => (
                b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x04\x00\x00\x00\x03\x00\x08\x06\x00\x00\x00",
                b"\x00\x00\x00\x00IEND\xaeB`\x82",
            ),
            FileKind::Jpg => (
                b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
                b"\xff\xd9",
            ),
            FileKind::Zip => (
                b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
                b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00",
            ),
            FileKind::Txt | FileKind::Ics => (b"", b""),
        }
    }
}

/// The fixed text around a body's words, and whether it all is ASCII
/// (sent as 7bit; otherwise base64).
pub(super) struct Frame {
    pub(super) hello: String,
    pub(super) bye: String,
    ascii: bool,
}

const HTML_HEAD: &str = "<div dir=\"ltr\">";
const HTML_TAIL: &str = "</div>\r\n";
const NEWS_HEAD: &str = "\
    <!DOCTYPE html>\r\n\
    <html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\">\r\n\
    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\r\n\
    <style>body{margin:0;padding:0;background:#f4f4f4}table{border-collapse:collapse}\r\n\
    .card{padding:16px;background:#ffffff;font-family:Helvetica,Arial,sans-serif;font-size:15px;color:#333333}\r\n\
    .btn{display:inline-block;padding:10px 18px;background:#0b6e4f;color:#ffffff;border-radius:4px}</style>\r\n\
    </head><body><table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\"><tr><td class=\"card\">\r\n";
const NEWS_BLOCK: &str = "\
    <table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\"><tr><td class=\"card\">\r\n\
    <img src=\"https://img.cdn.example/p/item.jpg\" width=\"560\" height=\"320\" alt=\"Featured item\" style=\"display:block;border:0\">\r\n\
    <h2 style=\"margin:12px 0 4px 0;font-size:20px\">Featured this week</h2>\r\n\
    <p style=\"margin:0 0 12px 0;line-height:1.5\">Hand-picked for you by our editors. Limited quantities available while stocks last.</p>\r\n\
    <a class=\"btn\" href=\"https://click.mailer.example/track?u=8f2a91&amp;c=item\">Shop now</a>\r\n\
    </td></tr></table>\r\n";
const NEWS_TAIL: &str = "\
    </td></tr></table>\r\n\
    <img src=\"https://click.mailer.example/open.gif\" width=\"1\" height=\"1\" alt=\"\">\r\n\
    </body></html>\r\n";

impl Recipe {
    /// The Message-ID header's value, angle brackets included.
    pub(crate) fn message_id(&self) -> String {
        message_id(self.seed)
    }

    pub(super) fn who(&self, p: Party) -> Cow<'static, Person> {
        match p {
            Party::User => {
                let name = user_name(&self.user);
                Cow::Owned(Person {
                    first: name.split(' ').next().unwrap_or("").to_string(),
                    name,
                    addr: self.user.to_string(),
                    lang: Lang::En,
                    tz_min: 0,
                })
            }
            Party::Contact(i) => Cow::Borrowed(contact(i)),
            Party::Service(i) => {
                let s = &SERVICES[usize::from(i)];
                Cow::Owned(Person {
                    name: s.name.to_string(),
                    first: s.name.to_string(),
                    addr: s.addr.to_string(),
                    lang: s.lang,
                    tz_min: 0,
                })
            }
        }
    }

    pub(super) fn subject(&self) -> String {
        if self.reply {
            format!("Re: {}", self.subject)
        } else {
            self.subject.to_string()
        }
    }

    /// The fixed opening and closing around the body's words.
    pub(super) fn frame(&self) -> Frame {
        let (hello, bye) = self.frame_text();
        let ascii = self.lang == Lang::En && hello.is_ascii() && bye.is_ascii();
        Frame { hello, bye, ascii }
    }

    fn frame_text(&self) -> (String, String) {
        let me = self.who(self.from);
        let them = self.to.first().map(|&p| self.who(p));
        let them_first = them.map(|p| p.first.clone()).unwrap_or_default();
        match self.style {
            Style::Chat => (String::new(), String::new()),
            Style::Newsletter | Style::Notification | Style::Social => {
                let user_first = self.who(Party::User).first.clone();
                let hello = match self.lang {
                    Lang::De => format!("Hallo {user_first},\r\n\r\n"),
                    Lang::Fr => format!("Bonjour {user_first},\r\n\r\n"),
                    Lang::Ja => format!("{user_first}様\r\n\r\n"),
                    _ => format!("Hello {user_first},\r\n\r\n"),
                };
                let domain = me.addr.split('@').nth(1).unwrap_or("");
                let bye = format!(
                    "\r\n--\r\nYou are receiving this email because you signed up at {}.\r\nUnsubscribe: https://{domain}/unsubscribe\r\n",
                    me.name
                );
                (hello, bye)
            }
            Style::Forum => (
                "Hi all,\r\n\r\n".to_string(),
                format!("\r\nCheers,\r\n{}\r\n", me.first),
            ),
            Style::Personal | Style::Work => match self.lang {
                Lang::De => (
                    format!("Hallo {them_first},\r\n\r\n"),
                    format!("\r\nViele Grüße\r\n{}\r\n", me.first),
                ),
                Lang::Fr => (
                    format!("Bonjour {them_first},\r\n\r\n"),
                    format!("\r\nCordialement,\r\n{}\r\n", me.first),
                ),
                Lang::Es => (
                    format!("Hola {them_first}:\r\n\r\n"),
                    format!("\r\nUn abrazo,\r\n{}\r\n", me.first),
                ),
                Lang::Ja => (
                    format!("{them_first}さん\r\n\r\n"),
                    format!("\r\nよろしくお願いします。\r\n{}\r\n", me.first),
                ),
                Lang::En => (
                    format!("Hi {them_first},\r\n\r\n"),
                    format!("\r\nBest,\r\n{}\r\n", me.first),
                ),
            },
        }
    }

    /// Bytes of words between the frame's opening and closing.
    fn word_budget(&self, f: &Frame) -> usize {
        self.text_len as usize - f.hello.len() - f.bye.len()
    }

    /// Writes the text body; stops early once `stop_at` bytes are out.
    fn write_text(&self, f: &Frame, out: &mut Vec<u8>, stop_at: usize) {
        out.extend_from_slice(f.hello.as_bytes());
        write_lines(
            out,
            self.seed,
            words(self.lang),
            self.word_budget(f),
            stop_at,
        );
        if out.len() < stop_at {
            out.extend_from_slice(f.bye.as_bytes());
        }
    }

    fn html_parts(&self) -> (&'static str, &'static str) {
        if self.html_blocks > 0 || self.style == Style::Newsletter {
            (NEWS_HEAD, NEWS_TAIL)
        } else {
            (HTML_HEAD, HTML_TAIL)
        }
    }

    /// The HTML copy: the text with `<br>` before each CRLF, in a frame.
    fn write_html(&self, f: &Frame, out: &mut Vec<u8>) {
        let (head, tail) = self.html_parts();
        out.extend_from_slice(head.as_bytes());
        let mut text = Vec::with_capacity(self.text_len as usize);
        self.write_text(f, &mut text, usize::MAX);
        for line in text.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(&line[..line.len() - 2]);
            out.extend_from_slice(b"<br>\r\n");
        }
        for _ in 0..self.html_blocks {
            out.extend_from_slice(NEWS_BLOCK.as_bytes());
        }
        out.extend_from_slice(tail.as_bytes());
    }

    fn html_len(&self, f: &Frame) -> usize {
        let (head, tail) = self.html_parts();
        let crlfs = f.hello.matches("\r\n").count()
            + count_lines(self.seed, self.word_budget(f))
            + f.bye.matches("\r\n").count();
        head.len()
            + self.text_len as usize
            + 4 * crlfs
            + usize::from(self.html_blocks) * NEWS_BLOCK.len()
            + tail.len()
    }

    fn attachment_bytes(&self, i: usize) -> Vec<u8> {
        let a = &self.attachments[i];
        let size = a.size as usize;
        let seed = self.seed ^ (i as u64 + 1).wrapping_mul(0x51_7CC1_B727_220A);
        let mut rng = Mix::new(seed, 4);
        let mut out = Vec::with_capacity(size);
        let (head, tail) = match a.kind {
            FileKind::Txt => {
                write_lines(&mut out, seed, WORDS_EN, size, usize::MAX);
                return out;
            }
            FileKind::Ics => return self.ics().into_bytes(),
            kind => kind.magic(),
        };
        out.extend_from_slice(head);
        rng.fill(&mut out, size - head.len() - tail.len());
        out.extend_from_slice(tail);
        out
    }

    pub(super) fn ics(&self) -> String {
        let me = self.who(self.from);
        let start = chrono::DateTime::from_timestamp_millis(self.date_ms + 7 * DAY_MS)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%SZ");
        let stamp = chrono::DateTime::from_timestamp_millis(self.date_ms)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%SZ");
        format!(
            "BEGIN:VCALENDAR\r\n\
             PRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n\
             VERSION:2.0\r\n\
             CALSCALE:GREGORIAN\r\n\
             METHOD:REQUEST\r\n\
             BEGIN:VEVENT\r\n\
             DTSTART:{start}\r\n\
             DTSTAMP:{stamp}\r\n\
             ORGANIZER;CN={}:mailto:{}\r\n\
             UID:{:016x}@google.com\r\n\
             SUMMARY:{}\r\n\
             STATUS:CONFIRMED\r\n\
             END:VEVENT\r\n\
             END:VCALENDAR\r\n",
            me.name, me.addr, self.seed, self.subject
        )
    }

    /// The delivery trace Gmail adds to received mail (Received, ARC,
    /// DKIM, ...): a large share of a real message's header bytes.
    fn trace_headers(&self, h: &mut String, sender: &str, date: &str) {
        let mut m = Mix::new(self.seed, 5);
        let domain = sender.split('@').nth(1).unwrap_or("example.com");
        let ip = format!("198.51.100.{}", m.below(250) + 1);
        let t = self.date_ms / 1000;
        let results = format!(
            "mx.google.com;\r\n       dkim=pass header.i=@{domain} header.s=s{} header.b={};\r\n       spf=pass (google.com: domain of {sender} designates {ip} as permitted sender) smtp.mailfrom={sender};\r\n       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from={domain}",
            m.below(9000) + 1000,
            STANDARD.encode(m.bytes(6))
        );
        let _ = write!(
            h,
            "Delivered-To: {user}\r\n\
             Received: by 2002:a05:6a10:{a:x}:b0:{b:x}:{c:x}:{d:x} with SMTP id {e:x}csp{f};\r\n        {date}\r\n\
             X-Received: by 2002:a17:90a:{g:x}:b0:{b:x}:{c:x}:{d:x} with SMTP id {e:x}mr{f}{a};\r\n        {date}\r\n\
             ARC-Seal: i=1; a=rsa-sha256; t={t}; cv=none;\r\n        d=google.com; s=arc-20240605;\r\n        b={seal}\r\n\
             ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=google.com; s=arc-20240605;\r\n        h=to:subject:message-id:date:from:mime-version:dkim-signature;\r\n        bh={bh};\r\n        b={ams}\r\n\
             ARC-Authentication-Results: i=1; {results}\r\n\
             Return-Path: <{sender}>\r\n\
             Received: from mail.{domain} (mail.{domain}. [{ip}])\r\n        by mx.google.com with ESMTPS id {e:x}{a:x}.{g}.2025.{f}\r\n        for <{user}>\r\n        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);\r\n        {date}\r\n\
             Received-SPF: pass (google.com: domain of {sender} designates {ip} as permitted sender) client-ip={ip};\r\n\
             Authentication-Results: {results}\r\n\
             DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n        d={domain}; s=s{f}; t={t};\r\n        h=to:subject:message-id:date:from:mime-version:from:to:cc:subject\r\n         :date:message-id:reply-to;\r\n        bh={bh};\r\n        b={dkim}\r\n\
             X-Google-Smtp-Source: {src}\r\n",
            user = self.user,
            a = m.below(0xffff),
            b = m.below(0xfff),
            c = m.below(0xffff),
            d = m.below(0xffff),
            e = m.below(0xffff),
            f = m.below(9_999_999),
            g = m.below(0xffff),
            seal = sig(&mut m, 256),
            bh = STANDARD.encode(m.bytes(32)),
            ams = sig(&mut m, 256),
            dkim = sig(&mut m, 256),
            src = STANDARD.encode(m.bytes(66)),
        );
    }

    fn headers(&self) -> String {
        let mut h = String::with_capacity(4096);
        let date = rfc5322_date(self.date_ms, self.tz_min);
        let from = self.who(self.from);
        if self.from != Party::User {
            self.trace_headers(&mut h, &from.addr, &date);
        }
        h.push_str("MIME-Version: 1.0\r\n");
        let _ = write!(h, "Date: {date}\r\n");
        let _ = write!(h, "Message-ID: {}\r\n", message_id(self.seed));
        if let Some(&parent) = self.refs.last() {
            let _ = write!(h, "In-Reply-To: {}\r\n", message_id(parent));
            let ids: Vec<String> = self.refs.iter().map(|&r| message_id(r)).collect();
            folded_list(&mut h, "References", &ids, "");
        }
        h.push_str("Subject: ");
        h.push_str(&header_text(&self.subject()));
        h.push_str("\r\n");
        let _ = write!(h, "From: {} <{}>\r\n", phrase(&from.name), from.addr);
        for (name, list) in [("To", &self.to), ("Cc", &self.cc)] {
            if list.is_empty() {
                continue;
            }
            let items: Vec<String> = list
                .iter()
                .map(|&p| {
                    let w = self.who(p);
                    format!("{} <{}>", phrase(&w.name), w.addr)
                })
                .collect();
            folded_list(&mut h, name, &items, ",");
        }
        // Mail from a service or a list carries list headers.
        let list = match (self.from, self.to.first()) {
            (Party::Service(i), _) => Some(&SERVICES[usize::from(i)]),
            (_, Some(&Party::Service(i))) => Some(&SERVICES[usize::from(i)]),
            _ => None,
        };
        if let Some(s) = list {
            let domain = s.addr.split('@').nth(1).unwrap_or("");
            if s.style == Style::Forum {
                let _ = write!(h, "List-Id: <{}>\r\n", s.addr.replacen('@', ".", 1));
            }
            let _ = write!(
                h,
                "List-Unsubscribe: <mailto:unsubscribe@{domain}?subject=unsubscribe-{:x}>,\r\n <https://{domain}/u/{:016x}>\r\n",
                self.seed >> 40,
                self.seed
            );
            if s.style == Style::Newsletter {
                h.push_str("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
            }
        }
        h
    }

    fn text_headers(f: &Frame, subtype: &str) -> String {
        if f.ascii {
            format!("Content-Type: text/{subtype}; charset=\"UTF-8\"\r\n")
        } else {
            format!("Content-Type: text/{subtype}; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: base64\r\n")
        }
    }

    fn put_text<S: ByteSink>(&self, s: &mut S, f: &Frame) {
        s.content(!f.ascii, self.text_len as usize, &|o| {
            self.write_text(f, o, usize::MAX)
        });
    }

    fn put_alternative<S: ByteSink>(&self, s: &mut S, f: &Frame, b: &str) {
        s.put(format!("--{b}\r\n{}\r\n", Self::text_headers(f, "plain")).as_bytes());
        self.put_text(s, f);
        s.put(format!("\r\n--{b}\r\n{}\r\n", Self::text_headers(f, "html")).as_bytes());
        s.content(!f.ascii, self.html_len(f), &|o| self.write_html(f, o));
        s.put(format!("\r\n--{b}--\r\n").as_bytes());
    }

    fn emit<S: ByteSink>(&self, s: &mut S, headers_only: bool) {
        let f = &self.frame();
        let mut h = self.headers();
        let outer = boundary(self.seed, 0);
        let inner = boundary(self.seed, 1);
        if !self.attachments.is_empty() {
            let _ = write!(h, "Content-Type: multipart/mixed; boundary=\"{outer}\"\r\n");
        } else if self.html {
            let _ = write!(
                h,
                "Content-Type: multipart/alternative; boundary=\"{outer}\"\r\n"
            );
        } else {
            h.push_str(&Self::text_headers(f, "plain"));
        }
        h.push_str("\r\n");
        s.put(h.as_bytes());
        if headers_only {
            return;
        }
        if self.attachments.is_empty() {
            if self.html {
                self.put_alternative(s, f, &outer);
            } else {
                self.put_text(s, f);
                if !f.ascii {
                    s.put(b"\r\n");
                }
            }
            return;
        }
        s.put(format!("--{outer}\r\n").as_bytes());
        if self.html {
            s.put(
                format!("Content-Type: multipart/alternative; boundary=\"{inner}\"\r\n\r\n")
                    .as_bytes(),
            );
            self.put_alternative(s, f, &inner);
        } else {
            s.put(format!("{}\r\n", Self::text_headers(f, "plain")).as_bytes());
            self.put_text(s, f);
        }
        for (i, a) in self.attachments.iter().enumerate() {
            let name = if a.name.is_ascii() {
                a.name.to_string()
            } else {
                encoded_words(&a.name).replace("\r\n ", "")
            };
            let id = format!("f_{:x}", Mix::new(self.seed, 20 + i as u64).next() >> 24);
            s.put(
                format!(
                    "\r\n--{outer}\r\nContent-Type: {}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <{id}>\r\nX-Attachment-Id: {id}\r\n\r\n",
                    a.kind.content_type()
                )
                .as_bytes(),
            );
            s.content(true, a.size as usize, &|o| {
                o.extend_from_slice(&self.attachment_bytes(i))
            });
        }
        s.put(format!("\r\n--{outer}--\r\n").as_bytes());
    }

    /// The whole RFC 5322 message, CRLF line endings.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut n = Count(0);
        self.emit(&mut n, false);
        let mut out = Vec::with_capacity(n.0);
        self.emit(&mut out, false);
        out
    }

    /// The header section, ending with the empty line; `render()` starts
    /// with exactly these bytes.
    pub(crate) fn render_headers(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.emit(&mut out, true);
        out
    }

    /// Moves the message to another date (Date header and trace headers).
    /// The rendered length may change: recompute it with `size()`.
    pub(crate) fn set_date(&mut self, date_ms: i64) {
        self.date_ms = date_ms - date_ms.rem_euclid(1000);
    }

    /// Length of `render()`, computed without producing bodies.
    pub(crate) fn size(&self) -> usize {
        let mut n = Count(0);
        self.emit(&mut n, false);
        n.0
    }

    /// The decoded text/plain body, as a MIME parser extracts it.
    pub(crate) fn body_text(&self) -> String {
        let mut out = Vec::with_capacity(self.text_len as usize);
        self.write_text(&self.frame(), &mut out, usize::MAX);
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Decoded content of attachment part `part_id` ("1", "2", ...: parts
    /// after the body in multipart/mixed), without rendering the message.
    pub(crate) fn attachment_content(&self, part_id: &str) -> Option<Vec<u8>> {
        let i: usize = part_id.parse().ok()?;
        if i == 0 || i > self.attachments.len() || part_id.starts_with('0') {
            return None;
        }
        Some(self.attachment_bytes(i - 1))
    }

    pub(super) fn snippet(&self) -> String {
        let mut out = Vec::with_capacity(1024);
        // Enough bytes for 200 characters, CJK included.
        let stop = if self.lang == Lang::Ja { 640 } else { 320 };
        self.write_text(&self.frame(), &mut out, stop);
        snippet(&String::from_utf8_lossy(&out))
    }
}
