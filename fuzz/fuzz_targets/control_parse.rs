//! The control WebSocket's parser (`/ws`): any text a client sends is a request
//! or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match gattway::control::protocol::parse(text) {
            Ok(req) => {
                let _ = req.message.scope();
            }
            Err((id, f)) => {
                let _ = gattway::control::protocol::error(&id, &f);
            }
        }
    }
});
