//! A remote radio: an ESPHome Bluetooth proxy (an ESP32, or another gattway serving
//! `esphome.listen`), reached over the ESPHome native API.
//!
//! - `api/`: the protocol itself, which the proxy server (`esphome_proxy/`) speaks too.

pub mod api;
