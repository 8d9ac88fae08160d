//! One bridge WebSocket: parse the query, get a session, then relay. Client frames
//! become session commands; the session's messages become frames. Bad frames get an
//! `error` and the socket carries on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::protocol::{data_bytes, parse_client, ClientMessage, ConnectParams, ServerMessage};
use super::session::{Outgoing, ReleaseReason, SessionHandle, SOCKET_QUEUE};
use super::Bridge;
use crate::auth::AuthError;
use crate::gateway::serde_helpers::to_unix_ms;
use crate::http::ws::{self, Closed, Connection, Deadline, Ends, Inbound};
use crate::metrics::{resident_memory_bytes, Endpoint};

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

/// Runs one upgraded bridge socket to its end. Not an `async fn`: the
/// connection's state is built before the future is made and run through
/// `&mut self`, so the task holds one copy of it.
pub fn handle_socket(
    bridge: Bridge,
    ws: ws::Socket,
    query: HashMap<String, String>,
    principal: Option<crate::auth::Principal>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send {
    let meter = ws::Meter::open(bridge.gateway().metrics(), Endpoint::bridge);
    let conn = Connection::new(ws, meter, bridge.config().max_frame_bytes);
    // The credential was checked at the upgrade; it still ends the socket when it expires.
    let expiry = Deadline::of(None, principal.as_ref(), tokio::time::Instant::now());
    let mut socket = Socket {
        bridge,
        conn,
        ends: Ends::new(expiry, shutdown),
        query,
        principal,
    };
    async move { socket.run().await }
}

struct Socket {
    bridge: Bridge,
    conn: Connection,
    ends: Ends,
    query: HashMap<String, String>,
    principal: Option<crate::auth::Principal>,
}

impl Socket {
    async fn run(&mut self) {
        let params = match ConnectParams::from_query(&std::mem::take(&mut self.query)) {
            Ok(p) => p,
            Err(text) => {
                let _ = send(
                    &mut self.conn,
                    &ServerMessage::error("missing_parameters", text.clone()),
                )
                .await;
                self.conn.close(1008, &text).await;
                return;
            }
        };
        let socket_id = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
        let (out_tx, mut out_rx) = mpsc::channel(SOCKET_QUEUE);
        let opening = Box::pin(
            self.bridge
                .open(&params, self.principal.as_ref(), socket_id, out_tx),
        );
        let session = tokio::select! {
            opened = opening => match opened {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(code = e.close_code, reason = %e.reason, "bridge connection refused");
                    let _ = send(&mut self.conn, &e.message).await;
                    self.conn.close(e.close_code, &e.reason).await;
                    return;
                }
            },
            _ = self.ends.wait() => return,
        };
        drop(params);
        let bridge = &self.bridge;
        let conn = &mut self.conn;
        loop {
            tokio::select! {
                // Relay what the session sends before reading more from the client, so
                // a client pipelining writes keeps its own echoes flowing.
                biased;
                out = out_rx.recv() => match out {
                    Some(Outgoing::Msg(m)) => {
                        if send(conn, &m).await.is_err() { break; }
                    }
                    Some(Outgoing::Close(code, reason)) => {
                        conn.close(code, &reason).await;
                        break;
                    }
                    None => {
                        // The session let this socket go: it fell too far behind.
                        let _ = send(conn, &ServerMessage::error("too_slow", "This client fell too far behind the device's notifications and was dropped")).await;
                        conn.close(1011, "client too slow").await;
                        break;
                    }
                },
                inbound = conn.recv() => {
                    session.activity();
                    let max = conn.max_bytes();
                    let reply = match inbound {
                        Inbound::Closed => break,
                        Inbound::TooLarge(len) => Some(too_large(len, max)),
                        // Unlimited here: a bridge client is one app driving one device.
                        Inbound::TooFast(_) => None,
                        Inbound::Binary(_) => Some(ServerMessage::error("invalid_message", "Binary frames are not supported: send JSON text frames")),
                        Inbound::Text(text) => match parse_client(&text) {
                            Ok(msg) => Box::pin(on_message(bridge, &session, socket_id, msg, conn)).await,
                            Err((code, error)) => Some(ServerMessage::error(code, error)),
                        },
                    };
                    if let Some(reply) = reply {
                        if send(conn, &reply).await.is_err() { break; }
                    }
                }
                end = self.ends.wait() => {
                    let tell = |e: AuthError| message_text(&ServerMessage::error("session_expired", e.to_string())).into();
                    conn.end(end, tell).await;
                    break;
                }
            }
        }
        session.detach(socket_id).await;
    }
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
    conn: &mut Connection,
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
            let _ = send(conn, &notice).await;
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

fn message_text(msg: &ServerMessage) -> String {
    // Serialising our own enum cannot fail: no maps with non-string keys, no floats.
    serde_json::to_string(msg).unwrap_or_else(|_| r#"{"type":"error","error":"internal"}"#.into())
}

async fn send(conn: &mut Connection, msg: &ServerMessage) -> Result<(), Closed> {
    conn.send(message_text(msg)).await
}
