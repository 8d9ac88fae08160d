//! Text arguments every front end takes from users: UUIDs in any form, and the
//! packet log's filters and times.
#![no_main]

use gattway::ble::Uuid;
use gattway::gateway::packet_log::{hex_pattern, Filter, Since};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = text.parse::<Uuid>() {
        // What parses prints, and prints back to the same UUID.
        assert_eq!(u.to_string().parse::<Uuid>().ok(), Some(u));
    }
    let _ = Filter::parse(text);
    let _ = Since::parse(text);
    let _ = hex_pattern(text);
});
