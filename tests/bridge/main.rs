//! The WebSocket bridge with a real WebSocket client against the simulated CS108
//! reader, speaking the ble-mcp-test protocol. One file per concern; the client and
//! setup below are what they share.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod data;
mod errors;
mod eviction;
mod failover;
mod sessions;
mod takeover;

use common::*;
use futures::{SinkExt, StreamExt};
use gattway::ble::DeviceId;
use gattway::bridge::BridgeConfig;
use gattway::gateway::GatewayConfig;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The query a ble-mcp-test client opens with for the CS108's UART service.
const CS108_QUERY: &str = "service=9800&write=9900&notify=9901&device=CS108";
/// The CS108 frame that asks for the battery voltage.
const BATTERY_CMD: [u8; 10] = [0xA7, 0xB3, 0x02, 0xD9, 0x82, 0x37, 0x00, 0x00, 0xA0, 0x00];

/// A ble-mcp-test client: one WebSocket to the bridge.
struct Client {
    ws: Stream,
}

/// What the socket gave next: a JSON message, or its close code and reason.
enum Next {
    Json(Value),
    Closed(u16, String),
}

impl Client {
    async fn open(server: &Server, query: &str) -> Client {
        Self::open_with_origin(server, query, None)
            .await
            .expect("handshake")
    }

    async fn open_with_origin(server: &Server, query: &str, origin: Option<&str>) -> Result<Client, String> {
        let mut req = format!("ws://{}/?{query}", server.addr)
            .into_client_request()
            .unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        let (ws, _) = within("ws handshake", tokio_tungstenite::connect_async(req))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Client { ws })
    }

    async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    async fn next(&mut self) -> Next {
        within("bridge message", async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        return Next::Json(serde_json::from_str(t.as_str()).expect("json"))
                    }
                    Some(Ok(Message::Close(f))) => {
                        return match f {
                            Some(f) => Next::Closed(u16::from(f.code), f.reason.to_string()),
                            None => Next::Closed(1005, String::new()),
                        }
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Next::Closed(1006, e.to_string()),
                    None => return Next::Closed(1006, "stream ended".into()),
                }
            }
        })
        .await
    }

    /// The next JSON message; fails on close.
    async fn json(&mut self) -> Value {
        match self.next().await {
            Next::Json(v) => v,
            Next::Closed(c, r) => panic!("closed {c} {r:?} while expecting a message"),
        }
    }

    /// The next message of this type, skipping notifications (`data`) and others.
    async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let v = self.json().await;
            if v["type"] == kind {
                return v;
            }
            assert_ne!(v["type"], "error", "error while waiting for {kind}: {v}");
        }
    }

    /// Skips messages until the close; returns its code and reason.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Next::Closed(c, r) = self.next().await {
                return (c, r);
            }
        }
    }

    /// Writes the battery command and waits for the reader's answer.
    async fn battery_round_trip(&mut self) -> Vec<u8> {
        self.send(json!({"type": "data", "data": BATTERY_CMD})).await;
        loop {
            let v = self.expect("data").await;
            let bytes: Vec<u8> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
                .collect();
            if bytes.len() >= 10 && bytes[8..10] == [0xA0, 0x00] {
                return bytes;
            }
        }
    }
}

/// Bridge timeouts short enough for tests, long enough not to fire by accident.
fn fast_bridge() -> BridgeConfig {
    BridgeConfig {
        idle_timeout_ms: 60_000,
        eviction_grace_ms: 5_000,
        session_grace_ms: 60_000,
        connect_timeout_ms: 3_000,
        max_frame_bytes: 1024,
        admin_token: "admin-secret".into(),
    }
}

/// A server with `bridge` on the simulator (time scale 100).
async fn setup(bridge: BridgeConfig) -> (Rig, Server) {
    setup_with(fast_gateway(), bridge).await
}

/// [`setup`] with a gateway configuration of the test's own.
async fn setup_with(gateway: GatewayConfig, bridge: BridgeConfig) -> (Rig, Server) {
    let rig = rig_with(gateway, sim_config(100.0, vec![]));
    let server = start_server_with(&rig.gateway, Default::default(), bridge).await;
    (rig, server)
}

/// The simulated CS108 reader's id.
fn cs108() -> DeviceId {
    DeviceId::new(CS108)
}
