//! The bridge's parsers: client frames, and the query string a socket opens with.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gattway::bridge::protocol::parse_client(text);
    let query: HashMap<String, String> = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = gattway::bridge::protocol::ConnectParams::from_query(&query);
});
