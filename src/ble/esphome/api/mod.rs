//! The ESPHome native API, both ends of it: frames on the wire (plaintext and
//! Noise), the handshake, and the message set. Home Assistant speaks it to ESPHome
//! Bluetooth proxies; gattway speaks it to proxies (the radio beside this folder)
//! and as one (`esphome_proxy/`, a front end), so it lives in the radio layer.
//!
//! The messages themselves are the `esphome-native-api` crate's (generated from
//! ESPHome's `api.proto`). Its connection types are not used: they forward what the
//! peer sends through a lossy broadcast channel and speak only the device's side.
//!
//! - `frame.rs`: reading and writing frames and messages, once keys are agreed.
//! - `noise.rs`: the Noise handshake (`Noise_NNpsk0_25519_ChaChaPoly_SHA256`).
//! - `ids.rs`: addresses and UUIDs as the API writes them.

mod frame;
mod ids;
mod noise;

pub use esphome_native_api::parser::ProtoMessage as Message;
pub use esphome_native_api::proto;
pub use frame::{MessageReader, MessageWriter};
pub use ids::{address_of, device_id_of, join_uuid, split_uuid};
pub use noise::{decode_psk, Psk};

use tokio::net::TcpStream;

/// The API version gattway speaks (ESPHome 2026.6's). Clients check the major.
pub const API_VERSION: (u32, u32) = (1, 14);

/// The ESPHome release whose protocol this is. Home Assistant refuses proxies that
/// report an old version, so a proxy reports this one.
pub const ESPHOME_VERSION: &str = "2026.6.2";

/// Bluetooth proxy feature flags (aioesphomeapi's `BluetoothProxyFeature`).
pub mod feature {
    pub const PASSIVE_SCAN: u32 = 1 << 0;
    pub const ACTIVE_CONNECTIONS: u32 = 1 << 1;
    pub const REMOTE_CACHING: u32 = 1 << 2;
    pub const RAW_ADVERTISEMENTS: u32 = 1 << 5;
}

/// `SubscribeBluetoothLeAdvertisementsRequest.flags`: raw advertisements, batched.
pub const SUBSCRIBE_RAW: u32 = 1;

/// `BluetoothDeviceRequest.request_type`.
pub mod request {
    pub const CONNECT: i32 = 0;
    pub const DISCONNECT: i32 = 1;
    pub const PAIR: i32 = 2;
    pub const CONNECT_V3_WITH_CACHE: i32 = 4;
    pub const CONNECT_V3_WITHOUT_CACHE: i32 = 5;
    pub const CLEAR_CACHE: i32 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection")]
    Closed,
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("the peer requires an encrypted connection: configure its noise_psk")]
    EncryptionRequired,
    #[error("the peer does not encrypt: remove the noise_psk, or enable encryption on the peer")]
    EncryptionUnsupported,
    #[error("the client connected in plaintext, but this proxy requires encryption (esphome.noise_psk)")]
    PlaintextRefused,
    #[error("the client asked for encryption, but this proxy has no esphome.noise_psk")]
    EncryptionRefused,
    #[error("wrong encryption key (noise_psk): the handshake failed")]
    WrongKey,
    #[error("encryption key: {0}")]
    BadKey(String),
    #[error("handshake: {0}")]
    Handshake(String),
}

/// Accepts a client on `stream`: plaintext when `psk` is `None`, else Noise with it
/// (the server hello names the proxy and its MAC).
/// A client that asks for the other is told why (in the words ESPHome uses, which
/// aioesphomeapi turns into a precise error) and refused.
pub async fn accept(
    stream: TcpStream,
    psk: Option<&Psk>,
    name: &str,
    mac: &str,
) -> Result<(MessageReader, MessageWriter), ApiError> {
    noise::accept(stream, psk, name, mac).await
}

/// Opens a session with a device (or proxy) on `stream`.
pub async fn connect(
    stream: TcpStream,
    psk: Option<&Psk>,
) -> Result<(MessageReader, MessageWriter), ApiError> {
    noise::connect(stream, psk).await
}
