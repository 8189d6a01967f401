//! The simulator's search query parser and matcher: any query string.
#![no_main]
use gmailscript::sim::{generate, search};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn mailbox() -> &'static gmailscript::sim::mailbox::Mailbox {
    static MB: OnceLock<gmailscript::sim::mailbox::Mailbox> = OnceLock::new();
    MB.get_or_init(|| generate::generate(3, 30, "me@example.com", 1_700_000_000_000))
}

fuzz_target!(|data: &[u8]| {
    let q = String::from_utf8_lossy(data);
    if let Ok(query) = search::parse(&q) {
        let mb = mailbox();
        for m in mb.messages.values() {
            let _ = query.matches(m, mb, 1_700_000_000_000);
        }
        let _ = query.mentions_spam_or_trash();
    }
});
