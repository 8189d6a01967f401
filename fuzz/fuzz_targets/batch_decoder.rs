//! The client's streaming batch decoder: any bytes, split anywhere, never
//! panic, and never deliver a part twice.
#![no_main]
use gmailscript::gmail::batch::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (split, body) = match data.split_first() {
        Some((s, rest)) => (*s as usize, rest),
        None => return,
    };
    let mut whole = Decoder::new("multipart/mixed; boundary=batch_x").unwrap();
    whole.push(body);
    let mut a = Vec::new();
    while let Ok(Some(p)) = whole.next_part() {
        a.push(p);
    }
    let _ = whole.finish();
    // The same bytes in two pieces give the same parts.
    let cut = split.min(body.len());
    let mut pieces = Decoder::new("multipart/mixed; boundary=batch_x").unwrap();
    let mut b = Vec::new();
    for chunk in [&body[..cut], &body[cut..]] {
        pieces.push(chunk);
        while let Ok(Some(p)) = pieces.next_part() {
            b.push(p);
        }
    }
    let _ = pieces.finish();
    assert_eq!(a, b);
});
