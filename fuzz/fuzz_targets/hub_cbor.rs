//! The hub's `gattway.cbor` decoder: any binary message is a message or a typed
//! error, and whatever decodes encodes back to the same message.
#![no_main]

use gattway::hub_api::cbor;
use gattway::hub_api::message::{ClientMessage, DeviceMessage, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse_cbor(data) {
        let _ = DeviceMessage::read(&envelope);
        let _ = ClientMessage::read(&envelope);
    }
    if let Ok(message) = cbor::decode(data) {
        assert_eq!(cbor::decode(&cbor::encode(&message)).ok(), Some(message));
    }
});
