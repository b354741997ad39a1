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

/// Reads a field name of an object whose fields are `names` as the one of them it is (`None`: a
/// field the reader ignores), without copying it.
pub struct FieldNameOf(pub &'static [&'static str]);

impl<'de> serde::de::DeserializeSeed<'de> for FieldNameOf {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl serde::de::Visitor<'_> for FieldNameOf {
    type Value = Option<&'static str>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E: Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|known| *known == name))
    }
}

/// Implements `Deserialize` for a struct of the store's bulk (a million-license account holds
/// hundreds of thousands of them) read as it is parsed: each field straight into its type, no
/// JSON tree in between — [`deserialize_fields!`] builds one per record, which took about a third
/// of a restore. Only an object is accepted; a field is `required` or `optional` (absent:
/// `T::default()`); fields not listed are skipped; a field given twice is refused.
/// `deserialize_streamed!(Settings { enabled: bool = required "enabled" });`
macro_rules! deserialize_streamed {
    ($type:ident { $($field:ident: $ty:ty = $how:ident $json:literal),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Fields;
                impl<'de> serde::de::Visitor<'de> for Fields {
                    type Value = $type;

                    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                        formatter.write_str("an object")
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$type, A::Error> {
                        use serde::de::Error;
                        const NAMES: &[&str] = &[$($json),*];
                        $(let mut $field: Option<$ty> = None;)*
                        while let Some(name) = map.next_key_seed($crate::base::json_object::FieldNameOf(NAMES))? {
                            match name {
                                $(Some($json) => {
                                    if $field.is_some() {
                                        return Err(A::Error::duplicate_field($json));
                                    }
                                    $field = Some(map.next_value()?);
                                })*
                                _ => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok($type { $($field: $crate::base::json_object::deserialize_streamed!(@finish $how $field $json)),* })
                    }
                }
                deserializer.deserialize_map(Fields)
            }
        }
    };
    (@finish required $field:ident $json:literal) => { $field.ok_or_else(|| A::Error::missing_field($json))? };
    (@finish optional $field:ident $json:literal) => { $field.unwrap_or_default() };
}
pub(crate) use deserialize_streamed;

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

    #[derive(Debug, PartialEq)]
    struct Streamed {
        id: String,
        tags: Vec<String>,
    }

    deserialize_streamed!(Streamed { id: String = required "id", tags: Vec<String> = optional "tags" });

    #[test]
    fn a_streamed_struct_reads_its_fields_skips_others_and_refuses_duplicates_absent_required_fields_and_arrays() {
        let read = |json: &str| serde_json::from_str::<Streamed>(json).map_err(|e| e.to_string());
        let id = |id: &str, tags: &[&str]| Streamed { id: id.into(), tags: tags.iter().map(|t| t.to_string()).collect() };
        assert_eq!(read(r#"{"tags": ["a", "b"], "other": {"deep": [1]}, "id": "x"}"#), Ok(id("x", &["a", "b"])));
        assert_eq!(read(r#"{"id": "x"}"#), Ok(id("x", &[])));
        assert!(read(r#"{"tags": []}"#).unwrap_err().starts_with("missing field `id`"));
        assert!(read(r#"{"id": "x", "id": "y"}"#).unwrap_err().starts_with("duplicate field `id`"));
        assert!(read(r#"["x", []]"#).unwrap_err().starts_with("invalid type: sequence, expected an object"));
        assert!(read(r#"{"id": 7}"#).unwrap_err().starts_with("invalid type: integer `7`, expected a string"));
        // The same from a parsed value.
        assert_eq!(serde_json::from_value::<Streamed>(serde_json::json!({"id": "v"})).unwrap(), id("v", &[]));
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
