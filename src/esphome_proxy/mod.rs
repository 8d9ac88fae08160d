//! gattway as an ESPHome Bluetooth proxy: Home Assistant, or any `aioesphomeapi`
//! client, uses this machine's radios (or the simulator) as it uses an ESP32 proxy,
//! with raw advertisements and active connections. A front end beside HTTP, on its
//! own port (`esphome.listen`, the ESPHome API's 6053 by convention).
//!
//! Authorisation is the ESPHome kind: the Noise key (`esphome.noise_psk`). Without
//! one, only loopback clients are served, as the HTTP door serves only loopback
//! without credentials.
//!
//! Limits, since the port may face a network and shares the process's file
//! descriptors with HTTP: at most `esphome.max_connections` clients at once (more
//! are closed at once); a client has `esphome.handshake_timeout_ms` from its
//! connect to its hello (the Noise handshake included); and a device it holds
//! through the proxy is let go after `esphome.lease_idle_timeout_ms` without use.
//!
//! - `session.rs`: one client: hello, device info, subscriptions, routing.
//! - `client_link.rs`: one link a client made to a device, its requests in order.
//! - `gatt.rs`: handles ↔ the gateway's UUIDs.

mod client_link;
mod gatt;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::ble::esphome::api::{self, decode_psk, Psk};
use crate::gateway::Gateway;

/// `[esphome]`: serving the ESPHome native API as a Bluetooth proxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EsphomeConfig {
    /// `host:port` to serve the API on; empty (the default): not served.
    /// `GATTWAY_ESPHOME_LISTEN`.
    pub listen: String,
    /// The 32-byte Noise key, base64, as ESPHome's `api: encryption: key:`; empty:
    /// plaintext, loopback clients only. `GATTWAY_ESPHOME_NOISE_PSK`.
    pub noise_psk: String,
    /// The proxy's name in Home Assistant.
    pub name: String,
    /// Clients served at once; one more is closed as soon as it connects. Home
    /// Assistant needs one per proxy.
    pub max_connections: usize,
    /// Time a client has from its connect to its hello (`HelloRequest`), the
    /// Noise handshake included; a client silent that long is closed.
    pub handshake_timeout_ms: u64,
    /// A device a client connected through the proxy, used (a request, a
    /// notification) by nothing for this long, is disconnected and its lease
    /// released, so other front ends may have it; 0: never.
    pub lease_idle_timeout_ms: u64,
}

impl Default for EsphomeConfig {
    fn default() -> Self {
        EsphomeConfig {
            listen: String::new(),
            noise_psk: String::new(),
            name: "gattway".into(),
            max_connections: 16,
            handshake_timeout_ms: 10_000,
            lease_idle_timeout_ms: 300_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("esphome.listen {0:?}: expected host:port, e.g. 127.0.0.1:6053")]
    Listen(String),
    #[error("esphome.noise_psk: {0}")]
    Key(api::ApiError),
    #[error(
        "refusing to serve the ESPHome API on {0} without esphome.noise_psk: anyone on the network could \
         drive this machine's Bluetooth radio. Set a key (`openssl rand -base64 32` makes one) or listen on 127.0.0.1"
    )]
    Exposed(SocketAddr),
}

/// What every session needs to know of the proxy.
pub(crate) struct Settings {
    name: String,
    /// A stable, locally administered MAC derived from the name: Home Assistant
    /// keys a proxy by its MAC.
    mac: String,
    psk: Option<Psk>,
    /// `esphome.lease_idle_timeout_ms`; `None`: never.
    lease_idle: Option<Duration>,
}

impl EsphomeConfig {
    /// The address to serve on, or `None` when the proxy is off; refuses a key that
    /// is not one and a network address without a key.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, ProxyError> {
        if self.listen.trim().is_empty() {
            return Ok(None);
        }
        let addr: SocketAddr = self
            .listen
            .trim()
            .parse()
            .map_err(|_| ProxyError::Listen(self.listen.clone()))?;
        let psk = self.psk()?;
        if psk.is_none() && !addr.ip().is_loopback() {
            return Err(ProxyError::Exposed(addr));
        }
        Ok(Some(addr))
    }

    fn psk(&self) -> Result<Option<Psk>, ProxyError> {
        let key = self.noise_psk.trim();
        (!key.is_empty())
            .then(|| decode_psk(key))
            .transpose()
            .map_err(ProxyError::Key)
    }
}

/// Serves ESPHome clients on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    config: EsphomeConfig,
    shutdown: CancellationToken,
) -> Result<(), ProxyError> {
    let settings = Arc::new(Settings {
        mac: mac_for(&config.name),
        psk: config.psk()?,
        lease_idle: (config.lease_idle_timeout_ms > 0)
            .then(|| Duration::from_millis(config.lease_idle_timeout_ms)),
        name: config.name,
    });
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let handshake_within = Duration::from_millis(config.handshake_timeout_ms.max(1));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "ESPHome API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if settings.psk.is_none() && !peer.ip().is_loopback() {
            tracing::warn!(%peer, "ESPHome client refused: without esphome.noise_psk only loopback clients are served");
            continue;
        }
        // Dropping the stream closes it: a client over the cap learns at once.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = config.max_connections, "ESPHome client refused: esphome.max_connections reached");
            continue;
        };
        let (gateway, settings, shutdown) = (gateway.clone(), settings.clone(), shutdown.clone());
        let hello_by = tokio::time::Instant::now() + handshake_within;
        tokio::spawn(async move {
            let _slot = slot;
            let handshake = api::accept(stream, settings.psk.as_ref(), &settings.name, &settings.mac);
            match tokio::time::timeout_at(hello_by, handshake).await {
                Ok(Ok((reader, writer))) => {
                    let client = session::Client {
                        reader,
                        writer,
                        holder: format!("esphome:{peer}"),
                        hello_by,
                    };
                    session::run(gateway, settings, client, shutdown).await
                }
                Ok(Err(e)) => tracing::warn!(%peer, error = %e, "ESPHome client's handshake failed"),
                Err(_) => {
                    tracing::warn!(%peer, "ESPHome client's handshake took too long (esphome.handshake_timeout_ms)")
                }
            }
        });
    }
}

/// `02:xx:xx:xx:xx:xx` from the name's hash: stable across restarts, distinct per
/// name, and marked locally administered so it collides with no vendor's.
fn mac_for(name: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(name.as_bytes());
    format!(
        "02:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_never_exposed_without_a_key() {
        assert_eq!(EsphomeConfig::default().listen_addr().unwrap(), None);
        let open = EsphomeConfig {
            listen: "0.0.0.0:6053".into(),
            ..Default::default()
        };
        assert!(matches!(open.listen_addr(), Err(ProxyError::Exposed(_))));
        let keyed = EsphomeConfig {
            noise_psk: "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=".into(),
            ..open.clone()
        };
        assert!(keyed.listen_addr().unwrap().is_some());
        let bad_key = EsphomeConfig {
            noise_psk: "short".into(),
            ..open
        };
        assert!(matches!(bad_key.listen_addr(), Err(ProxyError::Key(_))));
        assert_eq!(mac_for("gattway"), mac_for("gattway"));
        assert!(mac_for("gattway").starts_with("02:"));
    }
}
