//! The bytes of a profile's commands: request templates with typed parameters,
//! answer patterns, fields parsed out of answers, and the frame rules (a length
//! byte, a CRC) a device's protocol has.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ProfileError;
use crate::ble::crc::crc16_ccitt_false;

/// How a parameter or a field is laid out in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    U8,
    I8,
    U16le,
    U16be,
    I16le,
    I16be,
    U32le,
    U32be,
    I32le,
    I32be,
    /// UTF-8 text; in answers, trailing NULs are dropped.
    Utf8,
    /// Raw bytes, as hex.
    Hex,
}

impl FieldType {
    /// The width of an integer type; `None` for text and bytes (variable).
    pub fn width(self) -> Option<usize> {
        use FieldType::*;
        match self {
            U8 | I8 => Some(1),
            U16le | U16be | I16le | I16be => Some(2),
            U32le | U32be | I32le | I32be => Some(4),
            Utf8 | Hex => None,
        }
    }

    /// The range an integer of this type holds.
    fn range(self) -> (i64, i64) {
        use FieldType::*;
        match self {
            U8 => (0, u8::MAX as i64),
            I8 => (i8::MIN as i64, i8::MAX as i64),
            U16le | U16be => (0, u16::MAX as i64),
            I16le | I16be => (i16::MIN as i64, i16::MAX as i64),
            U32le | U32be => (0, u32::MAX as i64),
            I32le | I32be => (i32::MIN as i64, i32::MAX as i64),
            Utf8 | Hex => (0, 0),
        }
    }

    fn big_endian(self) -> bool {
        use FieldType::*;
        matches!(self, U16be | I16be | U32be | I32be)
    }

    fn signed(self) -> bool {
        use FieldType::*;
        matches!(self, I8 | I16le | I16be | I32le | I32be)
    }

    /// An integer in this type's bytes (the caller checked the range).
    fn encode_int(self, v: i64) -> Vec<u8> {
        let width = self.width().unwrap_or(0);
        let le = v.to_le_bytes();
        let mut bytes = le[..width].to_vec();
        if self.big_endian() {
            bytes.reverse();
        }
        bytes
    }

    /// The integer in `bytes` (exactly this type's width).
    fn decode_int(self, bytes: &[u8]) -> i64 {
        let mut le: Vec<u8> = bytes.to_vec();
        if self.big_endian() {
            le.reverse();
        }
        let mut v: u64 = 0;
        for (i, b) in le.iter().enumerate() {
            v |= (*b as u64) << (8 * i);
        }
        let bits = 8 * le.len() as u32;
        if self.signed() && bits < 64 && v & (1 << (bits - 1)) != 0 {
            (v | (u64::MAX << bits)) as i64
        } else {
            v as i64
        }
    }
}

/// An answer pattern: hex bytes, `??` for any byte. It matches an answer that
/// begins with it. Parsed once, when the profile is read, and written back as the
/// text it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    text: String,
    bytes: Vec<Option<u8>>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bytes = Vec::new();
        for token in hex_tokens(text)? {
            bytes.push(match token.as_str() {
                "??" => None,
                t => Some(u8::from_str_radix(t, 16).map_err(|_| format!("{t:?} is not a hex byte"))?),
            });
        }
        Ok(Pattern {
            text: text.to_string(),
            bytes,
        })
    }

    pub fn matches(&self, frame: &[u8]) -> bool {
        frame.len() >= self.bytes.len()
            && self
                .bytes
                .iter()
                .zip(frame)
                .all(|(p, b)| p.is_none_or(|p| p == *b))
    }
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Pattern::parse(&text)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.text
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Hex text split into two-digit tokens (`??` kept for patterns): spaces are
/// optional between bytes.
fn hex_tokens(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        // Checked before it is cut in twos: a byte index in the middle of a
        // multi-byte character would panic. (`?` is a pattern's wildcard.)
        if let Some(c) = word.chars().find(|c| !(c.is_ascii_hexdigit() || *c == '?')) {
            return Err(format!("{word:?} is not a hex byte: it holds {c:?}"));
        }
        if word.len() % 2 != 0 {
            return Err(format!("{word:?} has an odd number of hex digits"));
        }
        for i in (0..word.len()).step_by(2) {
            tokens.push(word[i..i + 2].to_ascii_lowercase());
        }
    }
    Ok(tokens)
}

/// A command's typed parameter, filled into `{name}` in the request template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    /// Used when the caller leaves the parameter out.
    #[serde(default)]
    pub default: Option<toml::Value>,
}

/// A named value parsed out of an answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    /// Byte offset in the answer.
    pub at: usize,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Bytes of a `utf8` or `hex` field (default: to the end).
    #[serde(default)]
    pub len: Option<usize>,
    /// The raw integer is multiplied by this.
    #[serde(default)]
    pub scale: Option<f64>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub description: String,
}

impl Field {
    /// This field's value in `answer`, or why it is not there.
    pub fn read(&self, answer: &[u8]) -> Result<Value, String> {
        let end = match (self.kind.width(), self.len) {
            (Some(w), _) => self.at + w,
            (None, Some(len)) => self.at + len,
            (None, None) => answer.len().max(self.at),
        };
        let bytes = answer.get(self.at..end).ok_or_else(|| {
            format!(
                "field {} needs bytes {}..{} but the answer has {}",
                self.name,
                self.at,
                end,
                answer.len()
            )
        })?;
        Ok(match self.kind {
            FieldType::Utf8 => Value::from(String::from_utf8_lossy(bytes).trim_end_matches('\0').to_string()),
            FieldType::Hex => Value::from(hex::encode(bytes)),
            kind => {
                let raw = kind.decode_int(bytes);
                match self.scale {
                    Some(scale) => Value::from(raw as f64 * scale),
                    None => Value::from(raw),
                }
            }
        })
    }
}

/// Reads every field of `fields` from `answer` as `{name: {value, unit}}`.
pub fn read_fields(fields: &[Field], answer: &[u8]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for f in fields {
        let mut entry = Map::new();
        entry.insert("value".into(), f.read(answer)?);
        if let Some(unit) = &f.unit {
            entry.insert("unit".into(), Value::from(unit.clone()));
        }
        out.insert(f.name.clone(), Value::Object(entry));
    }
    Ok(out)
}

/// The frame rules of a device's protocol.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameRules {
    /// A length byte: set in requests, checked in answers.
    #[serde(default)]
    pub length: Option<LengthRule>,
    /// A CRC: checked in answers (and set in requests when `in_requests`).
    #[serde(default)]
    pub crc: Option<CrcRule>,
}

/// The byte at `at` holds the frame's length minus `counts_from`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthRule {
    pub at: usize,
    pub counts_from: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrcRule {
    /// Only `crc16-ccitt-false` (poly 0x1021, init 0xFFFF), big-endian.
    pub kind: CrcKind,
    /// Where the two CRC bytes sit.
    pub at: usize,
    /// The CRC covers the frame from here to its end.
    pub from: usize,
    #[serde(default)]
    pub in_requests: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrcKind {
    Crc16CcittFalse,
}

impl FrameRules {
    /// Sets the length byte and, when asked, the CRC of a request.
    pub fn finish_request(&self, frame: &mut [u8]) -> Result<(), ProfileError> {
        if let Some(rule) = &self.length {
            let len = frame.len().checked_sub(rule.counts_from).filter(|l| *l <= 255);
            match (frame.get_mut(rule.at), len) {
                (Some(byte), Some(len)) => *byte = len as u8,
                _ => {
                    return Err(ProfileError::Frame(
                        "the request is too short or too long for its length byte".into(),
                    ))
                }
            }
        }
        if let Some(rule) = self.crc.as_ref().filter(|r| r.in_requests) {
            let crc = crc16_ccitt_false(frame.get(rule.from..).unwrap_or_default());
            let Some(slot) = frame.get_mut(rule.at..rule.at + 2) else {
                return Err(ProfileError::Frame("the request is too short for its CRC".into()));
            };
            slot.copy_from_slice(&crc.to_be_bytes());
        }
        Ok(())
    }

    /// Why an answer breaks the frame rules, if it does.
    pub fn check_answer(&self, frame: &[u8]) -> Result<(), String> {
        if let Some(rule) = &self.length {
            let said = frame.get(rule.at).copied().unwrap_or_default() as usize;
            if frame.len() != said + rule.counts_from {
                return Err(format!(
                    "its length byte says {} bytes but it has {}",
                    said + rule.counts_from,
                    frame.len()
                ));
            }
        }
        if let Some(rule) = &self.crc {
            let want = frame
                .get(rule.at..rule.at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]));
            let got = crc16_ccitt_false(frame.get(rule.from..).unwrap_or_default());
            if want != Some(got) {
                return Err(format!("its CRC is wrong (computed {got:04x})"));
            }
        }
        Ok(())
    }
}

/// A request template: hex bytes and `{param}` placeholders.
pub fn build_request(
    template: &str,
    params: &[Param],
    given: &Map<String, Value>,
) -> Result<Vec<u8>, ProfileError> {
    for name in given.keys() {
        if !params.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            return Err(ProfileError::Param(format!(
                "unknown parameter {name:?}; this command takes {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.extend(hex_bytes(&rest[..open])?);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| ProfileError::Invalid(format!("unclosed {{ in request {template:?}")))?;
        let name = &rest[open + 1..open + close];
        let param = params.iter().find(|p| p.name == name).ok_or_else(|| {
            ProfileError::Invalid(format!(
                "request {template:?} names {{{name}}}, which is no parameter"
            ))
        })?;
        let value = given
            .get(name)
            .cloned()
            .or_else(|| param.default.as_ref().and_then(|d| serde_json::to_value(d).ok()))
            .ok_or_else(|| {
                ProfileError::Param(format!("parameter {name:?} is required: {}", param.description))
            })?;
        out.extend(encode_param(param, &value)?);
        rest = &rest[open + close + 1..];
    }
    out.extend(hex_bytes(rest)?);
    Ok(out)
}

fn hex_bytes(text: &str) -> Result<Vec<u8>, ProfileError> {
    hex_tokens(text)
        .and_then(|tokens| {
            tokens
                .iter()
                .map(|t| u8::from_str_radix(t, 16).map_err(|_| format!("{t:?} is not a hex byte")))
                .collect()
        })
        .map_err(ProfileError::Invalid)
}

/// One parameter's bytes. Numbers may come as strings ("300"), as clients send them.
fn encode_param(param: &Param, value: &Value) -> Result<Vec<u8>, ProfileError> {
    let bad = |why: String| ProfileError::Param(format!("parameter {:?}: {why}", param.name));
    match param.kind {
        FieldType::Utf8 => match value {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            other => Ok(other.to_string().into_bytes()),
        },
        FieldType::Hex => {
            let text = value.as_str().ok_or_else(|| bad("give hex text".into()))?;
            hex_bytes(text).map_err(|_| bad(format!("{text:?} is not hex")))
        }
        kind => {
            let n = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => {
                    let s = s.trim();
                    match s.strip_prefix("0x") {
                        Some(hex) => i64::from_str_radix(hex, 16).ok(),
                        None => s.parse().ok(),
                    }
                }
                _ => None,
            }
            .ok_or_else(|| bad(format!("{value} is not a whole number")))?;
            let (lo, hi) = kind.range();
            let lo = param.min.unwrap_or(lo).max(lo);
            let hi = param.max.unwrap_or(hi).min(hi);
            if n < lo || n > hi {
                return Err(bad(format!("{n} is outside {lo}..={hi}")));
            }
            Ok(kind.encode_int(n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, kind: FieldType) -> Param {
        Param {
            name: name.into(),
            kind,
            description: String::new(),
            unit: None,
            min: None,
            max: None,
            default: None,
        }
    }

    #[test]
    fn requests_fill_typed_parameters_and_frame_rules() {
        let params = [param("reg", FieldType::U16le), param("value", FieldType::U32le)];
        let given: Map<String, Value> = serde_json::from_str(r#"{"reg": "0xF000", "value": 15}"#).unwrap();
        let mut frame =
            build_request("A7 B3 00 C2 82 37 0000 8002 70 01 {reg} {value}", &params, &given).unwrap();
        FrameRules {
            length: Some(LengthRule {
                at: 2,
                counts_from: 8,
            }),
            crc: None,
        }
        .finish_request(&mut frame)
        .unwrap();
        assert_eq!(hex::encode(&frame), "a7b30ac2823700008002700100f00f000000");
        let missing = build_request("{reg}", &params, &Map::new()).unwrap_err();
        assert!(missing.to_string().contains("\"reg\" is required"), "{missing}");
        let too_big: Map<String, Value> = serde_json::from_str(r#"{"reg": 70000}"#).unwrap();
        assert!(build_request("{reg}", &params, &too_big).is_err());
        let unknown: Map<String, Value> = serde_json::from_str(r#"{"power": 1}"#).unwrap();
        assert!(build_request("{reg}", &params, &unknown)
            .unwrap_err()
            .to_string()
            .contains("this command takes reg, value"));
    }

    #[test]
    fn answers_match_patterns_and_yield_fields() {
        let answer = hex::decode("a7b304d9829e1234a0000ff0").unwrap();
        assert!(Pattern::parse("A7 B3 ?? D9 82 9E ?? ?? A0 00")
            .unwrap()
            .matches(&answer));
        assert!(!Pattern::parse("A7 B3 ?? D9 82 9E ?? ?? A1 01")
            .unwrap()
            .matches(&answer));
        let mut volts = Field {
            name: "battery".into(),
            at: 10,
            kind: FieldType::U16be,
            len: None,
            scale: None,
            unit: Some("mV".into()),
            description: String::new(),
        };
        assert_eq!(volts.read(&answer).unwrap(), Value::from(4080));
        volts.scale = Some(0.001);
        assert_eq!(volts.read(&answer).unwrap(), Value::from(4.08));
        volts.at = 11;
        assert!(volts.read(&answer).unwrap_err().contains("needs bytes 11..13"));
        assert_eq!(FieldType::I16le.decode_int(&[0xFE, 0xFF]), -2);
        assert_eq!(FieldType::I8.encode_int(-2), vec![0xFE]);
    }

    #[test]
    fn answers_are_checked_against_length_and_crc() {
        let rules = FrameRules {
            length: Some(LengthRule {
                at: 2,
                counts_from: 8,
            }),
            crc: Some(CrcRule {
                kind: CrcKind::Crc16CcittFalse,
                at: 6,
                from: 8,
                in_requests: false,
            }),
        };
        let mut frame = vec![0xA7, 0xB3, 0x04, 0xD9, 0x82, 0x9E, 0, 0, 0xA0, 0x00, 0x0F, 0xF0];
        let crc = crc16_ccitt_false(&frame[8..]);
        frame[6..8].copy_from_slice(&crc.to_be_bytes());
        rules.check_answer(&frame).unwrap();
        frame[11] ^= 1;
        assert!(rules.check_answer(&frame).unwrap_err().contains("CRC"));
        assert!(rules.check_answer(&frame[..11]).unwrap_err().contains("length"));
    }
}
