//! The JavaScript contract as the Rust types define it (tests only): the description
//! `tests/node/contract.test.mjs` compares with `src/binding_types.d.ts`.
//!
//! `src/binding_types.d.ts` is written by hand, with its documentation; this module describes every
//! type that crosses the boundary — each input, output, event, view, query and the config — from the
//! Rust side, and `tests/node/contract.test.mjs` compares the two (names, variants, fields,
//! optionality, `null`, kinds of value), so that neither can change without the other. The description
//! comes from the code the boundary runs, never from a second list:
//!
//! * **`Input`**: the table of [`crate::contract::tagged_enum`] that also makes the enum and its reader
//!   ([`UnionSpec`]); a unit test checks the table against the reader it generated.
//! * **Types the engine writes** (outputs, events, views): their `Serialize`, run on samples by a
//!   recording serializer ([`recorder`]). The samples are struct literals, so a field added or removed
//!   fails to compile until the sample follows, and every enum sample list is checked exhaustive by a
//!   `match` ([`samples`]): a new variant fails to compile until it has a sample. Every `Option` in a
//!   sample holds a value and every list an item (checked), so that each field's type shows.
//! * **Other types the engine reads** (config, policy, queries, records for `restore`): the fields of
//!   a sample's `Serialize` (derived only under `cfg(test)` where the type has no other use for it),
//!   and, from the reader itself (derived or by hand), which fields may be absent and which may be
//!   `null`: each field is removed, then set to `null`, and read again. The sample must also read
//!   back to itself, so the reader and the `Serialize` name the same fields.
//! * **Enums of names** (`PricingParam`, `AccountStatus`, …): the variant list their `Deserialize`
//!   passes to `deserialize_enum`.
//!
//! The JSON description is written to the file named by `VPP_CONTRACT_OUT` when the test
//! `contract::tests::description` runs (`cargo test --lib -- contract::tests::description --exact`):
//! [`write_description`].

mod recorder;
mod samples;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Serialize;
use serde_json::Value;

use recorder::Shape;

/// The kind of value a field holds, in JSON terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    String,
    Number,
    Boolean,
    /// Data the host stores and hands back without looking inside (store records).
    Unknown,
    Array(Box<Kind>),
    /// An object with any string keys.
    Record(Box<Kind>),
    /// A named type: its Rust name until [`Contract::finish`], its TypeScript name after.
    Ref(String),
}

/// A field's kind and whether `null` is a value of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub kind: Kind,
    pub nullable: bool,
}

/// The JSON kind of a Rust type read from an input field ([`crate::contract::tagged_enum`]'s tables).
pub trait Describe {
    fn kind() -> Described;
}

fn plain(kind: Kind) -> Described {
    Described { kind, nullable: false }
}

impl Describe for String {
    fn kind() -> Described {
        plain(Kind::String)
    }
}

impl Describe for bool {
    fn kind() -> Described {
        plain(Kind::Boolean)
    }
}

macro_rules! numbers {
    ($($ty:ty),*) => { $(impl Describe for $ty { fn kind() -> Described { plain(Kind::Number) } })* };
}
numbers!(u16, u32, u64, i64, usize);

impl<T: Describe> Describe for Option<T> {
    fn kind() -> Described {
        Described { nullable: true, ..T::kind() }
    }
}

impl<T: Describe> Describe for Vec<T> {
    fn kind() -> Described {
        plain(Kind::Array(Box::new(T::kind().kind)))
    }
}

impl<T: Describe> Describe for BTreeMap<String, T> {
    fn kind() -> Described {
        plain(Kind::Record(Box::new(T::kind().kind)))
    }
}

/// Named types, by their Rust (serde container) names.
macro_rules! named {
    ($($ty:path => $name:literal),*) => { $(impl Describe for $ty { fn kind() -> Described { plain(Kind::Ref($name.to_owned())) } })* };
}
named!(crate::PricingParam => "PricingParam", crate::AppPolicy => "AppPolicy");

/// One field of a [`crate::contract::tagged_enum`] variant: its JSON name, whether it must be present, its kind.
pub struct FieldSpec {
    pub name: &'static str,
    pub required: bool,
    pub kind: fn() -> Described,
}

/// One variant of a [`crate::contract::tagged_enum`]: its tag and fields.
pub struct VariantSpec {
    pub tag: &'static str,
    pub fields: &'static [FieldSpec],
}

/// A [`crate::contract::tagged_enum`]: the tag field and every variant.
pub struct UnionSpec {
    pub tag: &'static str,
    pub variants: &'static [VariantSpec],
}

/// One field as the contract states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub kind: Kind,
    /// Read: may be absent. Written: is sometimes left out.
    pub optional: bool,
    /// Read: `null` is accepted. Written: may be `null`.
    pub nullable: bool,
}

/// What the engine does with a field it does not know (types it reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UnknownFields {
    Refused,
    Ignored,
}

/// The fields of an object, or of one variant of a tagged union.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fields {
    pub fields: BTreeMap<String, Field>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_fields: Option<UnknownFields>,
}

/// What a type is in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Form {
    /// A string that is one of these names.
    Enum(Vec<String>),
    Object(Fields),
    Union { tag: String, variants: BTreeMap<String, Fields> },
}

/// Which way a type crosses the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// JavaScript → engine.
    Read,
    /// Engine → JavaScript.
    Written,
    /// Enums of names, both ways.
    Both,
}

/// One type of the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeSpec {
    pub direction: Direction,
    /// Written out where it is used in `binding_types.d.ts` (no type of that name there).
    pub inline: bool,
    /// Its Rust names (several when a union's variant is a struct of its own).
    pub rust: BTreeSet<&'static str>,
    #[serde(flatten)]
    pub form: Form,
}

/// The contract: every type by its TypeScript name.
#[derive(Debug, Default, Serialize)]
pub struct Contract {
    pub types: BTreeMap<String, TypeSpec>,
    /// Rust name → TypeScript name.
    #[serde(skip)]
    names: BTreeMap<&'static str, String>,
    /// A sample (JSON) of each type the engine reads, by Rust name, to build inputs from.
    #[serde(skip)]
    read_samples: BTreeMap<&'static str, Value>,
}

impl Contract {
    fn add(&mut self, ts_name: &str, rust_names: &[&'static str], direction: Direction, inline: bool, form: Form) {
        for rust_name in rust_names {
            if let Some(other) = self.names.insert(rust_name, ts_name.to_owned()) {
                assert_eq!(other, ts_name, "the Rust type {rust_name} is described twice");
            }
        }
        let spec = TypeSpec { direction, inline, rust: rust_names.iter().copied().collect(), form };
        assert!(self.types.insert(ts_name.to_owned(), spec).is_none(), "{ts_name} is described twice");
    }

    /// An enum written as one of its variants' names; the names come from its `Deserialize`.
    pub fn names<T: DeserializeOwned>(&mut self, ts_name: &str, inline: bool) {
        let (rust_name, variants) = enum_variants::<T>();
        let form = Form::Enum(variants.iter().map(|v| (*v).to_owned()).collect());
        self.add(ts_name, &[rust_name], Direction::Both, inline, form);
    }

    /// A struct the engine reads: its fields from `sample`'s `Serialize`; which may be absent or
    /// `null`, and whether unknown fields are refused, from its `Deserialize`.
    pub fn read<T: Serialize + DeserializeOwned>(&mut self, ts_name: &str, inline: bool, sample: &T) {
        let json = serde_json::to_value(sample).unwrap();
        let back: T = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{ts_name}: the sample does not read back ({e}): {json}"));
        assert_eq!(serde_json::to_value(back).unwrap(), json, "{ts_name}: the sample reads back as something else");
        self.read_object(ts_name, inline, sample, &|value| serde_json::from_value::<T>(value.clone()).is_ok());
    }

    /// A struct the engine reads as the field `field` of `outer` (by `Outer`'s reader).
    pub fn read_within<T: Serialize, Outer: Serialize + DeserializeOwned>(
        &mut self,
        ts_name: &str,
        inline: bool,
        sample: &T,
        outer: &Outer,
        field: &str,
    ) {
        let outer = serde_json::to_value(outer).unwrap();
        let reads = |value: &Value| {
            let mut outer = outer.clone();
            outer[field] = value.clone();
            serde_json::from_value::<Outer>(outer).is_ok()
        };
        assert!(reads(&serde_json::to_value(sample).unwrap()), "{ts_name}: the sample is not read in {field}");
        self.read_object(ts_name, inline, sample, &reads);
    }

    fn read_object(&mut self, ts_name: &str, inline: bool, sample: &impl Serialize, reads: &dyn Fn(&Value) -> bool) {
        let Shape::Struct { rust_name, fields, .. } = recorder::record(sample).unwrap() else {
            panic!("{ts_name}: the sample is not written as an object")
        };
        let json = serde_json::to_value(sample).unwrap();
        let object = json.as_object().unwrap();
        let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut changed = object.clone();
            change(&mut changed);
            reads(&Value::Object(changed))
        };
        let mut described = BTreeMap::new();
        for (name, shape) in fields {
            let kind = kind_of(&strip_option(&shape), &format!("{ts_name}.{name}"));
            let optional = with(&|o| {
                o.remove(name);
            });
            let nullable = with(&|o| {
                o.insert(name.to_owned(), Value::Null);
            });
            described.insert(name.to_owned(), Field { kind, optional, nullable });
        }
        let ignored = with(&|o| {
            o.insert("fieldNobodyKnows".to_owned(), Value::Bool(true));
        });
        let unknown_fields = Some(if ignored { UnknownFields::Ignored } else { UnknownFields::Refused });
        self.read_samples.insert(rust_name, json);
        self.add(ts_name, &[rust_name], Direction::Read, inline, Form::Object(Fields { fields: described, unknown_fields }));
    }

    /// A union the engine reads, described by the [`crate::contract::tagged_enum`] table its reader comes from.
    pub fn read_union(&mut self, ts_name: &str, rust_name: &'static str, spec: &UnionSpec) {
        let mut variants = BTreeMap::new();
        for variant in spec.variants {
            let fields = variant
                .fields
                .iter()
                .map(|f| {
                    let Described { kind, nullable } = (f.kind)();
                    (f.name.to_owned(), Field { kind, optional: !f.required, nullable })
                })
                .collect();
            // A variant with fields refuses others; one without ignores them (the reader of `tagged_enum!`).
            let unknown_fields = Some(if variant.fields.is_empty() { UnknownFields::Ignored } else { UnknownFields::Refused });
            assert!(variants.insert(variant.tag.to_owned(), Fields { fields, unknown_fields }).is_none(), "{ts_name}: tag {} twice", variant.tag);
        }
        self.add(ts_name, &[rust_name], Direction::Read, false, Form::Union { tag: spec.tag.to_owned(), variants });
    }

    /// A struct the engine writes: its fields from `sample`'s `Serialize`.
    pub fn written<T: Serialize>(&mut self, ts_name: &str, sample: &T) {
        self.written_object(ts_name, false, sample);
    }

    /// A struct the engine writes that `binding_types.d.ts` writes out where it is used.
    pub fn written_inline<T: Serialize>(&mut self, ts_name: &str, sample: &T) {
        self.written_object(ts_name, true, sample);
    }

    fn written_object<T: Serialize>(&mut self, ts_name: &str, inline: bool, sample: &T) {
        let Shape::Struct { rust_name, fields, skipped } = recorder::record(sample).unwrap() else {
            panic!("{ts_name}: the sample is not written as an object")
        };
        let fields = written_fields(ts_name, fields, &skipped);
        self.add(ts_name, &[rust_name], Direction::Written, inline, Form::Object(Fields { fields, unknown_fields: None }));
    }

    /// An internally tagged enum the engine writes, from one sample of each variant.
    pub fn written_union<T: Serialize>(&mut self, ts_name: &str, tag: &str, samples: &[T]) {
        let mut variants = BTreeMap::new();
        let mut rust_names = Vec::new();
        for sample in samples {
            let json = serde_json::to_value(sample).unwrap();
            let variant = json.get(tag).and_then(Value::as_str).unwrap_or_else(|| panic!("{ts_name}: a sample has no `{tag}`: {json}"));
            let Shape::Struct { rust_name, mut fields, skipped } = recorder::record(sample).unwrap() else {
                panic!("{ts_name}: a sample is not written as an object")
            };
            fields.retain(|(name, _)| *name != tag);
            let fields = written_fields(&format!("{ts_name}.{variant}"), fields, &skipped);
            assert!(variants.insert(variant.to_owned(), Fields { fields, unknown_fields: None }).is_none(), "{ts_name}: two samples of {variant}");
            if !rust_names.contains(&rust_name) {
                rust_names.push(rust_name);
            }
        }
        self.add(ts_name, &rust_names, Direction::Written, false, Form::Union { tag: tag.to_owned(), variants });
    }

    /// Declares a field opaque to the host (`unknown` in TypeScript): `"Type.field"` or `"Type.variant.field"`.
    pub fn opaque(&mut self, path: &str) {
        let parts: Vec<&str> = path.split('.').collect();
        let spec = self.types.get_mut(parts[0]).unwrap_or_else(|| panic!("{path}: no such type"));
        let fields = match (&mut spec.form, &parts[1..]) {
            (Form::Object(fields), [name]) => fields.fields.get_mut(*name),
            (Form::Union { variants, .. }, [variant, name]) => variants.get_mut(*variant).and_then(|v| v.fields.get_mut(*name)),
            _ => None,
        };
        fields.unwrap_or_else(|| panic!("{path}: no such field")).kind = Kind::Unknown;
    }

    /// Names every reference by its TypeScript name and checks that each is described, that enum
    /// samples use known names, and that types read refer only to types read (and written to written).
    pub fn finish(mut self) -> Self {
        let names = self.names.clone();
        let directions: BTreeMap<String, Direction> = self.types.iter().map(|(name, spec)| (name.clone(), spec.direction)).collect();
        for (ts_name, spec) in &mut self.types {
            let direction = spec.direction;
            let resolve = |kind: &mut Kind, path: &str| {
                let mut kind = kind;
                while let Kind::Array(inner) | Kind::Record(inner) = kind {
                    kind = inner;
                }
                if let Kind::Ref(rust_name) = kind {
                    let target = names.get(rust_name.as_str()).unwrap_or_else(|| {
                        panic!("{path} holds the Rust type {rust_name}, which the contract does not describe (add it to contract::describe)")
                    });
                    let target_direction = directions[target];
                    assert!(
                        target_direction == Direction::Both || target_direction == direction,
                        "{path} ({direction:?}) holds {target} ({target_direction:?}): describe it both ways"
                    );
                    *kind = Kind::Ref(target.clone());
                }
            };
            match &mut spec.form {
                Form::Enum(_) => {}
                Form::Object(fields) => {
                    for (name, field) in &mut fields.fields {
                        resolve(&mut field.kind, &format!("{ts_name}.{name}"));
                    }
                }
                Form::Union { variants, .. } => {
                    for (variant, fields) in variants {
                        for (name, field) in &mut fields.fields {
                            resolve(&mut field.kind, &format!("{ts_name}.{variant}.{name}"));
                        }
                    }
                }
            }
        }
        self
    }

    /// A value of `kind` the engine reads (for the `Input` table's test): a sample of a named object, the
    /// first name of an enum.
    fn sample_of(&self, kind: &Kind) -> Value {
        match kind {
            Kind::String => Value::from("x"),
            Kind::Number => Value::from(1),
            Kind::Boolean => Value::from(true),
            Kind::Unknown => Value::from("opaque"),
            Kind::Array(item) => Value::Array(vec![self.sample_of(item)]),
            Kind::Record(item) => Value::Object([("k".to_owned(), self.sample_of(item))].into_iter().collect()),
            Kind::Ref(name) => {
                let spec = &self.types[name];
                match &spec.form {
                    Form::Enum(values) => Value::from(values[0].clone()),
                    _ => self.read_samples[spec.rust.first().unwrap()].clone(),
                }
            }
        }
    }
}

/// Fields of a written struct (a field left out by `skip_serializing_if` is optional).
fn written_fields(path: &str, fields: Vec<(&'static str, Shape)>, skipped: &[&'static str]) -> BTreeMap<String, Field> {
    assert!(skipped.is_empty(), "{path}: the sample leaves out {skipped:?}: give it values so that their types show");
    fields
        .into_iter()
        .map(|(name, shape)| {
            let path = format!("{path}.{name}");
            let nullable = matches!(shape, Shape::Option(_));
            (name.to_owned(), Field { kind: kind_of(&strip_option(&shape), &path), optional: false, nullable })
        })
        .collect()
}

fn strip_option(shape: &Shape) -> Shape {
    match shape {
        Shape::Option(inner) => (**inner).clone(),
        other => other.clone(),
    }
}

/// The kind a sample's value shows; a sample that shows none (`None`, an empty list) is refused.
fn kind_of(shape: &Shape, path: &str) -> Kind {
    let item = |items: &[Shape]| {
        let kinds: BTreeSet<String> = items.iter().map(|item| format!("{:?}", kind_of(item, path))).collect();
        assert!(!items.is_empty(), "{path}: the sample's list or map is empty: give it an item so that its type shows");
        assert!(kinds.len() == 1, "{path}: the sample's items are of different kinds: {kinds:?}");
        Box::new(kind_of(&items[0], path))
    };
    match shape {
        Shape::String => Kind::String,
        Shape::Number => Kind::Number,
        Shape::Boolean => Kind::Boolean,
        Shape::Null => panic!("{path}: the sample holds None: give it a value so that its type shows"),
        Shape::Option(_) => panic!("{path}: an Option inside a list, a map or an Option is not part of the contract"),
        Shape::Seq(items) => Kind::Array(item(items)),
        Shape::Map(values) => Kind::Record(item(values)),
        Shape::UnitVariant { rust_name, .. } | Shape::Struct { rust_name, .. } => Kind::Ref((*rust_name).to_owned()),
    }
}

/// The name and variant names an enum's `Deserialize` asks `deserialize_enum` for.
fn enum_variants<T: DeserializeOwned>() -> (&'static str, &'static [&'static str]) {
    struct Probe<'a>(&'a mut Option<(&'static str, &'static [&'static str])>);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not an enum"))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = Some((name, variants));
            Err(de::Error::custom("seen"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }
    let mut seen = None;
    let _ = T::deserialize(Probe(&mut seen));
    seen.unwrap_or_else(|| panic!("{} is not read as an enum", std::any::type_name::<T>()))
}

/// Every type crossing the boundary, by its name in `binding_types.d.ts`.
pub fn describe() -> Contract {
    use crate::contract::output::Method;
    use crate::vocab::OperationKind;
    use crate::{AccountStatus, EngineConfig, LicenseType, MdmInfo, PricingParam, ProductType, SyncKind};

    let mut c = Contract::default();
    // Names, both ways.
    c.names::<PricingParam>("PricingParam", false);
    c.names::<LicenseType>("LicenseType", false);
    c.names::<AccountStatus>("AccountStatus", false);
    c.names::<SyncKind>("SyncKind", false);
    c.names::<Method>("Method", true);
    c.names::<ProductType>("ProductType", true);
    c.names::<OperationKind>("OperationKind", true);

    // What the engine reads: the config, inputs, queries, records for `restore`.
    c.read::<MdmInfo>("MdmInfo", false, &samples::mdm_info());
    c.read_within("NotificationConfig", true, &samples::notification_config(), &samples::engine_config(), "notifications");
    c.read::<EngineConfig>("EngineConfig", false, &samples::engine_config());
    c.read::<crate::AppPolicy>("AppPolicy", false, &samples::app_policy());
    c.read_union("Input", "Input", &crate::Input::CONTRACT);
    c.read::<crate::AssignmentQuery>("AssignmentQuery", false, &samples::assignment_query());
    c.read::<crate::ExplainQuery>("ExplainQuery", false, &samples::explain_query());
    c.read::<crate::ReportPageQuery>("ReportPageQuery", false, &samples::report_page_query());
    c.read::<crate::StoredRecord>("StoredRecord", false, &samples::stored_record());
    c.opaque("StoredRecord.value");
    c.read::<crate::StoredRecordJson>("StoredRecordJson", false, &samples::stored_record_json());

    // What it writes: outputs, events, views.
    c.written_union("Output", "type", &samples::outputs());
    c.written_union("EngineEvent", "type", &samples::events());
    c.written_union("PersistOp", "op", &samples::persist_ops());
    c.opaque("PersistOp.put.value");
    c.written("AccountView", &samples::account_view());
    c.written("AppCountView", &samples::app_count_view());
    c.written("AppTotalView", &samples::app_total_view());
    c.written("AppCountInAccount", &samples::app_total_view().accounts[0]);
    c.written("AssignmentView", &samples::assignment_view());
    c.written("AssignmentPage", &samples::assignment_page());
    c.written("AppReportRow", &samples::app_report_row());
    c.written("AssignmentReportPage", &samples::assignment_report_page());
    c.written("AssignmentReportRow", &samples::assignment_report_page().rows[0]);
    c.written("Wakeup", &samples::wakeup());
    c.written("EngineStats", &samples::engine_stats());
    c.written("TokenInfo", &samples::token_info());
    c.written("PendingOperation", &samples::pending_operation());
    c.written("LicenseExplanation", &samples::license_explanation());
    let preview = samples::preview_report();
    c.written("PreviewReport", &preview);
    c.written("PreviewFigures", &preview.totals);
    c.written("AccountPreview", &preview.accounts[0]);
    c.written("AppPreview", &preview.apps[0]);
    c.written("ReleaseReason", &preview.releases_by_reason[0]);
    c.written("AccountKeyRanges", &samples::account_key_ranges());
    c.written_inline("ValueKeyed", &samples::value_keyed());
    c.finish()
}

/// Builds the description (every check above runs) and writes it where `VPP_CONTRACT_OUT` says:
/// `tests/node/contract.test.mjs` runs the test `contract::tests::description` to get it.
pub fn write_description() {
    let contract = describe();
    let text = serde_json::to_string_pretty(&contract).unwrap();
    if let Ok(path) = std::env::var("VPP_CONTRACT_OUT") {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn read_input(value: &Value) -> Result<crate::Input, String> {
        serde_json::from_value(value.clone()).map_err(|e| e.to_string())
    }

    /// The `Input` table describes what the reader it generated reads: for every variant, an object
    /// with every field is read; without a field it is refused exactly when the field is required;
    /// with `null` in a field it is read exactly when the field is nullable; with an unknown field it
    /// is refused when the variant has fields.
    #[test]
    fn the_input_table_describes_its_reader() {
        let contract = describe();
        let Form::Union { tag, variants } = &contract.types["Input"].form else { panic!("Input is not a union") };
        for (variant, fields) in variants {
            let mut full = serde_json::Map::new();
            full.insert(tag.clone(), Value::from(variant.clone()));
            for (name, field) in &fields.fields {
                full.insert(name.clone(), contract.sample_of(&field.kind));
            }
            read_input(&Value::Object(full.clone())).unwrap_or_else(|e| panic!("{variant}: {e}: {full:?}"));
            for (name, field) in &fields.fields {
                let mut absent = full.clone();
                absent.remove(name);
                let error = read_input(&Value::Object(absent)).err();
                assert_eq!(error.is_none(), field.optional, "{variant}.{name} optional: {error:?}");
                if let Some(error) = error {
                    assert_eq!(error, format!("missing field `{name}`"));
                }
                let mut null = full.clone();
                null.insert(name.clone(), Value::Null);
                assert_eq!(read_input(&Value::Object(null)).is_ok(), field.nullable, "{variant}.{name} nullable");
            }
            let mut unknown = full.clone();
            unknown.insert("fieldNobodyKnows".to_owned(), Value::Bool(true));
            let refused = read_input(&Value::Object(unknown)).is_err();
            assert_eq!(refused, fields.unknown_fields == Some(UnknownFields::Refused), "{variant}: unknown fields");
        }
    }

    #[test]
    fn types_read_and_written_have_the_expected_strictness() {
        let contract = describe();
        let object = |name: &str| match &contract.types[name].form {
            Form::Object(fields) => fields.clone(),
            _ => panic!("{name} is not an object"),
        };
        assert_eq!(object("EngineConfig").unknown_fields, Some(UnknownFields::Refused));
        assert!(object("EngineConfig").fields["reconcileIntervalMs"].optional);
        assert!(!object("EngineConfig").fields["mdmInfo"].optional);
        assert_eq!(object("AppPolicy").unknown_fields, Some(UnknownFields::Refused));
        // Apple's answers carry `mdmInfo` too; they may add fields.
        assert_eq!(object("MdmInfo").unknown_fields, Some(UnknownFields::Ignored));
        let stats = object("EngineStats");
        assert_eq!(stats.fields["requestsIssued"], Field { kind: Kind::Number, optional: false, nullable: false });
        let Form::Union { variants, .. } = &contract.types["Output"].form else { panic!("Output is not a union") };
        assert_eq!(variants.keys().collect::<Vec<_>>(), ["event", "persist", "request", "timeout"]);
        assert_eq!(variants["request"].fields["method"].kind, Kind::Ref("Method".to_owned()));
        assert_eq!(variants["request"].fields["body"], Field { kind: Kind::String, optional: false, nullable: true });
        assert_eq!(variants["event"].fields["event"].kind, Kind::Ref("EngineEvent".to_owned()));
    }
}
