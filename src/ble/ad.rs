//! Advertising data as it is on the air (Core Spec Supplement, Part A): a run of
//! `length, type, data` structures. Remote radios (ESPHome proxies) pass adverts
//! this way, so a proxy server writes them and a proxy client reads them.

use std::collections::BTreeMap;

use super::{Advertisement, DeviceId, Uuid};

const FLAGS: u8 = 0x01;
const UUID16_INCOMPLETE: u8 = 0x02;
const UUID16_COMPLETE: u8 = 0x03;
const UUID32_INCOMPLETE: u8 = 0x04;
const UUID32_COMPLETE: u8 = 0x05;
const UUID128_INCOMPLETE: u8 = 0x06;
const UUID128_COMPLETE: u8 = 0x07;
const NAME_SHORT: u8 = 0x08;
const NAME_COMPLETE: u8 = 0x09;
const TX_POWER: u8 = 0x0a;
const SERVICE_DATA16: u8 = 0x16;
const SERVICE_DATA32: u8 = 0x20;
const SERVICE_DATA128: u8 = 0x21;
const MANUFACTURER: u8 = 0xff;
/// LE General Discoverable, BR/EDR not supported.
const FLAGS_LE_GENERAL: u8 = 0x06;

/// The advertisement as AD structures. Fields longer than a structure holds (254
/// bytes) are cut there.
pub fn encode(adv: &Advertisement) -> Vec<u8> {
    let mut out = Vec::with_capacity(31);
    push(&mut out, FLAGS, &[FLAGS_LE_GENERAL]);
    if let Some(name) = &adv.name {
        push(&mut out, NAME_COMPLETE, name.as_bytes());
    }
    if let Some(tx) = adv.tx_power {
        push(&mut out, TX_POWER, &[tx.clamp(-127, 127) as i8 as u8]);
    }
    let (mut u16s, mut u32s, mut u128s) = (Vec::new(), Vec::new(), Vec::new());
    for s in &adv.services {
        let bytes = short_form(*s);
        match bytes.len() {
            2 => u16s.extend(bytes),
            4 => u32s.extend(bytes),
            _ => u128s.extend(bytes),
        }
    }
    for (kind, list) in [
        (UUID16_COMPLETE, u16s),
        (UUID32_COMPLETE, u32s),
        (UUID128_COMPLETE, u128s),
    ] {
        if !list.is_empty() {
            push(&mut out, kind, &list);
        }
    }
    for (uuid, data) in &adv.service_data {
        let mut field = short_form(*uuid);
        let kind = match field.len() {
            2 => SERVICE_DATA16,
            4 => SERVICE_DATA32,
            _ => SERVICE_DATA128,
        };
        field.extend_from_slice(data);
        push(&mut out, kind, &field);
    }
    for (company, data) in &adv.manufacturer_data {
        let mut field = company.to_le_bytes().to_vec();
        field.extend_from_slice(data);
        push(&mut out, MANUFACTURER, &field);
    }
    out
}

/// An advertisement from AD structures. A structure that runs past the end, and
/// types gattway does not use, are ignored: radios pass on what they hear.
pub fn decode(id: DeviceId, rssi: i16, data: &[u8]) -> Advertisement {
    let mut adv = Advertisement {
        id,
        name: None,
        rssi,
        tx_power: None,
        services: Vec::new(),
        manufacturer_data: BTreeMap::new(),
        service_data: BTreeMap::new(),
    };
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || tail.len() < len {
            break;
        }
        let (kind, value) = (tail[0], &tail[1..len]);
        rest = &tail[len..];
        match kind {
            NAME_COMPLETE => adv.name = Some(String::from_utf8_lossy(value).into_owned()),
            NAME_SHORT if adv.name.is_none() => adv.name = Some(String::from_utf8_lossy(value).into_owned()),
            TX_POWER => adv.tx_power = value.first().map(|&b| i16::from(b as i8)),
            UUID16_INCOMPLETE | UUID16_COMPLETE => adv.services.extend(value.chunks_exact(2).map(uuid_of)),
            UUID32_INCOMPLETE | UUID32_COMPLETE => adv.services.extend(value.chunks_exact(4).map(uuid_of)),
            UUID128_INCOMPLETE | UUID128_COMPLETE => adv.services.extend(value.chunks_exact(16).map(uuid_of)),
            SERVICE_DATA16 | SERVICE_DATA32 | SERVICE_DATA128 => {
                let n = match kind {
                    SERVICE_DATA16 => 2,
                    SERVICE_DATA32 => 4,
                    _ => 16,
                };
                if value.len() >= n {
                    adv.service_data.insert(uuid_of(&value[..n]), value[n..].to_vec());
                }
            }
            MANUFACTURER if value.len() >= 2 => {
                adv.manufacturer_data
                    .insert(u16::from_le_bytes([value[0], value[1]]), value[2..].to_vec());
            }
            _ => {}
        }
    }
    adv
}

fn push(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    let value = &value[..value.len().min(254)];
    out.push(value.len() as u8 + 1);
    out.push(kind);
    out.extend_from_slice(value);
}

/// The shortest form of a UUID on the air, little-endian.
fn short_form(uuid: Uuid) -> Vec<u8> {
    if let Some(v) = uuid.as_u16() {
        v.to_le_bytes().to_vec()
    } else if let Some(v) = uuid.as_u32() {
        v.to_le_bytes().to_vec()
    } else {
        uuid.as_u128().to_le_bytes().to_vec()
    }
}

/// A little-endian UUID of 2, 4 or 16 bytes (callers pass only those lengths).
fn uuid_of(b: &[u8]) -> Uuid {
    match b.len() {
        2 => Uuid::from_u16(u16::from_le_bytes([b[0], b[1]])),
        4 => Uuid::from_u32(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        _ => {
            let mut le = [0u8; 16];
            le.copy_from_slice(&b[..16]);
            Uuid::from_u128(u128::from_le_bytes(le))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advert_survives_the_air() {
        let adv = Advertisement {
            id: DeviceId::new("C0:FF:EE:00:00:06"),
            name: Some("Gattway BTHome".into()),
            rssi: -61,
            tx_power: Some(-4),
            services: vec![
                Uuid::from_u16(0x180d),
                Uuid::from_u32(0x1234_5678),
                "6e400001-b5a3-f393-e0a9-e50e24dcca9e".parse().unwrap(),
            ],
            manufacturer_data: BTreeMap::from([(0x004c, vec![0x02, 0x15, 0xaa])]),
            service_data: BTreeMap::from([(Uuid::from_u16(0xfcd2), vec![0x40, 0x02, 0x0c, 0x0a])]),
        };
        let bytes = encode(&adv);
        assert_eq!(decode(adv.id.clone(), -61, &bytes), adv);
        // BTHome's service data as it is on the air: 16-bit UUID little-endian.
        let sd = [0x07, 0x16, 0xd2, 0xfc, 0x40, 0x02, 0x0c, 0x0a];
        assert!(bytes.windows(sd.len()).any(|w| w == sd), "{bytes:02x?}");
    }

    #[test]
    fn truncated_and_unknown_structures_are_skipped() {
        let id = DeviceId::new("AA:BB:CC:DD:EE:FF");
        // A flags structure, an unknown type (0x2a), then one that runs past the end.
        let adv = decode(id, -70, &[0x02, 0x01, 0x06, 0x02, 0x2a, 0x00, 0x05, 0x09, b'a']);
        assert_eq!(adv.name, None);
        assert!(adv.services.is_empty());
    }
}
