use super::*;
use crate::config::Secret;

/// `secret-secret-secret-32`, the secret of the captured request below.
const SECRET_B64: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzI=";

/// `kdig -y hmac-sha256:xfr-key:c2VjcmV0LXNlY3JldC1zZWNyZXQtMzI= example.test AXFR`
/// (Knot DNS 3.2.6) as it went on the wire.
const KDIG_AXFR: &str = "de5601200001000000000001076578616d706c6504746573740000fc0001077866722d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b0ed962012c00200f8d49269a60d260382febee98acaefd16dced0095f5c8fccbe16ab97ecc3d72de5600000000";

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn key(name: &str, secret: &[u8]) -> TsigKey {
    TsigKey {
        name: name.into(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret: Secret::new(secret.to_vec()),
    }
}

fn kdig_key() -> TsigKey {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(SECRET_B64)
        .unwrap();
    key("xfr-key.", &secret)
}

#[test]
fn verifies_a_request_signed_by_kdig() {
    let message = unhex(KDIG_AXFR);
    let signed = split(&message).unwrap().expect("signed");
    assert_eq!(signed.tsig.key_name, b"\x07xfr-key\x00");
    assert_eq!(signed.tsig.fudge, 300);
    assert_eq!(signed.tsig.mac.len(), 32);
    // ARCOUNT back to 0 in the covered message.
    assert_eq!(&signed.unsigned[10..12], &[0, 0]);
    let keys = [key("other.", b"0123456789abcdef"), kdig_key()];
    let time = signed.tsig.time;
    assert_eq!(
        verify(&signed, &keys, time, WINDOW).unwrap().name,
        "xfr-key."
    );
    // Within the fudge, and outside it.
    assert!(verify(&signed, &keys, time + 300, WINDOW).is_ok());
    assert_eq!(
        verify(&signed, &keys, time + 301, WINDOW).unwrap_err().0,
        Rejection::BadTime
    );
    // Another secret: BADSIG; another name: BADKEY.
    let wrong = [key("xfr-key.", b"not-the-secret-at-all")];
    assert_eq!(
        verify(&signed, &wrong, time, WINDOW).unwrap_err().0,
        Rejection::BadSig
    );
    let unknown = [key("nobody.", b"0123456789abcdef")];
    assert_eq!(
        verify(&signed, &unknown, time, WINDOW).unwrap_err().0,
        Rejection::BadKey
    );
}

#[test]
fn a_flipped_bit_breaks_the_mac() {
    let mut message = unhex(KDIG_AXFR);
    message[3] ^= 0x10; // a header flag
    let signed = split(&message).unwrap().unwrap();
    let time = signed.tsig.time;
    assert_eq!(
        verify(&signed, &[kdig_key()], time, WINDOW).unwrap_err().0,
        Rejection::BadSig
    );
}

#[test]
fn unsigned_and_malformed_messages() {
    let mut plain = unhex(KDIG_AXFR);
    // Cut the TSIG off and set ARCOUNT to 0.
    plain.truncate(12 + 18);
    plain[11] = 0;
    assert!(split(&plain).unwrap().is_none());
    let mut short = unhex(KDIG_AXFR);
    short.pop();
    assert!(split(&short).is_err());
}

#[test]
fn requests_we_sign_verify() {
    let k = kdig_key();
    let mut message = unhex(KDIG_AXFR);
    message.truncate(12 + 18);
    message[11] = 0;
    let request_mac = sign_request(&mut message, &k, 1_800_000_000);
    let signed = split(&message).unwrap().unwrap();
    let key = verify(&signed, std::slice::from_ref(&k), 1_800_000_000, WINDOW).unwrap();
    // The response, signed as a secondary signs its NOTIFY answer, verifies; a
    // forged, unsigned or stale one does not.
    let mut response = signed.unsigned.clone();
    response[2] |= 0x80;
    let tsig = ResponseSigner::new(key.clone(), &signed.tsig).sign(&response, 1_800_000_001);
    let mut good = response.clone();
    tsig.append_to(&mut good);
    assert_eq!(
        verify_response(&good, &k, &request_mac, 1_800_000_001, WINDOW),
        Ok(())
    );
    assert_eq!(
        verify_response(&good, &k, &request_mac, 1_800_000_900, WINDOW),
        Err(Rejection::BadTime)
    );
    let mut forged = good.clone();
    forged[3] ^= 0x01; // the rcode changed on the way
    assert_eq!(
        verify_response(&forged, &k, &request_mac, 1_800_000_001, WINDOW),
        Err(Rejection::BadSig)
    );
    assert_eq!(
        verify_response(&response, &k, &request_mac, 1_800_000_001, WINDOW),
        Err(Rejection::BadSig)
    );
    let other_request = vec![0u8; 32];
    assert_eq!(
        verify_response(&good, &k, &other_request, 1_800_000_001, WINDOW),
        Err(Rejection::BadSig)
    );
}

/// Verifies a chain of signed responses the way a client does (RFC 8945 §5.3.1),
/// written separately from the signer.
fn verify_chain(request_mac: &[u8], responses: &[Vec<u8>], k: &TsigKey) -> bool {
    let mut prior = request_mac.to_vec();
    for (i, response) in responses.iter().enumerate() {
        let Ok(Some(signed)) = split(response) else {
            return false;
        };
        let t = &signed.tsig;
        let mut data = Vec::new();
        data.extend_from_slice(&(prior.len() as u16).to_be_bytes());
        data.extend_from_slice(&prior);
        data.extend_from_slice(&signed.unsigned);
        if i == 0 {
            data.extend_from_slice(&t.key_name);
            data.extend_from_slice(&[0, 255, 0, 0, 0, 0]);
            data.extend_from_slice(&t.algorithm);
            data.extend_from_slice(&t.time.to_be_bytes()[2..]);
            data.extend_from_slice(&t.fudge.to_be_bytes());
            data.extend_from_slice(&t.error.to_be_bytes());
            data.extend_from_slice(&(t.other.len() as u16).to_be_bytes());
            data.extend_from_slice(&t.other);
        } else {
            data.extend_from_slice(&t.time.to_be_bytes()[2..]);
            data.extend_from_slice(&t.fudge.to_be_bytes());
        }
        if mac(k, &data) != t.mac {
            return false;
        }
        prior = t.mac.clone();
    }
    true
}

#[test]
fn multi_message_responses_chain() {
    let k = kdig_key();
    let request = split(&unhex(KDIG_AXFR)).unwrap().unwrap();
    let mut signer = ResponseSigner::new(k.clone(), &request.tsig);
    let mut responses = Vec::new();
    for i in 0..3u8 {
        let mut message = vec![0xde, 0x56, 0x84, i, 0, 0, 0, 0, 0, 0, 0, 0];
        let tsig = signer.sign(&message, 1_800_000_000 + u64::from(i));
        tsig.append_to(&mut message);
        responses.push(message);
    }
    assert!(verify_chain(&request.tsig.mac, &responses, &k));
    // Out of order or from another request: no longer verifies.
    responses.swap(1, 2);
    assert!(!verify_chain(&request.tsig.mac, &responses, &k));
    responses.swap(1, 2);
    assert!(!verify_chain(&[0; 32], &responses, &k));
}

#[test]
fn hmac_sha256_rfc4231_case_2() {
    let k = key("k.", b"Jefe");
    assert_eq!(
        crate::dns::xfr::content::hex(&mac(&k, b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// RFC 8945 §5.2.3 bounds a request's time by its own Fudge; ours also by our window:
/// a request signed 3 h ago with Fudge 65535 (±18 h) is BADTIME, one 300 s old is
/// on time, and a Fudge smaller than the window still counts.
#[test]
fn the_window_is_the_smaller_of_the_fudge_and_ours() {
    let k = kdig_key();
    let now = 1_800_000_000;
    // The kdig AXFR's header and question, unsigned.
    let mut question = unhex(KDIG_AXFR);
    question.truncate(12 + 18);
    question[11] = 0;
    let signed_at = |time: u64, fudge: u16| {
        let mut message = question.clone();
        let mac = sign_request_with(&mut message, &k, time, fudge);
        (message, mac)
    };
    let check = |time: u64, fudge: u16, window: u64| {
        let (message, _) = signed_at(time, fudge);
        let signed = split(&message).unwrap().expect("signed");
        assert_eq!(signed.tsig.fudge, fudge);
        verify(&signed, std::slice::from_ref(&k), now, window)
            .map(|_| ())
            .map_err(|(rejection, _)| rejection)
    };
    let three_hours_ago = now - 3 * 3600;
    assert_eq!(
        check(three_hours_ago, u16::MAX, WINDOW),
        Err(Rejection::BadTime)
    );
    // By its own Fudge alone (what BIND and Knot check) it would pass.
    assert!(on_time(three_hours_ago, u16::MAX, now, u64::from(u16::MAX)));
    for offset in [0, 1, 299, 300] {
        assert_eq!(check(now - offset, u16::MAX, WINDOW), Ok(()), "-{offset}");
        assert_eq!(check(now + offset, u16::MAX, WINDOW), Ok(()), "+{offset}");
    }
    assert_eq!(check(now - 301, u16::MAX, WINDOW), Err(Rejection::BadTime));
    assert_eq!(check(now + 301, u16::MAX, WINDOW), Err(Rejection::BadTime));
    // A Fudge smaller than the window bounds it; a window smaller than the Fudge too.
    assert_eq!(check(now - 10, 10, WINDOW), Ok(()));
    assert_eq!(check(now - 11, 10, WINDOW), Err(Rejection::BadTime));
    assert_eq!(check(now - 60, 300, 60), Ok(()));
    assert_eq!(check(now - 61, 300, 60), Err(Rejection::BadTime));
    // The answers to our NOTIFYs (signed with Fudge 300) are held to the same bound.
    let (request, request_mac) = signed_at(now, FUDGE);
    let signed = split(&request).unwrap().unwrap();
    let answer = |time: u64| {
        let mut response = signed.unsigned.clone();
        response[2] |= 0x80;
        let tsig = ResponseSigner::new(k.clone(), &signed.tsig).sign(&response, time);
        tsig.append_to(&mut response);
        response
    };
    assert_eq!(
        verify_response(&answer(now - 60), &k, &request_mac, now, 60),
        Ok(())
    );
    assert_eq!(
        verify_response(&answer(now - 61), &k, &request_mac, now, 60),
        Err(Rejection::BadTime)
    );
}
