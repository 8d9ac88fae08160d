//! The SIG value decoders (what a characteristic's ATT value means): any bytes
//! from any device, under any of the UUIDs they know, decode or are refused.
#![no_main]

use gattway::ble::decode::decode;
use gattway::ble::Uuid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, value)) = data.split_first_chunk::<2>() else {
        return;
    };
    // The first two bytes pick a 16-bit UUID; the known ones sit at 0x2A00..0x2AFF.
    let short = 0x2A00 | u16::from(head[1]);
    let uuid = if head[0] & 1 == 0 {
        Uuid::from_u16(short)
    } else {
        Uuid::from_u16(u16::from_le_bytes(*head))
    };
    if let Some(d) = decode(uuid, value) {
        let _ = serde_json::to_string(&d);
    }
});
