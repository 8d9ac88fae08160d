//! The hub's `gattway.cbor` decoder: any binary message is a message or a typed
//! error, and whatever decodes encodes back to the same message.
#![no_main]

use gattway::hub::cbor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gattway::hub::protocol::Incoming::parse_cbor(data);
    if let Ok(message) = cbor::decode(data) {
        assert_eq!(cbor::decode(&cbor::encode(&message)).ok(), Some(message));
    }
});
