//! Names as the API writes them. ESPHome names a device by its 48-bit address as
//! an integer, gattway by the colon-separated MAC; devices without a MAC (macOS
//! gives UUIDs) have no address and cannot be served through the API. A UUID is two
//! u64 halves, or a 16/32-bit short form.

use crate::ble::{DeviceId, Uuid};

/// `C0:FF:EE:00:00:06` → 0xC0FFEE000006; `None` for an id that is not a MAC.
pub fn address_of(id: &DeviceId) -> Option<u64> {
    let mac = id.mac()?;
    Some(mac.iter().fold(0, |n, b| (n << 8) | u64::from(*b)))
}

/// 0xC0FFEE000006 → `C0:FF:EE:00:00:06`.
pub fn device_id_of(address: u64) -> DeviceId {
    let b = address.to_be_bytes();
    DeviceId::new(format!(
        "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    ))
}

/// A UUID as the API carries it: the high and low 64 bits.
pub fn split_uuid(uuid: Uuid) -> Vec<u64> {
    let v = uuid.as_u128();
    vec![(v >> 64) as u64, v as u64]
}

/// A UUID from the API's two halves (missing halves are zero), or its short form
/// when one is given.
pub fn join_uuid(halves: &[u64], short: u32) -> Uuid {
    if short != 0 {
        return Uuid::from_u32(short);
    }
    let high = halves.first().copied().unwrap_or(0);
    let low = halves.get(1).copied().unwrap_or(0);
    Uuid::from_u128((u128::from(high) << 64) | u128::from(low))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_other_ids_have_no_address() {
        let id = DeviceId::new("C0:FF:EE:00:00:06");
        assert_eq!(address_of(&id), Some(0xC0FF_EE00_0006));
        assert_eq!(device_id_of(0xC0FF_EE00_0006), id);
        assert_eq!(
            address_of(&DeviceId::new("c0:ff:ee:00:00:06")),
            Some(0xC0FF_EE00_0006)
        );
        assert_eq!(
            address_of(&DeviceId::new("6F1A2B3C-0000-1000-8000-00805F9B34FB")),
            None
        );
        assert_eq!(address_of(&DeviceId::new("C0:FF:EE:00:00")), None);
        assert_eq!(address_of(&DeviceId::new("C0:FF:EE:00:00:06:07")), None);
        assert_eq!(
            address_of(&DeviceId::new("+0:FF:EE:00:00:06")),
            None,
            "hex digits only"
        );
    }

    #[test]
    fn uuids_split_and_join() {
        let nus: Uuid = "6e400001-b5a3-f393-e0a9-e50e24dcca9e".parse().unwrap();
        assert_eq!(join_uuid(&split_uuid(nus), 0), nus);
        assert_eq!(join_uuid(&[], 0x2a37), Uuid::from_u16(0x2a37));
        assert_eq!(
            join_uuid(&split_uuid(Uuid::from_u16(0x180d)), 0),
            Uuid::from_u16(0x180d)
        );
    }
}
