//! The hub's `gattway.cbor` wire before authentication: a small frame that would
//! decode into a great many values is refused from its headers alone.

use futures::{SinkExt, StreamExt};
use gattway::auth::{AuthConfig, Scope};
use gattway::hub_api::cbor;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

#[tokio::test]
async fn a_cbor_frame_of_a_million_nulls_is_refused_before_it_is_built() {
    let rig = rig();
    let db = TempDb::new();
    let auth = AuthConfig {
        api_keys: vec![api_key("device", vec![Scope::HubDevice], vec![])],
        ..Default::default()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), auth).await;
    let mut request = format!("ws://{}/hub", server.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", cbor::PROTOCOL.parse().unwrap());
    let (mut ws, _) = within("handshake", tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake");
    // {type: auth, token: "x", value: [null × 1,000,000]}: under the hub's 1 MiB
    // message limit, and some 1 KiB once deflated.
    let mut bomb = vec![0xa3, 0x00, 0x16, 0x18, 0x1b, 0x61, b'x', 0x05, 0x9a];
    bomb.extend_from_slice(&1_000_000u32.to_be_bytes());
    bomb.extend(vec![0xf6; 1_000_000]);
    ws.send(Message::Binary(bomb.into())).await.unwrap();
    let answer = match within("the refusal", ws.next()).await {
        Some(Ok(Message::Binary(b))) => cbor::decode(&b).expect("a hub message"),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(answer["code"], "INVALID_MESSAGE", "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("CBOR items"),
        "{answer}"
    );
    server.stop().await;
}
