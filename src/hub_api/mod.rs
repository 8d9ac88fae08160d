//! The hub's front end for devices and clients on the network: `/hub`
//! (`docs/hub-protocol.md`), a WebSocket speaking JSON or CBOR, and the hub's
//! REST under `/api/v1`. It imports the core ([`crate::hub`]), never the other
//! way: the core emits typed events and errors, and this folder alone knows how
//! they look on the wire.
//!
//! - `socket.rs`: one connection from upgrade to close: limits, credential, role.
//! - `framed.rs`: the socket as the role loops use it: frames out, envelopes in.
//! - `message.rs`: what devices and clients send, typed; `frame.rs`: what the hub
//!   sends, each event encoded once for every subscriber; `cbor.rs`: both as CBOR.
//! - `failure.rs`: the wire's error codes, one `match` from a kind of failure.
//! - `device_role.rs`, `client_role.rs`: the two roles' message loops.
//! - `rest.rs`: history, devices, connections and commands over REST.

pub mod cbor;
mod client_role;
mod device_role;
pub mod failure;
pub mod frame;
mod framed;
pub mod message;
pub mod rest;
mod socket;

pub use self::socket::{handle_socket, Hello};
