//! Bluetooth UUIDs: parsing of the 16-bit, 32-bit and 128-bit forms, canonical
//! printing, and the short form when a UUID sits on the Bluetooth Base UUID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The Bluetooth Base UUID `00000000-0000-1000-8000-00805f9b34fb`; SIG-assigned
/// 16- and 32-bit UUIDs are offsets into its first 32 bits.
const BASE: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;
const BASE_MASK: u128 = 0x0000_0000_ffff_ffff_ffff_ffff_ffff_ffff;

/// A Bluetooth attribute UUID (service, characteristic or descriptor).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(uuid::Uuid);

/// Why a string is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UUID {input:?}: expected 16-bit (180d), 32-bit (0000180d) or 128-bit (0000180d-0000-1000-8000-00805f9b34fb) hex")]
pub struct UuidParseError {
    /// The rejected text, so the message tells the caller what they sent.
    pub input: String,
}

impl Uuid {
    /// A SIG-assigned 16-bit UUID on the Bluetooth Base UUID.
    pub const fn from_u16(short: u16) -> Self {
        Self::from_u32(short as u32)
    }

    /// A 32-bit UUID on the Bluetooth Base UUID.
    pub const fn from_u32(short: u32) -> Self {
        Uuid(uuid::Uuid::from_u128(BASE | ((short as u128) << 96)))
    }

    /// A full 128-bit UUID.
    pub const fn from_u128(v: u128) -> Self {
        Uuid(uuid::Uuid::from_u128(v))
    }

    pub fn as_u128(&self) -> u128 {
        self.0.as_u128()
    }

    /// The 16-bit form when this UUID is a SIG 16-bit UUID.
    pub fn as_u16(&self) -> Option<u16> {
        self.as_u32().and_then(|v| u16::try_from(v).ok())
    }

    /// The 32-bit form when this UUID sits on the Bluetooth Base UUID.
    pub fn as_u32(&self) -> Option<u32> {
        let v = self.0.as_u128();
        (v & BASE_MASK == BASE).then_some((v >> 96) as u32)
    }

    /// The shortest form: `180d`, `0000fe2c`-style 32-bit, or the full form.
    pub fn short(&self) -> String {
        match (self.as_u16(), self.as_u32()) {
            (Some(v), _) => format!("{v:04x}"),
            (None, Some(v)) => format!("{v:08x}"),
            _ => self.to_string(),
        }
    }

    /// The standard name for SIG UUIDs gattway knows, e.g. "Heart Rate".
    pub fn name(&self) -> Option<&'static str> {
        super::names::name_of(*self)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl From<uuid::Uuid> for Uuid {
    fn from(u: uuid::Uuid) -> Self {
        Uuid(u)
    }
}

impl FromStr for Uuid {
    type Err = UuidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UuidParseError { input: s.to_string() };
        let t = s.trim();
        let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
        let is_hex = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_hexdigit());
        match t.len() {
            4 if is_hex(t) => u16::from_str_radix(t, 16).map(Uuid::from_u16).map_err(|_| err()),
            8 if is_hex(t) => u32::from_str_radix(t, 16).map(Uuid::from_u32).map_err(|_| err()),
            32 | 36 => uuid::Uuid::parse_str(t).map(Uuid).map_err(|_| err()),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({})", self.short())
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_to_the_same_uuid() {
        let long: Uuid = "0000180d-0000-1000-8000-00805f9b34fb".parse().unwrap();
        assert_eq!("180d".parse::<Uuid>().unwrap(), long);
        assert_eq!("180D".parse::<Uuid>().unwrap(), long);
        assert_eq!("0x180d".parse::<Uuid>().unwrap(), long);
        assert_eq!("0000180d".parse::<Uuid>().unwrap(), long);
        assert_eq!("0000180d00001000800000805f9b34fb".parse::<Uuid>().unwrap(), long);
        assert_eq!(long.to_string(), "0000180d-0000-1000-8000-00805f9b34fb");
        assert_eq!(long.short(), "180d");
        assert_eq!(long.as_u16(), Some(0x180d));
    }

    #[test]
    fn vendor_uuids_keep_their_long_form() {
        let nus: Uuid = "6E400001-B5A3-F393-E0A9-E50E24DCCA9E".parse().unwrap();
        assert_eq!(nus.to_string(), "6e400001-b5a3-f393-e0a9-e50e24dcca9e");
        assert_eq!(nus.short(), nus.to_string());
        assert_eq!(nus.as_u16(), None);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "18d",
            "zzzz",
            "180d0",
            "not-a-uuid",
            "0000180d-0000-1000-8000-00805f9b34fg",
        ] {
            assert!(bad.parse::<Uuid>().is_err(), "{bad:?} parsed");
        }
    }
}
