//! The simulator's batch request parser: any body and content type.
#![no_main]
use gmailscript::sim::batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&data[..i]).into_owned(), &data[i + 1..]),
        None => ("multipart/mixed; boundary=b".to_string(), data),
    };
    if let Ok(b) = batch::boundary(&ct) {
        if let Ok(parts) = batch::parse(body, &b, 100) {
            assert!(parts.len() <= 100);
        }
    }
    let _ = batch::parse(body, "b", 100);
});
