//! On the wire: permessage-deflate (RFC 7692) agreed on every WebSocket and the
//! hub's frames really compressed both ways; the hub's `gattway.cbor` subprotocol
//! end to end. Real server on port 0, real clients: yawc's (which compresses),
//! tungstenite's (which does not), and a raw socket for the handshake itself.

mod common;
#[path = "../benches/support/counting.rs"]
#[allow(dead_code)]
mod counting;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::cbor::{cbor_client, next_cbor};
use common::{hub_config, within, Setup, TempDb};
use counting::{Counting, WireBytes};
use futures::SinkExt;
use gattway::http::ws::WebSocketConfig;
use gattway::hub_api::cbor;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

async fn hub_server(db: &TempDb, websocket: WebSocketConfig) -> common::Server {
    let rig = common::rig();
    let setup = Setup {
        hub: Some((db.url(), hub_config())),
        websocket,
        ..Default::default()
    };
    common::start(&rig.gateway, setup).await.0
}

/// The handshake's answer to an upgrade of `path` that offers deflate as browsers
/// do, headers lower-cased.
async fn handshake(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        within("handshake answer", tcp.read_exact(&mut byte))
            .await
            .expect("read");
        answer.push(byte[0]);
    }
    String::from_utf8_lossy(&answer).to_lowercase()
}

#[tokio::test]
async fn every_websocket_agrees_to_deflate_unless_configured_off() {
    let db = TempDb::new();
    let server = hub_server(&db, WebSocketConfig::default()).await;
    for path in ["/hub", "/ws", "/?device=HR&service=180d&write=2a39&notify=2a37"] {
        let answer = handshake(server.addr, path).await;
        assert!(answer.starts_with("http/1.1 101"), "{path}: {answer}");
        assert!(
            answer.contains("sec-websocket-extensions: permessage-deflate"),
            "{path}: {answer}"
        );
    }
    let off = WebSocketConfig {
        deflate: false,
        ..Default::default()
    };
    let db = TempDb::new();
    let server = hub_server(&db, off).await;
    let answer = handshake(server.addr, "/hub").await;
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(!answer.contains("sec-websocket-extensions"), "{answer}");
}

type Yawc = yawc::WebSocket<Counting>;

/// A yawc client offering deflate, and the count of bytes it has read.
async fn deflating(addr: std::net::SocketAddr, path: &str) -> (Yawc, Arc<WireBytes>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let bytes = Arc::new(WireBytes::default());
    let io = Counting::new(tcp, bytes.clone());
    let url = url::Url::parse(&format!("ws://{addr}{path}")).expect("url");
    let options = yawc::Options::default().with_low_latency_compression();
    let ws = within("handshake", yawc::WebSocket::handshake(url, io, options))
        .await
        .expect("handshake");
    (ws, bytes)
}

async fn next_json(ws: &mut Yawc) -> Value {
    loop {
        let frame = within("message", ws.next_frame()).await.expect("frame");
        if frame.opcode() == yawc::OpCode::Text {
            return serde_json::from_slice(frame.payload()).expect("JSON");
        }
    }
}

#[tokio::test]
async fn hub_frames_are_compressed_both_ways() {
    let db = TempDb::new();
    let server = hub_server(&db, WebSocketConfig::default()).await;
    let (mut client, client_bytes) = deflating(server.addr, "/hub").await;
    assert_eq!(next_json(&mut client).await["type"], "welcome");
    let subscribe = json!({"type": "subscribe", "id": 1, "devices": ["zip"], "keys": ["temperature"]});
    client
        .send(yawc::Frame::text(subscribe.to_string()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut client).await["type"], "subscribed");

    // The device's frames are compressed too: the server inflates them.
    let (mut device, _) = deflating(server.addr, "/hub?device=zip").await;
    assert_eq!(next_json(&mut device).await["type"], "welcome");
    const SENT: i64 = 50;
    for seq in 1..=SENT {
        let points: Vec<Value> = (0..4)
            .map(|i| json!({"key": "temperature", "value": 20.0 + i as f64 / 4.0, "ts": 1_763_800_000_000i64 + seq * 4 + i}))
            .collect();
        let m = json!({"type": "telemetry", "seq": seq, "points": points});
        device.send(yawc::Frame::text(m.to_string())).await.unwrap();
        assert_eq!(
            next_json(&mut device).await,
            json!({"type": "telemetry_ack", "seq": seq})
        );
    }

    let before = client_bytes.read.load(Ordering::Relaxed);
    let (mut points, mut json_bytes) = (0, 0);
    while points < SENT * 4 {
        let frame = within("telemetry", client.next_frame()).await.expect("frame");
        let v: Value = serde_json::from_slice(frame.payload()).expect("JSON");
        if v["type"] == "presence" {
            continue;
        }
        assert_eq!(v["type"], "telemetry", "{v}");
        json_bytes += frame.payload().len();
        points += v["points"].as_array().unwrap().len() as i64;
    }
    let wire = (client_bytes.read.load(Ordering::Relaxed) - before) as usize;
    // Repeated keys and a window kept between messages: well under half.
    assert!(
        wire * 3 < json_bytes,
        "{wire} bytes on the wire for {json_bytes} of JSON"
    );
}

#[tokio::test]
async fn the_hub_speaks_cbor_to_who_asks_for_it() {
    let db = TempDb::new();
    let server = hub_server(&db, WebSocketConfig::default()).await;
    let mut client = cbor_client(server.addr, "/hub").await;
    assert_eq!(next_cbor(&mut client).await["type"], "welcome");
    let subscribe = json!({"type": "subscribe", "id": 9, "devices": ["c1"]});
    client
        .send(Message::Binary(cbor::encode(&subscribe).into()))
        .await
        .unwrap();
    let subscribed = next_cbor(&mut client).await;
    assert_eq!(
        (subscribed["type"].clone(), subscribed["id"].clone()),
        (json!("subscribed"), json!(9))
    );

    let mut device = cbor_client(server.addr, "/hub?device=c1").await;
    assert_eq!(next_cbor(&mut device).await["device"], "c1");
    // The number form of the names, written by hand: {type: telemetry, seq: 3,
    // points: [{key: "t", value: {"c": 21.5}}]}.
    let by_hand = [
        0xa3, 0x00, 0x00, 0x07, 0x03, 0x03, 0x81, 0xa2, 0x04, 0x61, b't', 0x05, 0xa1, 0x61, b'c', 0xf9, 0x4d,
        0x60,
    ];
    device
        .send(Message::Binary(by_hand.to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        next_cbor(&mut device).await,
        json!({"type": "telemetry_ack", "seq": 3})
    );

    let mut telemetry = next_cbor(&mut client).await;
    while telemetry["type"] == "presence" {
        telemetry = next_cbor(&mut client).await;
    }
    assert_eq!(
        (telemetry["type"].clone(), telemetry["device"].clone()),
        (json!("telemetry"), json!("c1"))
    );
    let point = &telemetry["points"][0];
    assert_eq!(
        (point["key"].clone(), point["value"].clone()),
        (json!("t"), json!({"c": 21.5}))
    );
    assert!(point["id"].as_i64().is_some(), "{telemetry}");

    // Not CBOR, and CBOR that is not a hub message: typed errors, in CBOR.
    device
        .send(Message::Binary(vec![0xff, 0x00].into()))
        .await
        .unwrap();
    let e = next_cbor(&mut device).await;
    assert_eq!(
        (e["type"].clone(), e["code"].clone()),
        (json!("error"), json!("INVALID_MESSAGE"))
    );
    device
        .send(Message::Binary(vec![0xa1, 0x18, 0xfe, 0x00].into()))
        .await
        .unwrap();
    let e = next_cbor(&mut device).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown field number 254"),
        "{e}"
    );

    // A JSON connection is told binary needs the subprotocol.
    let mut json_client = common::JsonWs::connect(&format!("ws://{}/hub", server.addr)).await;
    assert_eq!(json_client.next().await["type"], "welcome");
    json_client
        .send_binary(&cbor::encode(&json!({"type": "ping", "id": 1})))
        .await;
    let e = json_client.next().await;
    assert_eq!(e["code"], "INVALID_MESSAGE");
    assert!(e["message"].as_str().unwrap().contains("gattway.cbor"), "{e}");
}
