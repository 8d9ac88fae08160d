//! The hub's parser (`/hub`): devices and clients send any text; each is a
//! message or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gattway::hub::protocol::Incoming::parse(text);
    }
});
