//! The index page at `/` (what is mounted; each radio's state and the open links,
//! to a credential that may see them), which is also the operator dashboard's page
//! (its live views come from `assets/dashboard.js`), and `/healthz`.

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
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\"><title>gattway</title>\
         <link rel=icon href=\"data:,\">\
         <link rel=stylesheet href=\"/dashboard.css\"><link rel=stylesheet href=\"/vendor/uPlot.min.css\">\
         <script src=\"/vendor/uPlot.iife.min.js\" defer></script><script src=\"/dashboard.js\" defer></script></head><body data-auth={auth}>\
         <h1>gattway {}</h1><p>Radio: {}.</p><ul>\
         <li><code>/mcp</code>: MCP (Streamable HTTP) for AI assistants</li>\
         <li><code>ws://…/?service=&amp;write=&amp;notify=</code>: the ble-mcp-test compatible bridge</li>\
         <li><code>/ws</code>: the control WebSocket; <a href=\"/api/v1/openapi.json\">/api/v1</a>: REST (OpenAPI)</li>{hub}\
         <li><a href=\"/metrics\">/metrics</a>, <a href=\"/healthz\">/healthz</a>, <a href=\"/readyz\">/readyz</a>, <a href=\"/health\">/health</a></li>\
         </ul>{radios}<h2>Connections</h2>{table}{DASHBOARD}</body></html>",
        env!("CARGO_PKG_VERSION"),
        escape(&state.gateway.backend_name()),
        // The dashboard asks for a credential before it calls anything.
        auth = if state.auth.enabled() { "required" } else { "none" },
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

/// The dashboard's live views, filled by `/dashboard.js` over `/ws` and `/api/v1`
/// with the credential signed in here (kept in session storage).
const DASHBOARD: &str = "<section id=login hidden><h2>Sign in</h2><form id=login-form>\
     <label>API key or JWT <input id=login-token type=password autocomplete=off></label> \
     <button type=submit>Sign in</button></form></section>\
     <section id=radios-live aria-labelledby=radios-live-h><h2 id=radios-live-h>Radio cards</h2>\
     <div id=radio-cards class=cards></div></section>\
     <section id=scan aria-labelledby=scan-h><h2 id=scan-h>Live scan</h2>\
     <button id=scan-button type=button>Scan</button> <span id=scan-status role=status></span>\
     <div class=scroll><table><thead><tr><th>name</th><th>id</th><th>RSSI</th><th>services</th><th>readings</th><th></th></tr></thead>\
     <tbody id=scan-rows></tbody></table></div></section>\
     <section id=explorer aria-labelledby=explorer-h><h2 id=explorer-h>GATT explorer</h2>\
     <p id=gatt-device>Pick a device in the scan.</p><div id=gatt-tree></div>\
     <h3>Values</h3><ol id=value-log class=log aria-live=polite></ol></section>\
     <section id=packets aria-labelledby=packets-h><h2 id=packets-h>Packet log</h2>\
     <label>Filter (TX, RX or hex) <input id=packet-filter size=12></label> \
     <button id=packet-refresh type=button>Refresh</button>\
     <div class=scroll><table><thead><tr><th>time</th><th>dir</th><th>device</th><th>bytes</th></tr></thead>\
     <tbody id=packet-rows></tbody></table></div></section>\
     <section id=leases aria-labelledby=leases-h><h2 id=leases-h>Connections and leases</h2>\
     <p>A bridge session holds its device exclusively; everyone else shares links. \
     Releasing takes a device back from its holder (<code>ble:admin</code>).</p>\
     <div class=scroll><table><thead><tr><th>device</th><th>name</th><th>state</th><th>radio</th><th>held by</th><th></th></tr></thead>\
     <tbody id=connection-rows></tbody></table></div><p id=release-status role=status></p></section>\
     <section id=hub hidden aria-labelledby=hub-h><h2 id=hub-h>Device hub</h2>\
     <div class=scroll><table><thead><tr><th>device</th><th>presence</th><th>last seen</th><th></th></tr></thead>\
     <tbody id=hub-rows></tbody></table></div>\
     <p><label>Device <input id=hub-device size=20></label> <label>Key <input id=hub-key size=12 list=hub-keys></label>\
     <datalist id=hub-keys><option value=heart_rate><option value=battery><option value=temperature><option value=humidity></datalist> \
     <label>History <select id=hub-range><option value=900000>15 min</option><option value=3600000 selected>1 hour</option>\
     <option value=86400000>24 hours</option></select></label> <button id=hub-show type=button>Show</button></p>\
     <h3>Live</h3><p id=hub-live-count role=status></p><div id=hub-live class=chart></div>\
     <h3>History (min, avg, max)</h3><p id=hub-history-count role=status></p><div id=hub-history class=chart></div>\
     <h3>Commands</h3><form id=command-form><label>Command <input id=command-name size=16></label> \
     <label>Params (JSON) <input id=command-params size=16 value=\"{}\"></label> <button type=submit>Send</button> \
     <span id=command-status role=status></span></form>\
     <div class=scroll><table><thead><tr><th>command</th><th>status</th><th>at</th><th></th></tr></thead>\
     <tbody id=command-rows></tbody></table></div><ol id=command-timeline aria-label=\"command timeline\"></ol></section>";

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
