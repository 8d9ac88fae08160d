//! The index page at `/` (what is mounted; each radio's state and the open links,
//! to a credential that may see them) and `/healthz`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Html;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::auth::Scope;
use crate::http::auth::{authorize, credential};

/// The index page. With credentials configured, device data (ids, names, lease
/// holders) is shown only to a request carrying a `ble:read` credential, and only
/// the devices its list admits.
pub(super) async fn page(state: &AppState, headers: &HeaderMap, raw_query: Option<&str>) -> Html<String> {
    let viewer = match state.auth.enabled() {
        false => Ok(None),
        true => authorize(&state.auth, credential(headers, raw_query), Scope::BleRead).map(Some),
    };
    let connections = match &viewer {
        Ok(p) => state
            .gateway
            .connections()
            .into_iter()
            .filter(|c| crate::auth::admits(p.as_ref(), &c.id, c.name.as_deref()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let rows: String = connections
        .iter()
        .map(|c| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
                escape(c.id.as_str()),
                escape(c.name.as_deref().unwrap_or("")),
                c.state,
                escape(c.lease_holder.as_deref().unwrap_or(""))
            )
        })
        .collect();
    let radios: String = match &viewer {
        Ok(_) => state
            .gateway
            .radios()
            .await
            .iter()
            .map(|r| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{:?}{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
                    escape(&r.name),
                    r.kind,
                    r.state,
                    r.detail
                        .as_deref()
                        .map(|d| format!(": {}", escape(d)))
                        .unwrap_or_default(),
                    if r.scanning { "yes" } else { "no" },
                    r.last_advert_age_ms
                        .map(|ms| format!("{:.1} s ago", ms as f64 / 1000.0))
                        .unwrap_or_else(|| "never".into()),
                    r.slots_used,
                    r.slots_used + r.slots_free,
                )
            })
            .collect(),
        Err(_) => String::new(),
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>gattway</title></head><body>\
         <h1>gattway {}</h1><p>Radio: {}.</p><ul>\
         <li><code>/mcp</code>: MCP (Streamable HTTP) for AI assistants</li>\
         <li><code>ws://…/?service=&amp;write=&amp;notify=</code>: the ble-mcp-test compatible bridge</li>\
         <li><code>/ws</code>: the control WebSocket; <a href=\"/api/v1/openapi.json\">/api/v1</a>: REST (OpenAPI)</li>{hub}\
         <li><a href=\"/metrics\">/metrics</a>, <a href=\"/healthz\">/healthz</a>, <a href=\"/readyz\">/readyz</a>, <a href=\"/health\">/health</a></li>\
         </ul>{radios}<h2>Connections</h2>{table}</body></html>",
        env!("CARGO_PKG_VERSION"),
        escape(&state.gateway.backend_name()),
        table = match viewer {
            Ok(_) => format!(
                "<table><tr><th>id</th><th>name</th><th>state</th><th>held by</th></tr>{rows}</table>"
            ),
            Err(_) => "<p>Sign in to see devices: send a credential with the ble:read scope \
                       (<code>Authorization: Bearer …</code> or <code>?access_token=…</code>).</p>"
                .to_string(),
        },
        radios = if radios.is_empty() {
            String::new()
        } else {
            format!(
                "<h2>Radios</h2><table><tr><th>radio</th><th>kind</th><th>state</th><th>scanning</th>\
                 <th>last advert</th><th>slots used</th></tr>{radios}</table>"
            )
        },
        hub = if state.hub.is_some() {
            "<li><code>/hub</code>: the device hub, telemetry in and commands out \
             (<a href=\"/api/v1/hub/devices\">devices</a>)</li>"
        } else {
            ""
        },
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Liveness: the process is up and the gateway answers.
pub(super) async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let stats = state.gateway.stats();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": state.gateway.backend_name(),
        "connected_devices": stats.connected,
    }))
}
