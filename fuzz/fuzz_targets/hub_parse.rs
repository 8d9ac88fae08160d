//! The hub's parser (`/hub`): devices and clients send any text; each is a
//! message or a typed error.
#![no_main]

use gattway::hub_api::message::{ClientMessage, DeviceMessage, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(envelope) = Envelope::parse(text.to_string()) {
            let _ = DeviceMessage::read(&envelope);
            let _ = ClientMessage::read(&envelope);
        }
    }
});
