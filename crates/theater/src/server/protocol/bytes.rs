//! Bytes an actor holds or sends (its state, a reply, a channel message)
//! as the protocol carries them: under the field's name as JSON when they
//! are JSON text, else under `<name>_hex` as hex; `null` for none.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The name a kind of actor bytes travels under.
pub trait BytesField {
    /// The field holding JSON (or `null`).
    const NAME: &'static str;
    /// The field holding hex, for bytes that are not JSON.
    const HEX_NAME: &'static str;
}

macro_rules! bytes_field {
    ($(#[$doc:meta])* $marker:ident = $name:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $marker;

        impl BytesField for $marker {
            const NAME: &'static str = $name;
            const HEX_NAME: &'static str = concat!($name, "_hex");
        }
    };
}

bytes_field!(
    /// An actor's state.
    StateField = "state"
);
bytes_field!(
    /// An actor's reply to a request.
    ReplyField = "reply"
);
bytes_field!(
    /// What an actor accepted a channel with.
    AcceptField = "accept_message"
);
bytes_field!(
    /// A message an actor sent on a channel.
    MessageField = "message"
);

/// Actor bytes in a protocol message, named by `F`. The field of the
/// message that holds them is marked `#[serde(flatten)]`: which key they
/// take depends on the bytes.
pub struct ActorBytes<F> {
    bytes: Option<Vec<u8>>,
    field: PhantomData<F>,
}

impl<F> ActorBytes<F> {
    pub fn new(bytes: Option<Vec<u8>>) -> Self {
        Self {
            bytes,
            field: PhantomData,
        }
    }

    /// The bytes; `None` when the actor has none (a state not yet set).
    pub fn get(&self) -> Option<&[u8]> {
        self.bytes.as_deref()
    }

    pub fn into_bytes(self) -> Option<Vec<u8>> {
        self.bytes
    }

    /// The bytes as JSON, when they are JSON text.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(self.get()?).ok()
    }
}

/// For people: JSON as compact text, other bytes as hex, none as `none`.
impl<F> fmt::Display for ActorBytes<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.get(), self.json()) {
            (None, _) => f.write_str("none"),
            (Some(_), Some(json)) => write!(f, "{json}"),
            (Some(bytes), None) => write!(f, "(not JSON) hex {}", hex::encode(bytes)),
        }
    }
}

impl<F> fmt::Debug for ActorBytes<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorBytes({self})")
    }
}

impl<F> Clone for ActorBytes<F> {
    fn clone(&self) -> Self {
        Self::new(self.bytes.clone())
    }
}

impl<F> PartialEq for ActorBytes<F> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<F: BytesField> Serialize for ActorBytes<F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match (self.get(), self.json()) {
            (None, _) => map.serialize_entry(F::NAME, &Value::Null)?,
            (Some(_), Some(json)) => map.serialize_entry(F::NAME, &json)?,
            (Some(bytes), None) => map.serialize_entry(F::HEX_NAME, &hex::encode(bytes))?,
        }
        map.end()
    }
}

impl<'de, F: BytesField> Deserialize<'de> for ActorBytes<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BytesVisitor(PhantomData))
    }
}

struct BytesVisitor<F>(PhantomData<F>);

impl<'de, F: BytesField> Visitor<'de> for BytesVisitor<F> {
    type Value = ActorBytes<F>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "`{}` or `{}`", F::NAME, F::HEX_NAME)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        // The other fields of the message it is flattened into pass by.
        while let Some(key) = map.next_key::<String>()? {
            if key == F::NAME {
                let json: Value = map.next_value()?;
                let bytes = (!json.is_null())
                    .then(|| serde_json::to_vec(&json).expect("JSON values serialize"));
                found = Some(bytes);
            } else if key == F::HEX_NAME {
                let text: String = map.next_value()?;
                let bytes = hex::decode(&text).map_err(|e| {
                    <A::Error as de::Error>::custom(format!("`{}` is not hex: {e}", F::HEX_NAME))
                })?;
                found = Some(Some(bytes));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let bytes = found.ok_or_else(|| <A::Error as de::Error>::missing_field(F::NAME))?;
        Ok(ActorBytes::new(bytes))
    }
}
