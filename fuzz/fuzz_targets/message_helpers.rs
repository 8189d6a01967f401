//! The message helpers: any JSON, and any RFC 822 bytes as a raw message.
#![no_main]
use base64::Engine as _;
use gmailscript::gmail::message::Message;
use libfuzzer_sys::fuzz_target;

fn exercise(m: &Message) {
    let _ = m.header("Subject");
    let _ = m.header("From");
    let _ = m.headers();
    let _ = m.text();
    let _ = m.raw();
    let _ = m.attachments();
    let _ = m.date_seconds();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::from_json(data) {
        exercise(&m);
    }
    let raw = base64::engine::general_purpose::URL_SAFE.encode(data);
    let json = format!(r#"{{"id":"a1","threadId":"a1","raw":"{raw}"}}"#);
    let m = Message::from_json(json.as_bytes()).expect("a raw message always parses");
    exercise(&m);
});
