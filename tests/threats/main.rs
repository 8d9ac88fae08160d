//! The holes of the "harden the new surfaces" issue, each tried as an attacker (or
//! an unlucky user) would, one file per surface. Every test failed on the main
//! before the fix and passes now.

#[path = "../common/mod.rs"]
mod common;

mod control;
mod device_list;
mod esphome;
mod http;
mod hub_cbor;
mod hub_socket;
mod hub_store;
mod mcp;
mod mcp_http;
mod memory;
mod mqtt;
mod nats;
mod secrets;
mod sqlite_lock;
