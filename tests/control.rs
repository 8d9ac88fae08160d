//! The control WebSocket (`/ws`) with a real WebSocket client against the simulator:
//! every message type, the error codes, authentication and rate limits.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use gattway::auth::{AuthConfig, Scope};
use gattway::control::ControlConfig;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Client {
    ws: Stream,
    /// Messages read while waiting for something else.
    seen: VecDeque<Value>,
    next_id: u64,
}

impl Client {
    async fn open(server: &Server, query: &str, bearer: Option<&str>) -> Result<Client, String> {
        let mut req = format!("ws://{}/ws{query}", server.addr)
            .into_client_request()
            .unwrap();
        if let Some(b) = bearer {
            req.headers_mut()
                .insert("Authorization", format!("Bearer {b}").parse().unwrap());
        }
        let (ws, _) = within("handshake", tokio_tungstenite::connect_async(req))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Client {
            ws,
            seen: VecDeque::new(),
            next_id: 1,
        })
    }

    async fn read(&mut self) -> Value {
        within("control message", async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                    Some(Ok(Message::Close(f))) => {
                        return json!({"type": "CLOSED", "code": f.map(|f| u16::from(f.code))})
                    }
                    Some(Ok(_)) => continue,
                    other => return json!({"type": "CLOSED", "error": format!("{other:?}")}),
                }
            }
        })
        .await
    }

    /// Sends a request with a fresh id and returns its reply (events are kept).
    async fn call(&mut self, mut msg: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        msg["id"] = json!(id);
        self.ws.send(Message::Text(msg.to_string().into())).await.unwrap();
        self.reply_to(json!(id)).await
    }

    async fn reply_to(&mut self, id: Value) -> Value {
        if let Some(pos) = self.seen.iter().position(|m| m["id"] == id) {
            return self.seen.remove(pos).unwrap();
        }
        loop {
            let m = self.read().await;
            if m["id"] == id {
                return m;
            }
            assert_ne!(m["type"], "CLOSED", "closed while waiting for reply {id}: {m}");
            self.seen.push_back(m);
        }
    }

    async fn send_raw(&mut self, text: &str) -> Value {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .await
            .unwrap();
        loop {
            let m = self.read().await;
            if m["type"] == "ERROR" {
                return m;
            }
            self.seen.push_back(m);
        }
    }

    /// The next event of this type (no id).
    async fn event(&mut self, kind: &str) -> Value {
        if let Some(pos) = self
            .seen
            .iter()
            .position(|m| m["type"] == kind && m.get("id").is_none())
        {
            return self.seen.remove(pos).unwrap();
        }
        loop {
            let m = self.read().await;
            if m["type"] == kind && m.get("id").is_none() {
                return m;
            }
            assert_ne!(m["type"], "CLOSED");
            self.seen.push_back(m);
        }
    }
}

fn code(m: &Value) -> &str {
    assert_eq!(m["type"], "ERROR", "expected an error, got {m}");
    m["code"].as_str().unwrap()
}

const NUS: &str = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_RX: &str = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_TX: &str = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";

async fn open_server(control: ControlConfig, auth: AuthConfig) -> (Rig, Server) {
    let rig = rig();
    let listener_server = start_control_server(&rig.gateway, control, auth).await;
    (rig, listener_server)
}

#[tokio::test]
async fn every_message_type_against_the_simulator() {
    let (_rig, server) = open_server(ControlConfig::default(), AuthConfig::default()).await;
    let mut c = Client::open(&server, "", None).await.unwrap();
    assert_eq!(c.call(json!({"type": "PING"})).await["type"], "PONG");

    let scan = c
        .call(json!({"type": "START_SCAN", "duration": 400, "filters": {"services": ["180d"]}}))
        .await;
    assert_eq!(scan["type"], "SCAN_COMPLETE");
    assert_eq!(scan["devices"].as_array().unwrap().len(), 1);
    assert_eq!(scan["devices"][0]["name"], "Gattway HRM");
    let found = c.event("DEVICE_FOUND").await;
    assert_eq!(found["deviceId"], HRM);
    assert!(found.get("id").is_none(), "events carry no id");
    let known = c.call(json!({"type": "GET_DEVICES"})).await;
    assert!(!known["devices"].as_array().unwrap().is_empty());
    assert_eq!(c.call(json!({"type": "STOP_SCAN"})).await["type"], "SCAN_STOPPED");

    let connected = c.call(json!({"type": "CONNECT", "deviceId": HRM})).await;
    assert_eq!(
        (connected["type"].as_str(), connected["mtu"].as_u64()),
        (Some("CONNECTED"), Some(247))
    );
    assert_eq!(c.event("CONNECTED").await["deviceId"], HRM);
    let services = c.call(json!({"type": "GET_SERVICES", "deviceId": HRM})).await;
    assert_eq!(services["services"][0]["name"], "Heart Rate");
    let value = c.call(json!({"type": "CHARACTERISTIC_READ", "deviceId": HRM, "serviceUuid": "180d", "characteristicUuid": "2a38"})).await;
    assert_eq!(
        (value["type"].as_str(), value["value"].as_str()),
        (Some("CHARACTERISTIC_VALUE"), Some("AQ=="))
    );

    // Descriptors: the CCCD written (notifications on) and read back.
    let w = c
        .call(
            json!({"type": "DESCRIPTOR_WRITE", "deviceId": HRM, "serviceUuid": "180d",
        "characteristicUuid": "2a37", "descriptorUuid": "2902", "value": "AQA="}),
        )
        .await;
    assert_eq!(
        (w["type"].as_str(), w["bytes"].as_u64()),
        (Some("DESCRIPTOR_WRITTEN"), Some(2)),
        "{w}"
    );
    let d = c
        .call(
            json!({"type": "DESCRIPTOR_READ", "deviceId": HRM, "serviceUuid": "180d",
        "characteristicUuid": "2a37", "descriptorUuid": "2902"}),
        )
        .await;
    assert_eq!(
        (d["type"].as_str(), d["value"].as_str()),
        (Some("DESCRIPTOR_VALUE"), Some("AQA=")),
        "{d}"
    );
    let missing = c
        .call(
            json!({"type": "DESCRIPTOR_READ", "deviceId": HRM, "serviceUuid": "180d",
        "characteristicUuid": "2a37", "descriptorUuid": "2904"}),
        )
        .await;
    assert_eq!(code(&missing), "ATTRIBUTE_NOT_FOUND", "{missing}");

    c.call(json!({"type": "CONNECT", "deviceId": UART})).await;
    let sub = c
        .call(
            json!({"type": "SUBSCRIBE", "deviceId": UART, "serviceUuid": NUS, "characteristicUuid": NUS_TX}),
        )
        .await;
    assert_eq!(sub["type"], "SUBSCRIBED");
    let w = c.call(json!({"type": "CHARACTERISTIC_WRITE", "deviceId": UART, "serviceUuid": NUS, "characteristicUuid": NUS_RX, "value": "aGk="})).await;
    assert_eq!(
        (w["type"].as_str(), w["bytes"].as_u64()),
        (Some("CHARACTERISTIC_WRITTEN"), Some(2))
    );
    let n = c.event("NOTIFICATION").await;
    assert_eq!(
        (n["deviceId"].as_str(), n["value"].as_str()),
        (Some(UART), Some("aGk="))
    );
    assert_eq!(
        c.call(
            json!({"type": "UNSUBSCRIBE", "deviceId": UART, "serviceUuid": NUS, "characteristicUuid": NUS_TX})
        )
        .await["type"],
        "UNSUBSCRIBED"
    );

    // BATCH: answered in order, one failing without stopping the rest.
    let batch = c
        .call(json!({"type": "BATCH", "requests": [
            {"type": "PING", "id": "a"},
            {"type": "CHARACTERISTIC_READ", "id": "b", "deviceId": HRM, "serviceUuid": "180f", "characteristicUuid": "2a19"},
            {"type": "FLY", "id": "c"},
            {"type": "GET_SERVICES", "id": "d", "deviceId": HRM},
        ]}))
        .await;
    let results = batch["results"].as_array().unwrap();
    let ids: Vec<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert_eq!(results[0]["type"], "PONG");
    assert_eq!(results[1]["type"], "CHARACTERISTIC_VALUE");
    assert_eq!(code(&results[2]), "INVALID_MESSAGE_TYPE");
    assert_eq!(results[3]["type"], "SERVICES");

    let d = c.call(json!({"type": "DISCONNECT", "deviceId": HRM})).await;
    assert_eq!(d["type"], "DISCONNECTED");
    assert_eq!(c.event("DISCONNECTED").await["deviceId"], HRM);
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_their_error_codes() {
    let (rig, server) = open_server(
        ControlConfig {
            max_message_bytes: 2048,
            ..Default::default()
        },
        AuthConfig::default(),
    )
    .await;
    let mut c = Client::open(&server, "", None).await.unwrap();
    assert_eq!(code(&c.send_raw("{nope").await), "INVALID_MESSAGE");
    assert_eq!(code(&c.send_raw(r#"{"id":1}"#).await), "INVALID_MESSAGE");
    let e = c.call(json!({"type": "TELEPORT"})).await;
    assert_eq!(code(&e), "INVALID_MESSAGE_TYPE");
    assert_eq!(e["id"], 1, "the error echoes the id");
    assert_eq!(
        code(
            &c.send_raw(&json!({"type": "PING", "pad": "x".repeat(3000)}).to_string())
                .await
        ),
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(code(&c.call(json!({"type": "CONNECT"})).await), "INVALID_PARAMS");
    assert_eq!(
        code(
            &c.call(json!({"type": "CONNECT", "deviceId": "AA:AA:AA:AA:AA:AA", "timeout": 200}))
                .await
        ),
        "DEVICE_NOT_FOUND"
    );
    assert_eq!(code(&c.call(json!({"type": "CHARACTERISTIC_READ", "deviceId": HRM, "serviceUuid": "180d", "characteristicUuid": "2a38"})).await), "NOT_CONNECTED");
    c.call(json!({"type": "CONNECT", "deviceId": HRM})).await;
    assert_eq!(
        code(&c.call(json!({"type": "CONNECT", "deviceId": HRM})).await),
        "ALREADY_CONNECTED"
    );
    assert_eq!(code(&c.call(json!({"type": "CHARACTERISTIC_READ", "deviceId": HRM, "serviceUuid": "180d", "characteristicUuid": "not-a-uuid"})).await), "INVALID_PARAMS");
    assert_eq!(code(&c.call(json!({"type": "CHARACTERISTIC_WRITE", "deviceId": HRM, "serviceUuid": "180d", "characteristicUuid": "2a39", "value": "not base64!"})).await), "INVALID_PARAMS");
    assert_eq!(code(&c.call(json!({"type": "CHARACTERISTIC_WRITE", "deviceId": HRM, "serviceUuid": "180d", "characteristicUuid": "2a38", "value": "AQ=="})).await), "INVALID_PARAMS", "read-only characteristic");
    // A scan while one runs.
    c.ws.send(Message::Text(
        json!({"type": "START_SCAN", "id": "s1", "duration": 2000})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        code(&c.call(json!({"type": "START_SCAN"})).await),
        "SCAN_ALREADY_ACTIVE"
    );
    c.call(json!({"type": "STOP_SCAN"})).await;
    assert_eq!(c.reply_to(json!("s1")).await["type"], "SCAN_COMPLETE");
    // Held by someone else.
    let _lease = rig
        .gateway
        .lease(&gattway::ble::DeviceId::new(HRM), "a bridge session", false)
        .unwrap();
    let busy = c.call(json!({"type": "CHARACTERISTIC_READ", "deviceId": HRM, "serviceUuid": "180d", "characteristicUuid": "2a38"})).await;
    assert_eq!(code(&busy), "BUSY");
    assert!(busy["message"].as_str().unwrap().contains("a bridge session"));
    // The radio failing, and the radio gone.
    rig.control(BATTERY).fail_next_connects(10);
    assert_eq!(
        code(&c.call(json!({"type": "CONNECT", "deviceId": BATTERY})).await),
        "OPERATION_FAILED"
    );
    rig.sim.set_powered(false);
    assert_eq!(
        code(&c.call(json!({"type": "CONNECT", "deviceId": ENV})).await),
        "BLE_NOT_AVAILABLE"
    );
    rig.sim.set_powered(true);
    assert_eq!(
        c.call(json!({"type": "PING"})).await["type"],
        "PONG",
        "the connection survives every error"
    );
    server.stop().await;
}

#[tokio::test]
async fn connection_and_rate_limits() {
    let (_rig, server) = open_server(
        ControlConfig {
            max_connections: 1,
            rate_per_connection: 0.01,
            burst_per_connection: 5.0,
            ..Default::default()
        },
        AuthConfig::default(),
    )
    .await;
    let mut first = Client::open(&server, "", None).await.unwrap();
    let mut second = Client::open(&server, "", None).await.unwrap();
    assert_eq!(code(&second.read().await), "CONNECTION_LIMIT_REACHED");
    for _ in 0..5 {
        assert_eq!(first.call(json!({"type": "PING"})).await["type"], "PONG");
    }
    let limited = first.call(json!({"type": "PING"})).await;
    assert_eq!(code(&limited), "RATE_LIMIT_EXCEEDED");
    let metrics = server.metrics().await;
    assert!(metrics.contains("gattway_rate_limited_total 1"), "{metrics}");
    server.stop().await;
}

fn auth_config() -> AuthConfig {
    AuthConfig {
        api_keys: vec![
            api_key("reader-key", vec![Scope::BleRead], vec![]),
            api_key("writer-key", vec![Scope::BleWrite], vec![]),
            api_key("hrm-key", vec![Scope::BleRead], vec!["Gattway HRM"]),
        ],
        jwt_secret: "jwt-secret".into(),
        jwt_audience: "gattway".into(),
        ..Default::default()
    }
}

fn jwt(aud: &str, ttl: u64) -> String {
    gattway::auth::issue_jwt(
        "jwt-secret",
        &gattway::auth::TokenRequest {
            subject: "app",
            scopes: &[Scope::BleRead],
            devices: &[],
            ttl: Duration::from_secs(ttl),
            audience: Some(aud),
            issuer: None,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn authentication_and_authorisation() {
    let (_rig, server) = open_server(ControlConfig::default(), auth_config()).await;
    let mut c = Client::open(&server, "", None).await.unwrap();
    assert_eq!(
        c.call(json!({"type": "PING"})).await["type"],
        "PONG",
        "PING needs no credential"
    );
    assert_eq!(
        code(&c.call(json!({"type": "GET_DEVICES"})).await),
        "NOT_AUTHENTICATED"
    );
    assert_eq!(
        code(&c.call(json!({"type": "AUTHENTICATE", "apiKey": "guess"})).await),
        "INVALID_API_KEY"
    );
    assert_eq!(
        code(
            &c.call(json!({"type": "AUTHENTICATE", "token": jwt("someone-else", 60)}))
                .await
        ),
        "INVALID_TOKEN"
    );
    let ok = c
        .call(json!({"type": "AUTHENTICATE", "token": jwt("gattway", 60)}))
        .await;
    assert_eq!(ok["type"], "AUTHENTICATED");
    assert_eq!(ok["subject"], "app");
    let session = ok["sessionToken"].as_str().unwrap().to_string();
    assert!(ok["expiresAt"].as_u64().unwrap() > 1_700_000_000_000);
    c.call(json!({"type": "CONNECT", "deviceId": UART})).await;
    let denied = c.call(json!({"type": "CHARACTERISTIC_WRITE", "deviceId": UART, "serviceUuid": NUS, "characteristicUuid": NUS_RX, "value": "AA=="})).await;
    assert_eq!(code(&denied), "FORBIDDEN", "ble:read cannot write");

    // The session token authenticates another connection.
    let mut again = Client::open(&server, "", None).await.unwrap();
    assert_eq!(
        again
            .call(json!({"type": "AUTHENTICATE", "sessionToken": session}))
            .await["type"],
        "AUTHENTICATED"
    );
    assert_eq!(
        code(
            &again
                .call(json!({"type": "AUTHENTICATE", "sessionToken": "made-up"}))
                .await
        ),
        "INVALID_TOKEN"
    );

    // A credential at the upgrade, and a device allow-list.
    let mut hrm_only = Client::open(&server, "?access_token=hrm-key", None)
        .await
        .unwrap();
    assert_eq!(
        code(&hrm_only.call(json!({"type": "CONNECT", "deviceId": CS108})).await),
        "FORBIDDEN"
    );
    let mut writer = Client::open(&server, "", Some("writer-key")).await.unwrap();
    let w = writer.call(json!({"type": "CHARACTERISTIC_WRITE", "deviceId": UART, "serviceUuid": NUS, "characteristicUuid": NUS_RX, "value": "AA=="})).await;
    assert_eq!(w["type"], "CHARACTERISTIC_WRITTEN");
    assert!(Client::open(&server, "?access_token=nope", None)
        .await
        .err()
        .unwrap()
        .contains("401"));

    // A token that expires while connected.
    let mut short = Client::open(&server, "", None).await.unwrap();
    short
        .call(json!({"type": "AUTHENTICATE", "token": jwt("gattway", 1)}))
        .await;
    // The server ends the socket when the token expires, saying why, with no
    // request needed to find out.
    let told = short.read().await;
    assert_eq!(code(&told), "SESSION_EXPIRED", "{told}");
    assert_eq!(short.read().await, json!({"type": "CLOSED", "code": 1008}));
    server.stop().await;
}

#[tokio::test]
async fn foreign_origins_are_refused() {
    let (_rig, server) = open_server(ControlConfig::default(), AuthConfig::default()).await;
    let mut req = format!("ws://{}/ws", server.addr).into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("403"), "{err}");
    server.stop().await;
}
