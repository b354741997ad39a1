//! A `serde::Serializer` that records the shape of a value instead of writing it: which fields a
//! struct (or a tagged variant) writes, under which names, and what kind of value each holds. It
//! runs the types' own `Serialize` (derived or not), so what it records is the JSON the boundary
//! sees: renames, tags and skipped fields included.

use std::fmt;

use serde::ser::{self, Serialize};

/// The shape of one serialized value.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    String,
    Number,
    Boolean,
    /// `None` or `()`: a sample that shows no type.
    Null,
    /// `Some(value)`: the value may be `null`.
    Option(Box<Shape>),
    /// Array items.
    Seq(Vec<Shape>),
    /// Values of an object with string keys.
    Map(Vec<Shape>),
    /// A unit variant of a Rust enum, written as its (renamed) name.
    UnitVariant { rust_name: &'static str, variant: &'static str },
    /// An object written by a struct, or by a variant of an internally tagged enum (its tag is the first
    /// field). `rust_name` is the struct's or the enum's name.
    Struct { rust_name: &'static str, fields: Vec<(&'static str, Shape)>, skipped: Vec<&'static str> },
}

/// Records the shape of `value`.
pub fn record<T: Serialize + ?Sized>(value: &T) -> Result<Shape, RecordError> {
    value.serialize(Recorder)
}

#[derive(Debug)]
pub struct RecordError(String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

impl ser::Error for RecordError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

fn unsupported<T>(what: &str) -> Result<T, RecordError> {
    Err(RecordError(format!("{what} is not part of the JSON contract (externally tagged enums, tuples and bytes are not used)")))
}

struct Recorder;

impl ser::Serializer for Recorder {
    type Ok = Shape;
    type Error = RecordError;
    type SerializeSeq = SeqRecorder;
    type SerializeTuple = ser::Impossible<Shape, RecordError>;
    type SerializeTupleStruct = ser::Impossible<Shape, RecordError>;
    type SerializeTupleVariant = ser::Impossible<Shape, RecordError>;
    type SerializeMap = MapRecorder;
    type SerializeStruct = StructRecorder;
    type SerializeStructVariant = ser::Impossible<Shape, RecordError>;

    fn serialize_bool(self, _: bool) -> Result<Shape, RecordError> {
        Ok(Shape::Boolean)
    }
    fn serialize_i8(self, _: i8) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_i16(self, _: i16) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_i32(self, _: i32) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_i64(self, _: i64) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_u8(self, _: u8) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_u16(self, _: u16) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_u32(self, _: u32) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_u64(self, _: u64) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_f32(self, _: f32) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_f64(self, _: f64) -> Result<Shape, RecordError> {
        Ok(Shape::Number)
    }
    fn serialize_char(self, _: char) -> Result<Shape, RecordError> {
        Ok(Shape::String)
    }
    fn serialize_str(self, _: &str) -> Result<Shape, RecordError> {
        Ok(Shape::String)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Shape, RecordError> {
        unsupported("bytes")
    }
    fn serialize_none(self) -> Result<Shape, RecordError> {
        Ok(Shape::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Shape, RecordError> {
        Ok(Shape::Option(Box::new(value.serialize(Recorder)?)))
    }
    fn serialize_unit(self) -> Result<Shape, RecordError> {
        Ok(Shape::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Shape, RecordError> {
        Ok(Shape::Null)
    }
    fn serialize_unit_variant(self, rust_name: &'static str, _: u32, variant: &'static str) -> Result<Shape, RecordError> {
        Ok(Shape::UnitVariant { rust_name, variant })
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<Shape, RecordError> {
        value.serialize(Recorder)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Shape, RecordError> {
        unsupported("an externally tagged newtype variant")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<SeqRecorder, RecordError> {
        Ok(SeqRecorder(Vec::new()))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RecordError> {
        unsupported("a tuple")
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, RecordError> {
        unsupported("a tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, RecordError> {
        unsupported("a tuple variant")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapRecorder, RecordError> {
        Ok(MapRecorder(Vec::new()))
    }
    fn serialize_struct(self, rust_name: &'static str, _: usize) -> Result<StructRecorder, RecordError> {
        Ok(StructRecorder { rust_name, fields: Vec::new(), skipped: Vec::new() })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, RecordError> {
        unsupported("an externally tagged struct variant")
    }
}

struct SeqRecorder(Vec<Shape>);

impl ser::SerializeSeq for SeqRecorder {
    type Ok = Shape;
    type Error = RecordError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RecordError> {
        self.0.push(value.serialize(Recorder)?);
        Ok(())
    }
    fn end(self) -> Result<Shape, RecordError> {
        Ok(Shape::Seq(self.0))
    }
}

struct MapRecorder(Vec<Shape>);

impl ser::SerializeMap for MapRecorder {
    type Ok = Shape;
    type Error = RecordError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), RecordError> {
        match key.serialize(Recorder)? {
            Shape::String => Ok(()),
            other => Err(RecordError(format!("a map key is {other:?}: JSON object keys are strings"))),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RecordError> {
        self.0.push(value.serialize(Recorder)?);
        Ok(())
    }
    fn end(self) -> Result<Shape, RecordError> {
        Ok(Shape::Map(self.0))
    }
}

struct StructRecorder {
    rust_name: &'static str,
    fields: Vec<(&'static str, Shape)>,
    skipped: Vec<&'static str>,
}

impl ser::SerializeStruct for StructRecorder {
    type Ok = Shape;
    type Error = RecordError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), RecordError> {
        self.fields.push((name, value.serialize(Recorder)?));
        Ok(())
    }
    fn skip_field(&mut self, name: &'static str) -> Result<(), RecordError> {
        self.skipped.push(name);
        Ok(())
    }
    fn end(self) -> Result<Shape, RecordError> {
        Ok(Shape::Struct { rust_name: self.rust_name, fields: self.fields, skipped: self.skipped })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::{AppPolicy, Event, LicenseType, Output, PricingParam};

    #[test]
    fn tagged_variants_record_their_tag_first_and_options_as_some() {
        let event = Event::TestResult { account_id: "a".into(), ok: true, message: "m".into(), location_name: Some("l".into()) };
        let Shape::Struct { rust_name, fields, .. } = record(&event).unwrap() else { panic!("not a struct") };
        assert_eq!(rust_name, "Event");
        let names: Vec<_> = fields.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["type", "accountId", "ok", "message", "locationName"]);
        assert_eq!(fields[4].1, Shape::Option(Box::new(Shape::String)));
        let Shape::Struct { fields, .. } = record(&Output::Timeout { at: 1 }).unwrap() else { panic!("not a struct") };
        assert_eq!(fields, [("type", Shape::String), ("at", Shape::Number)]);
    }

    #[test]
    fn sets_and_enums_record_their_items_and_variant_names() {
        let policy = AppPolicy {
            policy_id: "p".into(),
            name: "P".into(),
            account_id: "a".into(),
            adam_id: "1".into(),
            pricing_param: PricingParam::Plus,
            license_type: LicenseType::User,
            targets: ["t".to_owned()].into(),
        };
        let Shape::Struct { fields, .. } = record(&policy).unwrap() else { panic!("not a struct") };
        assert_eq!(fields[4].1, Shape::UnitVariant { rust_name: "PricingParam", variant: "PLUS" });
        assert_eq!(fields[6].1, Shape::Seq(vec![Shape::String]));
    }
}
