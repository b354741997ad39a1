//! JSON objects read field by field through `serde_json::Value`, for the shapes serde would
//! otherwise buffer in its private `Content` type (`#[serde(tag = ...)]`, `#[serde(flatten)]`).
//! Store records are read through `serde_json::Value` anyway, so this reuses that code instead
//! of compiling a second copy of every visitor (the wasm size target of issue 7).
//!
//! Use in hand-written `Deserialize` impls: [`object`] reads the object, [`take`] removes and
//! reads one field (the tag, or a field next to a flattened struct), [`rest`] reads the
//! remaining fields as one struct. [`FieldReader`] reads every field of a tagged variant
//! without a derived visitor per variant.

use std::marker::PhantomData;

use serde::de::{DeserializeOwned, Deserializer, Error, Unexpected};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The fields of a JSON object; anything else (an array too) is an invalid type.
pub type Fields = Map<String, Value>;

/// Reads an object.
pub fn object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
    Fields::deserialize(deserializer)
}

/// Removes the required field `name` and reads it.
pub fn take<T: DeserializeOwned, E: Error>(fields: &mut Fields, name: &'static str) -> Result<T, E> {
    let value = fields.remove(name).ok_or_else(|| E::missing_field(name))?;
    T::deserialize(value).map_err(E::custom)
}

/// Reads the remaining fields as one value.
pub fn rest<T: DeserializeOwned, E: Error>(fields: Fields) -> Result<T, E> {
    T::deserialize(Value::Object(fields)).map_err(E::custom)
}

/// Reads the fields of one object by name, with the errors a derived struct gives. Fields not
/// read are ignored, or refused by [`FieldReader::finish`] (`#[serde(deny_unknown_fields)]`).
pub struct FieldReader<E> {
    fields: Fields,
    read: Vec<&'static str>,
    error: PhantomData<E>,
}

impl<E: Error> FieldReader<E> {
    pub fn new(fields: Fields) -> Self {
        Self { fields, read: Vec::new(), error: PhantomData }
    }

    /// A field that must be present.
    pub fn required<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<T, E> {
        self.read.push(name);
        take(&mut self.fields, name)
    }

    /// A field that may be absent (then `T::default()`: `None`, `false`, empty).
    pub fn optional<T: DeserializeOwned + Default>(&mut self, name: &'static str) -> Result<T, E> {
        self.read.push(name);
        self.fields.remove(name).map_or_else(|| Ok(T::default()), |value| T::deserialize(value).map_err(E::custom))
    }

    /// A field that may be absent (then `default()`).
    pub fn or<T: DeserializeOwned>(&mut self, name: &'static str, default: impl FnOnce() -> T) -> Result<T, E> {
        self.read.push(name);
        self.fields.remove(name).map_or_else(|| Ok(default()), |value| T::deserialize(value).map_err(E::custom))
    }

    /// A required field that must be an object: derived structs also accept an array of their
    /// fields in order, which no caller means.
    pub fn object<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<T, E> {
        if let Some(Value::Array(_)) = self.fields.get(name) {
            return Err(E::invalid_type(Unexpected::Seq, &"an object"));
        }
        self.required(name)
    }

    /// Reads the fields not read yet as one value (a flattened struct).
    pub fn rest<T: DeserializeOwned>(self) -> Result<T, E> {
        rest(self.fields)
    }

    /// Refuses any field not read (in the words of serde's `unknown_field`).
    pub fn finish(self) -> Result<(), E> {
        let Some(unknown) = self.fields.keys().next() else { return Ok(()) };
        let names: Vec<String> = self.read.iter().map(|name| format!("`{name}`")).collect();
        Err(E::custom(match names.as_slice() {
            [] => format!("unknown field `{unknown}`, there are no fields"),
            [one] => format!("unknown field `{unknown}`, expected {one}"),
            _ => format!("unknown field `{unknown}`, expected one of {}", names.join(", ")),
        }))
    }
}

/// Implements `Deserialize` for a type read from a JSON object by a [`FieldReader`] named by the
/// closure's parameter; fields the body does not read are ignored:
/// `deserialize_fields!(Settings, |f| Settings { enabled: f.required("enabled")? });`
macro_rules! deserialize_fields {
    ($type:ty, |$f:ident| $body:expr) => {
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[allow(unused_mut)] // a body that only calls `rest` takes the reader by value
                let mut $f = $crate::base::json_object::FieldReader::<D::Error>::new($crate::base::json_object::object(deserializer)?);
                Ok($body)
            }
        }
    };
}
pub(crate) use deserialize_fields;

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::MdmInfo;

    fn reader(json: &str) -> FieldReader<serde_json::Error> {
        FieldReader::new(object(&mut serde_json::Deserializer::from_str(json)).unwrap())
    }

    #[test]
    fn object_fields_refuse_arrays_and_absent_fields_take_their_defaults() {
        let mut f = reader(r#"{"info": ["i", "n", "m"], "more": {"id": "i", "name": "n"}}"#);
        assert!(f.object::<MdmInfo>("info").unwrap_err().to_string().contains("invalid type: sequence"));
        assert_eq!(f.object::<MdmInfo>("more").unwrap().id, "i");
        assert_eq!(f.or("limit", || 100_u32).unwrap(), 100);
        assert_eq!(f.optional::<Option<String>>("email").unwrap(), None);
        assert_eq!(f.required::<String>("name").unwrap_err().to_string(), "missing field `name`");
    }

    #[test]
    fn finish_names_an_unknown_field_and_the_known_ones() {
        let mut f = reader(r#"{"a": 1, "typo": 2}"#);
        assert_eq!(f.required::<u32>("a").unwrap(), 1);
        assert_eq!(f.finish().unwrap_err().to_string(), "unknown field `typo`, expected `a`");
        assert_eq!(reader(r#"{"x": 1}"#).finish().unwrap_err().to_string(), "unknown field `x`, there are no fields");
        assert!(reader("{}").finish().is_ok());
    }

    #[test]
    fn take_names_a_missing_field_and_rest_reads_the_others() {
        let mut fields = object(&mut serde_json::Deserializer::from_str(r#"{"kind": "x", "id": "i", "name": "n"}"#)).unwrap();
        let kind: String = take::<_, serde_json::Error>(&mut fields, "kind").unwrap();
        assert_eq!(kind, "x");
        let missing = take::<String, serde_json::Error>(&mut fields, "kind").unwrap_err().to_string();
        assert_eq!(missing, "missing field `kind`");
        let info: MdmInfo = rest::<_, serde_json::Error>(fields).unwrap();
        assert_eq!((info.id.as_str(), info.name.as_str()), ("i", "n"));
    }
}
