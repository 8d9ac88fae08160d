//! Threat-model tests, one module per surface: what an attacker tries there, and
//! that it fails cleanly.

#[path = "../common/mod.rs"]
mod common;

mod mqtt;
mod nats;
