//! `tagged_enum!`: an enum read from a JSON object tagged by one field (`{"type": "refresh",
//! "accountId": "a1"}`), written as one table. Each variant's fields are listed once, with their
//! JSON names and how they are read; the macro generates from that list:
//!
//! * the enum itself (variants with their doc comments; a variant listed without braces is a unit
//!   variant),
//! * its `Deserialize`, reading the fields through [`crate::base::json_object::FieldReader`] (no derived
//!   visitor per variant, no buffering in serde's `Content`: the wasm size target of issue 7),
//! * the list of every tag (the error naming an unknown tag lists them),
//! * under `cfg(test)`, the description of every variant's fields that the JS contract test compares
//!   with `binding_types.d.ts` (`crate::contract::description`).
//!
//! How the reader behaves: the tag may come anywhere in the object; a missing tag, an unknown tag,
//! a missing `required` field, a field of the wrong type and (in variants with fields) a field not
//! listed are refused with serde's own messages; a unit variant ignores any other field. Each field
//! is read by the [`FieldReader`](crate::base::json_object::FieldReader) method of the name given:
//! `required`, `optional` (absent = `Default::default()`) or `object` (required, and an array in
//! its place is refused).
//!
//! ```ignore
//! tagged_enum! {
//!     /// docs
//!     #[derive(Debug, Clone)]
//!     pub enum Input tagged "type", types TYPES {
//!         /// docs
//!         EditAccount = "editAccount" {
//!             account_id: String = required "accountId",
//!             name: Option<String> = optional "name",
//!         },
//!         /// docs
//!         Timeout = "timeout",
//!     }
//! }
//! ```

/// See the [module](self) documentation.
macro_rules! tagged_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident tagged $tag_field:literal, types $types:ident {
            $($body:tt)*
        }
    ) => {
        // `f` is passed along so that every arm names the same reader (macro hygiene).
        $crate::contract::tagged_enum::tagged_enum!(@munch f
            [$(#[$meta])* $vis enum $name tagged $tag_field, types $types]
            [] [] [] [] []
            $($body)*
        );
    };

    // A variant with fields.
    (@munch $f:ident $head:tt [$($decl:tt)*] [$($tags:tt)*] [$($unit:tt)*] [$($arm:tt)*] [$($desc:tt)*]
        $(#[$vmeta:meta])* $variant:ident = $tag:literal {
            $($(#[$fmeta:meta])* $field:ident : $ty:ty = $how:ident $json:literal),* $(,)?
        }
        $(, $($rest:tt)*)?
    ) => {
        $crate::contract::tagged_enum::tagged_enum!(@munch $f $head
            [$($decl)* $(#[$vmeta])* $variant { $($(#[$fmeta])* $field: $ty),* },]
            [$($tags)* $tag,]
            [$($unit)*]
            [$($arm)* $tag => Self::$variant { $($field: $f.$how::<$ty>($json)?),* },]
            [$($desc)* $crate::contract::description::VariantSpec {
                tag: $tag,
                fields: &[$($crate::contract::description::FieldSpec {
                    name: $json,
                    required: $crate::contract::tagged_enum::tagged_enum!(@required $how),
                    kind: <$ty as $crate::contract::description::Describe>::kind,
                }),*],
            },]
            $($($rest)*)?
        );
    };

    // A unit variant.
    (@munch $f:ident $head:tt [$($decl:tt)*] [$($tags:tt)*] [$($unit:tt)*] [$($arm:tt)*] [$($desc:tt)*]
        $(#[$vmeta:meta])* $variant:ident = $tag:literal
        $(, $($rest:tt)*)?
    ) => {
        $crate::contract::tagged_enum::tagged_enum!(@munch $f $head
            [$($decl)* $(#[$vmeta])* $variant,]
            [$($tags)* $tag,]
            [$($unit)* $tag => return Ok(Self::$variant),]
            [$($arm)*]
            [$($desc)* $crate::contract::description::VariantSpec { tag: $tag, fields: &[] },]
            $($($rest)*)?
        );
    };

    // Every variant read: emit.
    (@munch $f:ident [$(#[$meta:meta])* $vis:vis enum $name:ident tagged $tag_field:literal, types $types:ident]
        [$($decl:tt)*] [$($tags:tt)*] [$($unit:tt)*] [$($arm:tt)*] [$($desc:tt)*]
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($decl)*
        }

        /// The tag of every variant, for the error naming an unknown one.
        const $types: &[&str] = &[$($tags)*];

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let mut fields = $crate::base::json_object::object(deserializer)?;
                let tag: String = $crate::base::json_object::take(&mut fields, $tag_field)?;
                // Variants without fields ignore any others.
                match tag.as_str() {
                    $($unit)*
                    _ => {}
                }
                let mut $f = $crate::base::json_object::FieldReader::<D::Error>::new(fields);
                let value = match tag.as_str() {
                    $($arm)*
                    _ => return Err(<D::Error as serde::de::Error>::unknown_variant(&tag, $types)),
                };
                $f.finish()?;
                Ok(value)
            }
        }

        #[cfg(test)]
        impl $name {
            /// Every variant's tag and fields, as the reader above reads them.
            pub(crate) const CONTRACT: $crate::contract::description::UnionSpec =
                $crate::contract::description::UnionSpec { tag: $tag_field, variants: &[$($desc)*] };
        }
    };

    (@required required) => { true };
    (@required object) => { true };
    (@required optional) => { false };
}
pub(crate) use tagged_enum;
