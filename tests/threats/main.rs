//! Threat-model tests, one module per surface: each hole of issue 30 tried as an
//! attacker would, a test per hole that failed before its fix.

#[path = "../common/mod.rs"]
mod common;

mod control;
mod esphome;
mod http;
mod hub_cbor;
mod mcp_http;
