//! A `/hub` client speaking the `gattway.cbor` subprotocol, as tungstenite sees it.

use std::net::SocketAddr;

use futures::StreamExt;
use gattway::hub_api::cbor;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type CborSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A tungstenite client offering `gattway.cbor`.
pub async fn cbor_client(addr: SocketAddr, path: &str) -> CborSocket {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "gattway.cbor".parse().unwrap());
    let (ws, response) = super::within("handshake", tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake");
    assert_eq!(response.headers()["sec-websocket-protocol"], "gattway.cbor");
    ws
}

/// The next message, decoded from CBOR.
pub async fn next_cbor(ws: &mut CborSocket) -> Value {
    match super::within("message", ws.next()).await {
        Some(Ok(Message::Binary(b))) => cbor::decode(&b).expect("a hub message in CBOR"),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// Sends a message as CBOR.
pub async fn send_cbor(ws: &mut CborSocket, message: &Value) {
    use futures::SinkExt;
    ws.send(Message::Binary(cbor::encode(message).into()))
        .await
        .expect("ws send");
}
