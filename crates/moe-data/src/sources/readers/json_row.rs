//! One jsonl row's requested fields, parsed without building a
//! `serde_json::Value` (SRC-13).
//!
//! The row is walked once by serde_json's own parser: keys and string values
//! without escapes are borrowed from the line, a requested field's string is
//! copied out once, and every other value is only checked, not stored. The
//! walk goes through `deserialize_any` like `Value` does, so it accepts and
//! rejects exactly the rows `Value` did (a number out of range, a lone
//! surrogate escape, a nesting too deep, trailing characters), and a key
//! given twice keeps its last value, as `Value` did.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What a requested field held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'de> {
    /// A string (borrowed from the row when it has no escapes).
    Str(Cow<'de, str>),
    /// `null`.
    Null,
    /// Anything else, by kind ("a number", "an array", …).
    Other(&'static str),
}

/// The outcome of parsing one row.
#[derive(Debug)]
pub enum Row<'de> {
    /// An object: each requested field's value, in request order (None: absent).
    Object(Vec<Option<FieldValue<'de>>>),
    /// Valid JSON that is not an object.
    NotObject,
}

/// Parses `text` as one JSON value, picking `fields` out of it if it is an object.
pub fn parse<'de>(text: &'de str, fields: &[String]) -> serde_json::Result<Row<'de>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let row = RowSeed { fields }.deserialize(&mut de)?;
    de.end()?;
    Ok(row)
}

struct RowSeed<'f> {
    fields: &'f [String],
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Row<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

/// Accepts any value; only an object gives fields.
impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row<'de>, A::Error> {
        let mut found: Vec<Option<FieldValue<'de>>> = vec![None; self.fields.len()];
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let wanted = self.fields.iter().position(|f| *f == *key.0);
            match wanted {
                None => {
                    map.next_value::<Skip>()?;
                }
                Some(first) => {
                    let value = map.next_value::<FieldValue<'de>>()?;
                    for (i, f) in self.fields.iter().enumerate().skip(first) {
                        if *f == *key.0 {
                            found[i] = Some(value.clone());
                        }
                    }
                }
            }
        }
        Ok(Row::Object(found))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row<'de>, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Row::NotObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Row<'de>, E> {
        Ok(Row::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Row<'de>, E> {
        Ok(Row::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Row<'de>, E> {
        Ok(Row::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Row<'de>, E> {
        Ok(Row::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Row<'de>, E> {
        Ok(Row::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Row<'de>, E> {
        Ok(Row::NotObject)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CowStr).map(Key)
    }
}

struct CowStr;

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

impl<'de> Deserialize<'de> for FieldValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = FieldValue<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(FieldValue::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(FieldValue::Str(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(FieldValue::Str(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(FieldValue::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(FieldValue::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(FieldValue::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(FieldValue::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(FieldValue::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(FieldValue::Other("a number"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(FieldValue::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_key::<Key<'de>>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(FieldValue::Other("an object"))
    }
}

/// Any value, checked the way `Value` checks it (through
/// `deserialize_any`: serde's `IgnoredAny` skims numbers and escapes without
/// decoding them, and would accept rows `Value` rejects) and then dropped.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor).map(|_| Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What the `Value` parse gave for the same row and fields.
    fn by_value(
        text: &str,
        fields: &[String],
    ) -> Result<Option<Vec<Option<FieldValue<'static>>>>, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let Value::Object(map) = value else {
            return Ok(None);
        };
        Ok(Some(
            fields
                .iter()
                .map(|f| {
                    map.get(f).map(|v| match v {
                        Value::String(s) => FieldValue::Str(Cow::Owned(s.clone())),
                        Value::Null => FieldValue::Null,
                        Value::Bool(_) => FieldValue::Other("a boolean"),
                        Value::Number(_) => FieldValue::Other("a number"),
                        Value::Array(_) => FieldValue::Other("an array"),
                        Value::Object(_) => FieldValue::Other("an object"),
                    })
                })
                .collect(),
        ))
    }

    fn ours(
        text: &str,
        fields: &[String],
    ) -> Result<Option<Vec<Option<FieldValue<'static>>>>, String> {
        match parse(text, fields).map_err(|e| e.to_string())? {
            Row::NotObject => Ok(None),
            Row::Object(values) => Ok(Some(
                values
                    .into_iter()
                    .map(|v| {
                        v.map(|v| match v {
                            FieldValue::Str(s) => FieldValue::Str(Cow::Owned(s.into_owned())),
                            FieldValue::Null => FieldValue::Null,
                            FieldValue::Other(k) => FieldValue::Other(k),
                        })
                    })
                    .collect(),
            )),
        }
    }

    fn fields() -> Vec<String> {
        ["text", "a", "b", "a"].map(String::from).to_vec()
    }

    // Checks: SRC-13
    #[test]
    fn src_13_rows_parse_like_value() {
        let rows = [
            r#"{"text": "hi", "a": null, "b": 1}"#,
            r#"{"text": "h\u00e9\n", "a": [1, {"x": "y"}], "b": {"c": [true, false]}}"#,
            r#"{"text": "one", "text": "two", "a": 1.5e3}"#,
            r#"{"te\u0078t": "escaped key"}"#,
            r#"{"text": "x", "other": 1e400}"#,
            r#"{"text": "x", "other": "\ud800"}"#,
            r#"{"text": "x", "other": "\ud83d\ude00"}"#,
            r#"{"text": "x"} trailing"#,
            r#"{"text": "x",}"#,
            r#"{"text": 123456789012345678901234567890}"#,
            r#"[1, 2, {"text": "no"}]"#,
            r#""just a string""#,
            "null",
            "42",
            r#"{"text": "unterminated"#,
            r#"{"a": 1, "b": [1, 2"#,
            r#"{"text": "x", "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
            "{}",
            "",
        ];
        for row in rows {
            assert_eq!(ours(row, &fields()), by_value(row, &fields()), "{row}");
        }
    }

    proptest::proptest! {
        // Checks: SRC-13
        #[test]
        fn src_13_any_line_parses_like_value(
            line in proptest::prop_oneof![
                proptest::string::string_regex(r#"[{}\[\]",:a-c0-9 .eE+\-\\u]{0,40}"#).unwrap(),
                proptest::string::string_regex(r#"\{"(text|a|b|c)": ("[a-z\\]{0,6}"|null|[0-9]{1,3}|true|\[\]|\{\})(, "(text|a|b|c)": ("[a-z\\]{0,6}"|null|-?[0-9]{1,3}|true|\[1\]|\{"a":1\}))*\}"#).unwrap(),
            ]
        ) {
            proptest::prop_assert_eq!(ours(&line, &fields()), by_value(&line, &fields()));
        }
    }
}
