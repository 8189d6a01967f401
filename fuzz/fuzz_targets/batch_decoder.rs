//! The client's streaming batch decoder: any bytes, split anywhere, never
//! panic, and the same parts (and malformed-part reports) however the bytes
//! arrive.
#![no_main]
use gmailscript::gmail::batch::{BatchError, Decoder, InnerResponse};
use libfuzzer_sys::fuzz_target;

/// Drain every complete part; a malformed one is reported and skipped.
fn drain(d: &mut Decoder, out: &mut Vec<Result<InnerResponse, BatchError>>) {
    loop {
        match d.next_part() {
            Ok(Some(p)) => out.push(Ok(p)),
            Ok(None) => return,
            Err(e @ BatchError::Malformed { .. }) => out.push(Err(e)),
            Err(e) => {
                out.push(Err(e));
                return;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (split, body) = match data.split_first() {
        Some((s, rest)) => (*s as usize, rest),
        None => return,
    };
    let mut whole = Decoder::new("multipart/mixed; boundary=batch_x").unwrap();
    let mut a = Vec::new();
    whole.push(body);
    drain(&mut whole, &mut a);
    let end_a = whole.finish();
    let cut = split.min(body.len());
    let mut pieces = Decoder::new("multipart/mixed; boundary=batch_x").unwrap();
    let mut b = Vec::new();
    for chunk in [&body[..cut], &body[cut..]] {
        pieces.push(chunk);
        drain(&mut pieces, &mut b);
    }
    let end_b = pieces.finish();
    assert_eq!(a, b);
    assert_eq!(end_a.is_ok(), end_b.is_ok());
});
