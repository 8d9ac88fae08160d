//! One bridge WebSocket: parse the query, get a session, then relay. Client frames
//! become session commands; the session's messages become frames. Bad frames get an
//! `error` and the socket carries on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::protocol::{data_bytes, parse_client, ClientMessage, ConnectParams, ServerMessage};
use super::session::{Outgoing, ReleaseReason, SessionHandle, SOCKET_QUEUE};
use super::Bridge;
use crate::gateway::serde_helpers::to_unix_ms;
use crate::http::ws;
use crate::metrics::{resident_memory_bytes, Endpoint};

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

/// Runs one upgraded bridge socket to its end.
pub async fn handle_socket(
    bridge: Bridge,
    mut ws: WebSocket,
    query: HashMap<String, String>,
    principal: Option<crate::auth::Principal>,
    shutdown: CancellationToken,
) {
    let params = match ConnectParams::from_query(&query) {
        Ok(p) => p,
        Err(text) => {
            let _ = send(&mut ws, &ServerMessage::error("missing_parameters", text.clone())).await;
            let _ = close_with(&mut ws, 1008, &text).await;
            return;
        }
    };
    let socket_id = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
    let (out_tx, mut out_rx) = mpsc::channel(SOCKET_QUEUE);
    let session = tokio::select! {
        opened = bridge.open(&params, principal.as_ref(), socket_id, out_tx) => match opened {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(code = e.close_code, reason = %e.reason, "bridge connection refused");
                let _ = send(&mut ws, &e.message).await;
                let _ = close_with(&mut ws, e.close_code, &e.reason).await;
                return;
            }
        },
        _ = shutdown.cancelled() => return,
    };
    let max_frame = bridge.config().max_frame_bytes;
    let meter = ws::Meter::open(bridge.gateway().metrics(), Endpoint::bridge);
    let (received, sent) = (&meter.received, &meter.sent);
    // The credential was checked at the upgrade; it still ends the socket when it expires.
    let expiry = ws::Deadline::of(None, principal.as_ref(), tokio::time::Instant::now());
    loop {
        tokio::select! {
            // Relay what the session sends before reading more from the client, so
            // a client pipelining writes keeps its own echoes flowing.
            biased;
            out = out_rx.recv() => match out {
                Some(Outgoing::Msg(m)) => {
                    sent.inc();
                    if send(&mut ws, &m).await.is_err() { break; }
                }
                Some(Outgoing::Close(code, reason)) => {
                    let _ = close_with(&mut ws, code, &reason).await;
                    break;
                }
                None => {
                    // The session let this socket go: it fell too far behind.
                    let _ = send(&mut ws, &ServerMessage::error("too_slow", "This client fell too far behind the device's notifications and was dropped")).await;
                    let _ = close_with(&mut ws, 1011, "client too slow").await;
                    break;
                }
            },
            frame = ws.recv() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(b))) => {
                        session.activity();
                        let msg = if b.len() > max_frame {
                            too_large(b.len(), max_frame)
                        } else {
                            ServerMessage::error("invalid_message", "Binary frames are not supported: send JSON text frames")
                        };
                        if send(&mut ws, &msg).await.is_err() { break; }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                session.activity();
                received.inc();
                if text.len() > max_frame {
                    if send(&mut ws, &too_large(text.len(), max_frame)).await.is_err() { break; }
                    continue;
                }
                let reply = match parse_client(text.as_str()) {
                    Ok(msg) => on_message(&bridge, &session, socket_id, msg, &mut ws).await,
                    Err((code, error)) => Some(ServerMessage::error(code, error)),
                };
                if let Some(reply) = reply {
                    sent.inc();
                    if send(&mut ws, &reply).await.is_err() { break; }
                }
            }
            passed = expiry.passed() => {
                let error = passed.error();
                let _ = send(&mut ws, &ServerMessage::error("session_expired", error.to_string())).await;
                let _ = close_with(&mut ws, ws::POLICY, &error.to_string()).await;
                break;
            }
            _ = shutdown.cancelled() => {
                let _ = close_with(&mut ws, 1001, "server shutting down").await;
                break;
            }
        }
    }
    drop(meter);
    session.detach(socket_id).await;
}

fn too_large(len: usize, max: usize) -> ServerMessage {
    ServerMessage::error(
        "message_too_large",
        format!("Message of {len} bytes is larger than the {max}-byte limit; it was dropped"),
    )
}

/// Acts on one client message; the reply to send, if any.
async fn on_message(
    bridge: &Bridge,
    session: &SessionHandle,
    socket_id: u64,
    msg: ClientMessage,
    ws: &mut WebSocket,
) -> Option<ServerMessage> {
    match msg {
        ClientMessage::Data { data } => match data_bytes(&data) {
            Err(e) => Some(ServerMessage::error("invalid_data", e)),
            Ok(bytes) => session
                .write(bytes, socket_id)
                .await
                .err()
                .map(|e| ServerMessage::error("write_failed", format!("Write failed: {e}"))),
        },
        ClientMessage::Keepalive => Some(ServerMessage::KeepaliveAck {
            timestamp: to_unix_ms(std::time::SystemTime::now()),
        }),
        ClientMessage::Disconnect => {
            session.release(ReleaseReason::ClientDisconnect).await;
            None
        }
        ClientMessage::Cleanup => {
            session.release(ReleaseReason::Cleanup).await;
            None
        }
        ClientMessage::ForceCleanup { token, all_sessions } => {
            let target = match token.as_deref() {
                Some(t) => match bridge.find_by_token(t) {
                    Some(s) => s,
                    None => return Some(ServerMessage::error(
                        "invalid_token",
                        "Invalid token: no session holds it. Use the token from your `connected` message.",
                    )),
                },
                None => session.clone(),
            };
            bridge.mark_releasing(&target.device);
            // Interstitial: clients keep waiting for force_cleanup_complete.
            let notice = ServerMessage::Warning {
                warning: format!(
                    "Cleaning up: releasing {} (session '{}')",
                    target.device, target.id
                ),
            };
            let _ = send(ws, &notice).await;
            let message = if all_sessions {
                let n = bridge
                    .release_all(Some(&target.device), ReleaseReason::ForceCleanup)
                    .await;
                format!("All sessions cleaned up ({n})")
            } else {
                target.release(ReleaseReason::ForceCleanup).await;
                "Cleanup complete".to_string()
            };
            Some(ServerMessage::ForceCleanupComplete { message })
        }
        ClientMessage::AdminCleanup { auth, action } => {
            if !bridge.admin_token_matches(auth.as_deref()) {
                return Some(ServerMessage::error(
                    "unauthorized",
                    "Unauthorized: admin_cleanup needs the configured bridge.admin_token in `auth`",
                ));
            }
            if action.as_deref() != Some("cleanup_all") {
                return Some(ServerMessage::error(
                    "invalid_message",
                    "Invalid admin action: expected \"cleanup_all\"",
                ));
            }
            let n = bridge.release_all(None, ReleaseReason::Admin).await;
            Some(ServerMessage::AdminCleanupComplete {
                message: format!("All sessions cleaned up ({n})"),
                action: "cleanup_all".into(),
            })
        }
        ClientMessage::CheckPressure => {
            let stats = bridge.gateway().stats();
            Some(ServerMessage::PressureReport {
                sessions: bridge.session_count(),
                connected_devices: stats.connected,
                leases: stats.leases,
                radio_subscriptions: stats.radio_subscriptions,
                resident_memory_bytes: resident_memory_bytes(),
            })
        }
        ClientMessage::Health => Some(ServerMessage::Health {
            status: "ok",
            timestamp: to_unix_ms(std::time::SystemTime::now()),
            session: session.id.clone(),
            state: session.state().await.as_str().to_string(),
        }),
    }
}

async fn send(ws: &mut WebSocket, msg: &ServerMessage) -> Result<(), axum::Error> {
    // Serialising our own enum cannot fail: no maps with non-string keys, no floats.
    let text = serde_json::to_string(msg).unwrap_or_else(|_| r#"{"type":"error","error":"internal"}"#.into());
    ws.send(Message::Text(text.into())).await
}

async fn close_with(ws: &mut WebSocket, code: u16, reason: &str) -> Result<(), axum::Error> {
    ws.send(ws::close(code, reason)).await
}
