//! The bridge's parsers: client frames (and a `data` frame's bytes), and the query
//! string a socket opens with.
#![no_main]

use std::collections::HashMap;

use gattway::bridge::protocol::{data_bytes, parse_client, ClientMessage, ConnectParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ClientMessage::Data { data }) = parse_client(text) {
        let _ = data_bytes(&data);
    }
    let query: HashMap<String, String> = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = ConnectParams::from_query(&query);
});
