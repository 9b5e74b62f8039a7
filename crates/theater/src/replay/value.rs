//! Recorded JSON back into component values. Chains hold what serde made of
//! the Rust types the host used; the WIT type of the parameter or result
//! being fed says how to read it back.

use serde::Deserialize;
use serde_json::Value;
use wasmtime::component::{Type, Val};

use crate::chain::record::{BASE64_KEY, decode_base64};
use crate::wasm::StateBytes;

/// How a JSON string stands for `list<u8>`: messages are recorded as their
/// text, random bytes as hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BytesText {
    Utf8,
    Hex,
}

/// Reads `json` as a value of type `ty`.
pub fn to_val(json: &Value, ty: &Type, text: BytesText) -> Result<Val, String> {
    Ok(match ty {
        Type::Bool => Val::Bool(scalar(json, "bool")?),
        Type::S8 => Val::S8(scalar(json, "s8")?),
        Type::U8 => Val::U8(scalar(json, "u8")?),
        Type::S16 => Val::S16(scalar(json, "s16")?),
        Type::U16 => Val::U16(scalar(json, "u16")?),
        Type::S32 => Val::S32(scalar(json, "s32")?),
        Type::U32 => Val::U32(scalar(json, "u32")?),
        Type::S64 => Val::S64(scalar(json, "s64")?),
        Type::U64 => Val::U64(scalar(json, "u64")?),
        Type::Float32 => Val::Float32(scalar(json, "f32")?),
        Type::Float64 => Val::Float64(scalar(json, "f64")?),
        Type::Char => Val::Char(scalar(json, "char")?),
        Type::String => Val::String(scalar(json, "string")?),
        Type::List(list) if list.ty() == Type::U8 => {
            Val::List(bytes(json, text)?.into_iter().map(Val::U8).collect())
        }
        Type::List(list) => Val::List(items(json, &list.ty(), text)?),
        Type::FixedLengthList(list) => {
            let items = items(json, &list.ty(), text)?;
            if items.len() != list.len() as usize {
                return Err(format!(
                    "expected {} items, found {}",
                    list.len(),
                    items.len()
                ));
            }
            Val::FixedLengthList(items)
        }
        Type::Record(record) => {
            let Value::Object(fields) = json else {
                return Err(format!("expected a record, found {}", short(json)));
            };
            let mut vals = Vec::new();
            for field in record.fields() {
                // serde writes Rust field names (snake_case); WIT's are kebab-case.
                let value = fields
                    .get(field.name)
                    .or_else(|| fields.get(&field.name.replace('-', "_")));
                let val = match (value, &field.ty) {
                    (Some(value), ty) => to_val(value, ty, text),
                    // `skip_serializing_if` may leave out a field that is none.
                    (None, Type::Option(_)) => Ok(Val::Option(None)),
                    (None, _) => Err("it is missing".to_owned()),
                };
                vals.push((
                    field.name.to_owned(),
                    val.map_err(|e| format!("field `{}`: {e}", field.name))?,
                ));
            }
            Val::Record(vals)
        }
        Type::Tuple(tuple) => {
            let types: Vec<Type> = tuple.types().collect();
            match json {
                Value::Array(values) if values.len() == types.len() => Val::Tuple(
                    values
                        .iter()
                        .zip(&types)
                        .map(|(value, ty)| to_val(value, ty, text))
                        .collect::<Result<_, _>>()?,
                ),
                Value::Null if types.is_empty() => Val::Tuple(Vec::new()),
                // A one-element tuple may be recorded as its element (an
                // export whose result shape changed, like `handle-channel-open`).
                _ if types.len() == 1 => Val::Tuple(vec![to_val(json, &types[0], text)?]),
                _ => {
                    return Err(format!(
                        "expected a tuple of {}, found {}",
                        types.len(),
                        short(json)
                    ));
                }
            }
        }
        Type::Variant(variant) => {
            let (name, payload) = tagged(json)?;
            let case = variant
                .cases()
                .find(|case| same_name(case.name, name))
                .ok_or_else(|| format!("no case `{name}` in this variant"))?;
            let payload = match (case.ty, payload) {
                (Some(ty), Some(payload)) => Some(Box::new(to_val(payload, &ty, text)?)),
                (None, None | Some(Value::Null)) => None,
                (Some(_), None) => return Err(format!("case `{name}` needs a payload")),
                (None, Some(_)) => return Err(format!("case `{name}` takes no payload")),
            };
            Val::Variant(case.name.to_owned(), payload)
        }
        Type::Enum(cases) => {
            let name = json
                .as_str()
                .ok_or_else(|| format!("expected an enum case, found {}", short(json)))?;
            let case = cases
                .names()
                .find(|case| same_name(case, name))
                .ok_or_else(|| format!("no case `{name}` in this enum"))?;
            Val::Enum(case.to_owned())
        }
        Type::Option(option) => match json {
            Value::Null => Val::Option(None),
            value => Val::Option(Some(Box::new(to_val(value, &option.ty(), text)?))),
        },
        Type::Result(result) => {
            let (name, payload) = tagged(json)?;
            let payload = payload.unwrap_or(&Value::Null);
            let read = |ty: Option<Type>| match ty {
                Some(ty) => to_val(payload, &ty, text).map(|val| Some(Box::new(val))),
                None => Ok(None),
            };
            if same_name(name, "ok") {
                Val::Result(Ok(read(result.ok())?))
            } else if same_name(name, "err") {
                Val::Result(Err(read(result.err())?))
            } else {
                return Err(format!("expected `ok` or `err`, found `{name}`"));
            }
        }
        Type::Flags(flags) => {
            let names: Vec<&str> = Vec::<&str>::deserialize(json)
                .map_err(|_| format!("expected a list of flag names, found {}", short(json)))?;
            let mut set = Vec::new();
            for name in names {
                let flag = flags
                    .names()
                    .find(|flag| same_name(flag, name))
                    .ok_or_else(|| format!("no flag `{name}`"))?;
                set.push(flag.to_owned());
            }
            Val::Flags(set)
        }
        Type::Own(_) | Type::Borrow(_) => return Err("a resource cannot be replayed".to_owned()),
        other => return Err(format!("values of type {other:?} cannot be replayed")),
    })
}

/// Why a recorded value is not the value itself, when the runtime
/// rewrote it for the chain (`host/http_record.rs`, `host/http_client.rs`).
pub fn redaction(json: &Value) -> Option<&'static str> {
    match json {
        Value::String(text) if text == "<redacted>" => {
            Some("a secret header's value was recorded as <redacted>")
        }
        Value::Object(fields)
            if fields.len() == 2
                && fields.contains_key("size")
                && fields.contains_key("sha256") =>
        {
            Some("a body was recorded by its size and digest")
        }
        Value::Object(fields) => fields.values().find_map(redaction),
        Value::Array(values) => values.iter().find_map(redaction),
        _ => None,
    }
}

/// `option<list<u8>>`, the state every export takes.
pub fn state_to_val(state: &StateBytes) -> Val {
    Val::Option(
        state
            .as_ref()
            .map(|bytes| Box::new(Val::List(bytes.iter().copied().map(Val::U8).collect()))),
    )
}

/// The state an export returned.
pub fn state_from_val(val: &Val) -> Result<StateBytes, String> {
    let bytes = match val {
        Val::Option(None) => return Ok(None),
        Val::Option(Some(list)) => match list.as_ref() {
            Val::List(items) => items,
            _ => return Err("the state is not a list<u8>".to_owned()),
        },
        _ => return Err("the state is not an option<list<u8>>".to_owned()),
    };
    bytes
        .iter()
        .map(|byte| match byte {
            Val::U8(byte) => Ok(*byte),
            _ => Err("the state is not a list<u8>".to_owned()),
        })
        .collect::<Result<Vec<u8>, String>>()
        .map(Some)
}

fn scalar<'a, T: Deserialize<'a>>(json: &'a Value, wit: &str) -> Result<T, String> {
    T::deserialize(json).map_err(|_| format!("expected {wit}, found {}", short(json)))
}

fn items(json: &Value, ty: &Type, text: BytesText) -> Result<Vec<Val>, String> {
    let Value::Array(values) = json else {
        return Err(format!("expected a list, found {}", short(json)));
    };
    values.iter().map(|value| to_val(value, ty, text)).collect()
}

/// Bytes as the handlers record them: `{"base64": ...}`, an array of
/// numbers (chains recorded before base64), a string (text or hex, as
/// `text` says) or `{"hex": ...}`.
fn bytes(json: &Value, text: BytesText) -> Result<Vec<u8>, String> {
    let hex = |digits: &str| hex::decode(digits).map_err(|e| format!("bad hex bytes: {e}"));
    match json {
        Value::String(s) if text == BytesText::Hex => hex(s),
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(fields) if fields.len() == 1 && fields.contains_key(BASE64_KEY) => {
            decode_base64(fields[BASE64_KEY].as_str().unwrap_or_default())
                .map_err(|e| format!("bad base64 bytes: {e}"))
        }
        Value::Object(fields) if fields.len() == 1 && fields.contains_key("hex") => {
            hex(fields["hex"].as_str().unwrap_or_default())
        }
        _ => scalar(json, "bytes"),
    }
}

/// A variant or result as serde writes it: `"case"` or `{"case": payload}`.
fn tagged(json: &Value) -> Result<(&str, Option<&Value>), String> {
    match json {
        Value::String(name) => Ok((name, None)),
        Value::Object(fields) if fields.len() == 1 => {
            let (name, payload) = fields.iter().next().expect("one field");
            Ok((name, Some(payload)))
        }
        _ => Err(format!("expected a tagged case, found {}", short(json))),
    }
}

/// Whether a WIT name (kebab-case) and a recorded one (kebab, snake,
/// Pascal or camel case) name the same thing.
fn same_name(wit: &str, recorded: &str) -> bool {
    let letters = |name: &str| {
        name.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    wit == recorded || letters(wit) == letters(recorded)
}

/// A value for an error message, cut short.
pub fn short(json: &Value) -> String {
    const MAX: usize = 80;
    let text = json.to_string();
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_across_cases() {
        assert!(same_name("ping", "Ping"));
        assert!(same_name("routes-count", "routes_count"));
        assert!(same_name("not-found", "NotFound"));
        assert!(!same_name("ping", "pong"));
    }

    #[test]
    fn bytes_read_in_every_recorded_form() {
        assert_eq!(
            bytes(&json!([104, 105]), BytesText::Utf8),
            Ok(b"hi".to_vec())
        );
        assert_eq!(bytes(&json!("hi"), BytesText::Utf8), Ok(b"hi".to_vec()));
        assert_eq!(bytes(&json!("ff00"), BytesText::Hex), Ok(vec![0xff, 0]));
        assert_eq!(bytes(&json!({"hex": "01"}), BytesText::Utf8), Ok(vec![1]));
        let base64 = json!({"base64": "/wAB"});
        assert_eq!(bytes(&base64, BytesText::Utf8), Ok(vec![0xff, 0, 1]));
        let summary = bytes(&json!({"bytes": 5}), BytesText::Utf8).unwrap_err();
        assert!(summary.contains(r#"found {"bytes":5}"#), "{summary}");
    }

    #[test]
    fn redacted_values_are_told_apart() {
        let headers = json!([{"headers": [["cookie", "<redacted>"]], "body": "x"}]);
        assert!(redaction(&headers).unwrap().contains("<redacted>"));
        let body = json!([{"headers": [], "body": {"size": 2000, "sha256": "ab"}}]);
        assert!(redaction(&body).unwrap().contains("size and digest"));
        assert_eq!(redaction(&json!([[123, 125]])), None);
    }

    #[test]
    fn states_round_trip() {
        for state in [None, Some(Vec::new()), Some(b"{}".to_vec())] {
            assert_eq!(state_from_val(&state_to_val(&state)), Ok(state));
        }
    }
}
