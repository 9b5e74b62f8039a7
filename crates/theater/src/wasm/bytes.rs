//! [`Bytes`]: a WIT `list<u8>` that is serialized as base64, so that a
//! message recorded in a chain takes 4 bytes for every 3 of the message
//! instead of up to 4 for each one (`[123,34,...]`).

use std::mem::MaybeUninit;

use serde::de::{Error, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, LowerContext,
};
use wasmtime::component::{ComponentType, Lift, Lower};

use crate::chain::record::{BASE64_KEY, Base64, decode_base64};

/// The bytes of a `list<u8>` parameter or result: the same value as a
/// `Vec<u8>` to the component, `{"base64": "..."}` in JSON. It also reads
/// the older array form (`[123,34]`), which callers that send a `Vec<u8>`
/// and chains recorded before this form still use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Self {
        bytes.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Base64(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BytesVisitor).map(Self)
    }
}

/// Reads either form a list of bytes has had in JSON.
struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(r#"bytes: {"base64": "..."} or an array of numbers"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u8>, A::Error> {
        // Owned strings: a borrowed one cannot be read from a `Value`.
        let bytes = match map.next_entry::<String, String>()? {
            Some((key, text)) if key == BASE64_KEY => decode_base64(&text)
                .map_err(|e| A::Error::custom(format!("bad base64 bytes: {e}")))?,
            _ => return Err(A::Error::invalid_type(Unexpected::Map, &self)),
        };
        match map.next_key::<String>()? {
            None => Ok(bytes),
            Some(_) => Err(A::Error::invalid_type(Unexpected::Map, &self)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

// SAFETY: every item forwards to `Vec<u8>`, whose layout `Bytes` shares
// with the component (the same `Lower` type, ABI and type check).
unsafe impl ComponentType for Bytes {
    type Lower = <Vec<u8> as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <Vec<u8> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<u8> as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: forwards to `Vec<u8>` (see above).
unsafe impl Lower for Bytes {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_memory(cx, ty, offset)
    }
}

// SAFETY: forwards to `Vec<u8>` (see above).
unsafe impl Lift for Bytes {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        Vec::<u8>::linear_lift_from_flat(cx, ty, src).map(Self)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        Vec::<u8>::linear_lift_from_memory(cx, ty, bytes).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::Bytes;

    #[test]
    fn bytes_are_written_as_base64_and_read_in_both_forms() {
        let bytes = Bytes(br#"{"add":1}"#.to_vec());
        let json = serde_json::to_string(&(bytes.clone(),)).unwrap();
        assert_eq!(json, r#"[{"base64":"eyJhZGQiOjF9"}]"#);
        let (read,): (Bytes,) = serde_json::from_str(&json).unwrap();
        assert_eq!(read, bytes);
        let old = serde_json::to_string(&(bytes.0.clone(),)).unwrap();
        let (read,): (Bytes,) = serde_json::from_str(&old).unwrap();
        assert_eq!(read, bytes);
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for bad in [r#""text""#, r#"{"hex":"00"}"#, r#"{"base64":"","x":1}"#] {
            let err = serde_json::from_str::<Bytes>(bad).unwrap_err().to_string();
            assert!(err.contains("expected bytes"), "{bad}: {err}");
        }
        let err = serde_json::from_str::<Bytes>(r#"{"base64":"*"}"#).unwrap_err();
        assert!(err.to_string().contains("bad base64 bytes"), "{err}");
        assert!(serde_json::from_str::<Bytes>("[256]").is_err());
    }
}
