//! Arguments as MCP clients really send them. Several clients (and the models
//! behind them) send numbers and booleans as strings (`"5"`, `"false"`) and
//! booleans as `1`/`0`; a strict parser answers those with "failed to deserialize
//! parameters" and the assistant gives up. The fields keep their typed JSON Schema
//! (what the tools advertise); these deserializers also take the other shapes.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An optional number: a JSON number, or a string holding one (`"5"`, `" -70 "`,
/// `"1.5"`). An integer field also takes a whole float (`5.0`). `null` and `""`
/// are absent.
pub fn number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + DeserializeOwned,
    T::Err: Display,
{
    let text = match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => match n.as_f64() {
            // 5.0 for an integer field: its integer text parses where "5.0" would not.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Some(other) => return Err(D::Error::custom(format!("expected a number, got {other}"))),
    };
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{text:?} is not a valid number here: {e}")))
}

/// An optional boolean: `true`/`false`, the strings `"true"`/`"false"` (any case),
/// `1`/`0` and `"1"`/`"0"`. `null` and `""` are absent.
pub fn boolean<'de, D>(d: D) -> Result<Option<bool>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let as_text = match &value {
        Value::Bool(b) => return Ok(Some(*b)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        other => other.to_string(),
    };
    match as_text.as_str() {
        "" => Ok(None),
        "true" | "1" | "yes" => Ok(Some(true)),
        "false" | "0" | "no" => Ok(Some(false)),
        _ => Err(D::Error::custom(format!("expected true or false, got {value}"))),
    }
}

/// An optional list of strings: a JSON array, or one string (`"180d"`, or
/// `"180d, 180f"` comma-separated).
pub fn string_list<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(D::Error::custom(format!(
                    "expected a list of strings, got {other} in it"
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(D::Error::custom(format!(
            "expected a list of strings, got {other}"
        ))),
    }
}

/// An optional JSON object, or a string holding one (some clients send nested
/// objects as JSON text).
pub fn object<'de, D>(d: D) -> Result<Option<serde_json::Map<String, Value>>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            _ => Err(D::Error::custom(format!(
                "expected an object, got the text {s:?}"
            ))),
        },
        Some(other) => Err(D::Error::custom(format!("expected an object, got {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct P {
        #[serde(default, deserialize_with = "super::number")]
        f: Option<f64>,
        #[serde(default, deserialize_with = "super::number")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "super::number")]
        i: Option<i16>,
        #[serde(default, deserialize_with = "super::boolean")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "super::string_list")]
        l: Option<Vec<String>>,
    }

    fn p(json: &str) -> Result<P, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_come_as_numbers_strings_and_whole_floats() {
        let v = p(r#"{"f": "1.5", "n": "7", "i": " -70 "}"#).unwrap();
        assert_eq!((v.f, v.n, v.i), (Some(1.5), Some(7), Some(-70)));
        let v = p(r#"{"f": 2, "n": 5.0, "i": -3}"#).unwrap();
        assert_eq!((v.f, v.n, v.i), (Some(2.0), Some(5), Some(-3)));
        let v = p(r#"{"f": null, "n": ""}"#).unwrap();
        assert_eq!((v.f, v.n, v.i), (None, None, None));
        assert!(p(r#"{"n": "five"}"#)
            .unwrap_err()
            .contains("\"five\" is not a valid number"));
        assert!(p(r#"{"n": 5.5}"#).is_err());
        assert!(p(r#"{"n": -1}"#).is_err());
        assert!(p(r#"{"i": 40000}"#).is_err());
        assert!(p(r#"{"f": true}"#).unwrap_err().contains("expected a number"));
    }

    #[test]
    fn booleans_come_as_booleans_strings_and_ones_and_zeros() {
        for (json, want) in [
            ("true", true),
            ("false", false),
            ("\"false\"", false),
            ("\"TRUE\"", true),
            ("1", true),
            ("0", false),
            ("\"0\"", false),
        ] {
            assert_eq!(p(&format!(r#"{{"b": {json}}}"#)).unwrap().b, Some(want), "{json}");
        }
        assert!(p(r#"{"b": "maybe"}"#)
            .unwrap_err()
            .contains("expected true or false"));
        assert!(p(r#"{"b": 2}"#).is_err());
    }

    #[test]
    fn lists_come_as_arrays_or_one_string() {
        assert_eq!(p(r#"{"l": ["180d"]}"#).unwrap().l.unwrap(), ["180d"]);
        assert_eq!(p(r#"{"l": "180d, 180f"}"#).unwrap().l.unwrap(), ["180d", "180f"]);
        assert!(p(r#"{"l": [1]}"#).is_err());
    }
}
