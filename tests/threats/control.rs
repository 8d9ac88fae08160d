//! The control WebSocket `/ws` (and the WebSocket layer under every socket):
//! sockets waiting to authenticate have their own budget, session tokens are
//! bounded, and a fragmented message must arrive in time.

use std::time::Duration;

use gattway::auth::{AuthConfig, Scope};
use gattway::control::ControlConfig;
use gattway::http::HttpConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

fn readers() -> AuthConfig {
    AuthConfig {
        api_keys: vec![
            api_key("reader", vec![Scope::BleRead], vec![]),
            api_key("other", vec![Scope::BleRead], vec![]),
        ],
        ..Default::default()
    }
}

/// AUTHENTICATE with `credential` (`{"apiKey": …}` or `{"sessionToken": …}`).
async fn authenticate(ws: &mut JsonWs, credential: Value) -> Value {
    let mut request = json!({"type": "AUTHENTICATE", "id": 1});
    for (k, v) in credential.as_object().unwrap() {
        request[k] = v.clone();
    }
    ws.send(request).await;
    ws.next().await
}

#[tokio::test]
async fn sockets_waiting_to_authenticate_never_take_an_authenticated_clients_slot() {
    let rig = rig();
    let setup = Setup {
        auth: readers(),
        control: ControlConfig {
            max_connections: 3,
            ..Default::default()
        },
        http: HttpConfig {
            max_unauthenticated_websockets: 4,
            ..Default::default()
        },
        ..Default::default()
    };
    let (server, _) = start(&rig.gateway, setup).await;
    let url = format!("ws://{}/ws", server.addr);
    let mut lurkers = Vec::new();
    for _ in 0..3 {
        lurkers.push(JsonWs::connect(&url).await);
    }
    // A valid key, in-band and at the upgrade, still gets in.
    let mut member = JsonWs::connect(&url).await;
    let answer = authenticate(&mut member, json!({"apiKey": "reader"})).await;
    assert_eq!(answer["type"], "AUTHENTICATED", "{answer}");
    let mut at_upgrade = JsonWs::connect(&format!("{url}?access_token=other")).await;
    at_upgrade.send(json!({"type": "PING", "id": 2})).await;
    assert_eq!(at_upgrade.next().await["type"], "PONG");
    // The lurkers wait among themselves: one more fits the budget, the next not.
    lurkers.push(JsonWs::connect(&url).await);
    let mut over = JsonWs::connect(&url).await;
    let refused = over.next().await;
    assert_eq!(refused["code"], "CONNECTION_LIMIT_REACHED", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("waiting to authenticate"),
        "{refused}"
    );
    assert_eq!(over.close_code().await, Some(1013));
    server.stop().await;
}

#[tokio::test]
async fn session_tokens_are_bounded_per_credential_and_in_all() {
    let rig = rig();
    let setup = Setup {
        auth: readers(),
        control: ControlConfig {
            max_sessions_per_principal: 3,
            max_sessions: 5,
            ..Default::default()
        },
        ..Default::default()
    };
    let (server, _) = start(&rig.gateway, setup).await;
    let mut ws = JsonWs::connect(&format!("ws://{}/ws", server.addr)).await;
    let mut reader = Vec::new();
    for _ in 0..4 {
        let answer = authenticate(&mut ws, json!({"apiKey": "reader"})).await;
        reader.push(answer["sessionToken"].as_str().unwrap().to_string());
    }
    let refused = authenticate(&mut ws, json!({"sessionToken": reader[0]})).await;
    assert_eq!(
        refused["code"], "INVALID_TOKEN",
        "a credential keeps its newest three: {refused}"
    );
    let resumed = authenticate(&mut ws, json!({"sessionToken": reader[3]})).await;
    assert_eq!(resumed["type"], "AUTHENTICATED", "{resumed}");
    // reader holds three now (1 was forgotten for the resumed session's token);
    // three more for another credential pass the total of five: the oldest go.
    for _ in 0..3 {
        authenticate(&mut ws, json!({"apiKey": "other"})).await;
    }
    let refused = authenticate(&mut ws, json!({"sessionToken": reader[2]})).await;
    assert_eq!(
        refused["code"], "INVALID_TOKEN",
        "the oldest of all forgotten: {refused}"
    );
    server.stop().await;
}

/// A client frame (masked, as RFC 6455 asks of clients).
fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first_byte, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn a_fragmented_message_that_takes_too_long_closes_the_socket() {
    let rig = rig();
    let setup = Setup {
        websocket: gattway::http::ws::WebSocketConfig {
            fragment_timeout_ms: 200,
            ..Default::default()
        },
        ..Default::default()
    };
    let (server, _) = start(&rig.gateway, setup).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let handshake = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = within("upgrade", tcp.read(&mut head)).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    // A text message's first fragment, then the rest a fragment at a time, slowly:
    // the attacker's pace, not a wait for the server.
    tcp.write_all(&client_frame(0x01, br#"{"type":"PI"#))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = tcp.write_all(&client_frame(0x80, br#"NG","id":1}"#)).await;
    let got = closed_by_server(&mut tcp).await;
    // The close frame: 0x88, its length, then the code.
    let close = got
        .windows(4)
        .find(|w| w[0] == 0x88)
        .map(|w| u16::from_be_bytes([w[2], w[3]]));
    assert_eq!(close, Some(1008), "{got:?}");
    assert!(!String::from_utf8_lossy(&got).contains("PONG"), "{got:?}");
    server.stop().await;
}
