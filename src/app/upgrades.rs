//! The WebSocket upgrades: each front end's socket behind the door's checks (the
//! guard ran before; the credential at the upgrade is checked here) and the
//! connection layer's limits.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::Scope;
use crate::http::auth::upgrade_credential;
use crate::http::{problem, ws};
use crate::{bridge, control, hub_api};

/// Bytes of hub frames gathered before a write (a flush writes what is there).
const HUB_WRITE_BUFFER: usize = 32 * 1024;

/// A WebSocket upgrade is a bridge client; a plain GET is a person.
pub(super) async fn index_or_bridge(
    State(state): State<AppState>,
    ws: Result<ws::Request, StatusCode>,
    Query(query): Query<HashMap<String, String>>,
    axum::extract::RawQuery(raw_query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(ws) = ws else {
        return super::index::page(&state, &headers, raw_query.as_deref())
            .await
            .into_response();
    };
    // The bridge writes to the device, so a credential (when configured) must allow it.
    let principal =
        match upgrade_credential(&state.auth, &headers, raw_query.as_deref(), Some(Scope::BleWrite)) {
            Ok(p) => p,
            Err(refusal) => return *refusal,
        };
    // Up to `bridge.max_frame_bytes` frames are handled; a client that overshoots
    // gets an `error` and carries on (as ble-mcp-test answers); a frame past 8×
    // that (at least 64 KiB) closes the socket (1009) before it is buffered whole.
    let limit = (state.bridge.config().max_frame_bytes * 8).max(64 * 1024);
    let (bridge, shutdown) = (state.bridge.clone(), state.shutdown.clone());
    let limits = ws::Limits {
        max_message: limit,
        write_buffer: 0,
    };
    state.upgrade.accept(ws, limits, None, move |socket| {
        bridge::handle_socket(bridge, socket, query, principal, shutdown)
    })
}

/// The control WebSocket. A credential at the upgrade (header or `access_token=`)
/// authenticates the connection; without one, AUTHENTICATE must come first.
pub(super) async fn control_socket(
    State(state): State<AppState>,
    ws: ws::Request,
    axum::extract::RawQuery(raw_query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    // Without a credential here, AUTHENTICATE must be the first request.
    let principal = match upgrade_credential(&state.auth, &headers, raw_query.as_deref(), None) {
        Ok(p) => p,
        Err(refusal) => return *refusal,
    };
    let ticket = state.control.admit(state.guard.waiting(), principal.is_some());
    let max = state.control.config().max_message_bytes.max(1024) * 4;
    let (control, deadline, shutdown) = (
        state.control.clone(),
        state.guard.auth_deadline(),
        state.shutdown.clone(),
    );
    let limits = ws::Limits {
        max_message: max,
        write_buffer: 0,
    };
    state.upgrade.accept(ws, limits, None, move |socket| {
        control::handle_socket(control, socket, principal, ticket, deadline, shutdown)
    })
}

/// The device hub. Devices and clients authenticate at the upgrade (header,
/// `token=` or `access_token=`) or with an `auth` message first.
pub(super) async fn hub_socket(
    State(state): State<AppState>,
    ws: ws::Request,
    Query(query): Query<HashMap<String, String>>,
    axum::extract::RawQuery(raw_query): axum::extract::RawQuery,
    remote: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let Some(hub) = state.hub.clone() else {
        return problem(
            StatusCode::NOT_FOUND,
            "HUB_DISABLED",
            "this server runs without the device hub",
        );
    };
    let principal = match upgrade_credential(&state.auth, &headers, raw_query.as_deref(), None) {
        Ok(p) => p,
        Err(refusal) => return *refusal,
    };
    let protocol = ws::chosen_protocol(&headers, &[hub_api::cbor::PROTOCOL]);
    let hello = hub_api::Hello {
        principal,
        role: query.get("role").cloned(),
        device: query.get("device").cloned(),
        remote: remote.map(|r| r.0 .0.to_string()),
        batch: query.get("batch").is_some_and(|v| v == "1" || v == "true"),
        cbor: protocol.is_some(),
        auth_deadline: state.guard.auth_deadline(),
    };
    // Without auth configured every connection counts as authenticated.
    let authenticated = hello.principal.is_some() || !state.auth.enabled();
    let ticket = state.hub_slots.admit(state.guard.waiting(), authenticated);
    let max = hub.config().max_message_bytes.max(1024) * 2;
    let shutdown = state.shutdown.clone();
    // Frames a client is sent back to back are written together; the buffer
    // exists only once something was sent.
    let limits = ws::Limits {
        max_message: max,
        write_buffer: HUB_WRITE_BUFFER,
    };
    state.upgrade.accept(ws, limits, protocol, move |socket| {
        hub_api::handle_socket(hub, socket, hello, ticket, shutdown)
    })
}
