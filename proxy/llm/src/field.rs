//! [`Field`]: an optional wire field that remembers whether it was absent
//! or `null`, so a typed model re-serializes what the client sent.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Absent, `null`, or a value. `Option<T>` would turn an explicit `null`
/// (Codex sends `"previous_response_id": null`) into an absent field.
/// Use with `#[serde(default, skip_serializing_if = "Field::is_absent")]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Value(v) => Some(v),
            Field::Absent | Field::Null => None,
        }
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(s),
            Field::Absent | Field::Null => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Field::Null, Field::Value))
    }
}
