//! gattway: one binary that owns a machine's Bluetooth LE adapter and shares it,
//! safely and fast, with AI assistants, web apps and IoT back ends.
//!
//! # Layout
//!
//! - [`auth`]: the security layer: API keys, JWTs, scopes, and the one
//!   [`auth::DeviceAllowList`].
//! - [`ble`]: the radio. The [`ble::Backend`] trait, the plain data types every layer
//!   reuses, and the backends (`ble::sim`: simulated devices; `ble::native`: the
//!   machine's adapter through btleplug; `ble::esphome`: a remote ESPHome Bluetooth
//!   proxy, and the ESPHome native API both ends speak).
//! - [`gateway`]: the core service and the only owner of the backends. One actor task
//!   per connected device; scans, connects with retries, subscriptions with fan-out,
//!   leases, LRU and idle clean-up.
//! - [`adverts`]: what sensors broadcast, decoded to named readings (BTHome,
//!   Xiaomi, Ruuvi, Govee, pvvx, beacons), as Home Assistant decodes it.
//! - [`mcp`]: the MCP server (stdio and Streamable HTTP) for AI assistants.
//! - [`profiles`]: device profiles: what a device speaks (services, command frames,
//!   answers), declared in TOML; built-ins for the simulated devices.
//! - [`bridge`]: the WebSocket bridge, wire-compatible with ble-mcp-test clients.
//! - [`control`]: the control WebSocket (`/ws`): full BLE control for web apps.
//! - [`esphome_proxy`]: gattway as an ESPHome Bluetooth proxy, for Home Assistant.
//! - [`hub`]: the device hub's core: telemetry in, commands out, live
//!   subscriptions, presence, history; BLE notifications as telemetry. It speaks
//!   typed events and errors, never a wire format.
//! - [`hub_api`]: the hub's front end for the network: `/hub` (JSON or CBOR over
//!   WebSocket) and its REST.
//! - [`store`]: where the hub keeps telemetry, commands, devices and the connection
//!   log (SQLite embedded, PostgreSQL for a cluster), with batched writes (group commit).
//! - [`cluster`]: several instances as one hub: the messages they exchange over
//!   NATS, and the connection that carries them.
//! - [`http`]: the one door every network front end stands on: `Host` and `Origin`
//!   checks, credentials, rate limits, the WebSocket connection layer, the accept
//!   loop with its limits.
//! - [`app`]: every front end mounted behind the door: the router, the WebSocket
//!   upgrades, the index page and the operators' endpoints.
//! - [`config`]: the one `Config`, from a TOML file, `GATTWAY_*` variables and flags.
//! - [`cli`]: the command line (`gattway scan`, `gattway serve`).
//! - [`doctor`]: `gattway doctor`, what a real radio needs and what is wrong.
//! - [`mqtt`]: the hub's telemetry, and the gateway's decoded advertisements
//!   (Theengs' format), to an MQTT broker, with Home Assistant discovery, and
//!   commands from it.
//! - [`metrics`]: the Prometheus registry every layer records into, made in `main`
//!   and handed down; one file per concern (gateway, front ends, process, MQTT, hub).
//! - [`error`]: [`error::ErrorKind`], what kind of failure an error is, which every
//!   layer's error names and each front end maps to its wire code.
//! - [`sync`]: task ownership and locking helpers shared by every layer.
//! - [`tls`]: TLS for gattway's own outgoing connections (MQTT, JWKS).
//! - [`redact`]: URLs fit for a log line (no password).
//! - [`outbox`], [`limits`]: a WebSocket's bounded send queue and token-bucket rate
//!   limits, shared by the WebSocket front ends.

pub mod adverts;
pub mod app;
pub mod auth;
pub mod ble;
pub mod bridge;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod doctor;
pub mod error;
pub mod esphome_proxy;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod hub_api;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod mqtt;
pub mod outbox;
pub mod profiles;
pub mod redact;
pub mod store;
pub mod sync;
pub mod tls;
