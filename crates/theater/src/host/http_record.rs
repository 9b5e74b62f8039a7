//! How HTTP traffic is recorded in chains: secret headers hidden, large
//! bodies reduced to their size and digest. Shared by the HTTP client and
//! the HTTP server's exports.

use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Headers whose values never reach the chain.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Longest body (as recorded JSON text) kept whole in a `call` event
/// unless the capability is configured otherwise; a longer one is
/// recorded by size and SHA-256. Guards chains against growing with every
/// upload.
pub const RECORDED_BODY_CHARS: usize = 1024;

pub fn is_secret(header: &str) -> bool {
    SECRET_HEADERS.contains(&header.to_ascii_lowercase().as_str())
}

/// A [`Redactor`](crate::wasm::Redactor) for exports that take or return
/// HTTP requests and responses: every `headers` list and `body` found in the
/// value is rewritten, bodies longer than [`RECORDED_BODY_CHARS`] reduced.
pub fn redact_http(value: &RawValue) -> Box<RawValue> {
    redact_raw(value, RECORDED_BODY_CHARS)
}

/// [`redact_http`] keeping bodies of at most `cap` characters whole.
pub fn redact_raw(value: &RawValue, cap: usize) -> Box<RawValue> {
    if !may_change(value, cap) {
        return value.to_owned();
    }
    let Ok(mut value) = serde_json::from_str::<Value>(value.get()) else {
        return to_raw_value(&"<unreadable>").expect("a string serializes");
    };
    redact(&mut value, cap);
    to_raw_value(&value).expect("a JSON value serializes")
}

/// Whether [`redact`] could change `value`: most requests and answers are
/// short and carry no secret, and are recorded as they are, without being
/// parsed. A value no longer than `cap` holds no body longer than `cap`;
/// one whose text never names a secret header (nor escapes a character,
/// which could spell one) holds no secret.
fn may_change(value: &RawValue, cap: usize) -> bool {
    let text = value.get().as_bytes();
    let names = |word: &str| {
        text.windows(word.len())
            .any(|window| window.eq_ignore_ascii_case(word.as_bytes()))
    };
    // Every name in SECRET_HEADERS holds one of these words.
    text.len() > cap || text.contains(&b'\\') || names("authorization") || names("cookie")
}

/// Rewrites `value` in place as the chain records it: secret header values
/// hidden, bodies longer than `cap` characters (as JSON text) reduced to
/// their size and SHA-256.
pub fn redact(value: &mut Value, cap: usize) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match key.as_str() {
                    "headers" => hide_secrets(field),
                    "body" => shorten(field, cap),
                    _ => redact(field, cap),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact(item, cap)),
        _ => {}
    }
}

fn hide_secrets(headers: &mut Value) {
    for pair in headers.as_array_mut().into_iter().flatten() {
        if let Some([name, value]) = pair.as_array_mut().map(Vec::as_mut_slice)
            && name.as_str().is_some_and(is_secret)
        {
            *value = json!("<redacted>");
        }
    }
}

fn shorten(body: &mut Value, cap: usize) {
    if body.is_null() {
        return;
    }
    let text = body.to_string();
    if text.len() > cap {
        *body =
            json!({ "size": text.len(), "sha256": hex::encode(Sha256::digest(text.as_bytes())) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_and_large_bodies_summarized() {
        let big = "x".repeat(RECORDED_BODY_CHARS + 1);
        let params = json!([7, {"method": "GET", "uri": "/", "headers": [["Authorization", "Bearer s3cret"], ["accept", "*/*"]], "body": big}]);
        let recorded = redact_http(&to_raw_value(&params).unwrap());
        let recorded: Value = serde_json::from_str(recorded.get()).unwrap();
        assert_eq!(
            recorded[1]["headers"],
            json!([["Authorization", "<redacted>"], ["accept", "*/*"]])
        );
        assert_eq!(recorded[1]["body"]["size"], RECORDED_BODY_CHARS + 3);
        assert_eq!(recorded[0], 7);
        let small = json!([{"status": 200, "headers": [], "body": "ok"}]);
        let same = redact_http(&to_raw_value(&small).unwrap());
        assert_eq!(serde_json::from_str::<Value>(same.get()).unwrap(), small);
    }

    #[test]
    fn a_secret_is_hidden_however_its_name_is_written() {
        let escaped = r#"[{"headers": [["\u0043ookie", "id=1"]], "body": null}]"#;
        let cases = [
            r#"[{"headers": [["COOKIE", "id=1"]], "body": null}]"#,
            r#"[{"headers": [["Proxy-Authorization", "x"]], "body": null}]"#,
            escaped,
        ];
        for case in cases {
            let raw = RawValue::from_string(case.to_owned()).unwrap();
            let recorded: Value = serde_json::from_str(redact_raw(&raw, 1024).get()).unwrap();
            assert_eq!(recorded[0]["headers"][0][1], "<redacted>", "{case}");
        }
    }

    #[test]
    fn the_cap_decides_which_bodies_stay_whole() {
        let mut request = json!({"method": "POST", "headers": [], "body": "hello world"});
        redact(&mut request, 13);
        assert_eq!(request["body"], "hello world");
        redact(&mut request, 12);
        assert_eq!(request["body"]["size"], 13);
        let mut empty = json!({"headers": [], "body": null});
        redact(&mut empty, 0);
        assert_eq!(empty["body"], Value::Null);
    }
}
