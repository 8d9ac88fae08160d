//! The device hub end to end: real server on port 0, on the store the including
//! test binary names (`tests/hub.rs`: SQLite, `tests/hub_postgres.rs`:
//! PostgreSQL), devices and clients over WebSocket, history and commands over REST.
//! One file per concern; the `Hub` harness below is what they share.

mod auth;
mod bad_messages;
mod ble_feeds;
mod commands;
mod history;
mod limits;
mod presence;
mod rest;
mod subscriptions;
mod telemetry;

use crate::common::*;
use crate::store;
use gattway::auth::AuthConfig;
use serde_json::{json, Value};

/// A hub server on port 0 over the simulator, on a fresh store, with what it
/// needs kept alive for the test.
struct Hub {
    server: Server,
    hub: gattway::hub::Hub,
    _db: TempDb,
    _rig: Rig,
}

impl Hub {
    async fn start(config: gattway::hub::HubConfig) -> Hub {
        Self::start_with(config, AuthConfig::default()).await
    }

    async fn start_with(config: gattway::hub::HubConfig, auth: AuthConfig) -> Hub {
        let rig = rig();
        let db = store();
        let (server, hub) = start_hub_server(&rig.gateway, &db.url(), config, auth).await;
        Hub {
            server,
            hub,
            _db: db,
            _rig: rig,
        }
    }

    fn ws(&self, query: &str) -> String {
        format!("ws://{}/hub?{query}", self.server.addr)
    }

    async fn device(&self, id: &str) -> JsonWs {
        let mut ws = JsonWs::connect(&self.ws(&format!("device={id}"))).await;
        let welcome = ws.next().await;
        assert_eq!(
            (welcome["type"].clone(), welcome["device"].clone()),
            (json!("welcome"), json!(id))
        );
        ws
    }

    async fn client(&self) -> JsonWs {
        let mut ws = JsonWs::connect(&self.ws("role=client")).await;
        assert_eq!(ws.next().await["type"], "welcome");
        ws
    }

    async fn get(&self, path: &str) -> Value {
        let resp = reqwest::get(self.server.url(path)).await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }
}
