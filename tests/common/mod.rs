//! Shared test harness: a gateway over the simulator running 100× real time, and
//! helpers that wait on events (with a timeout) instead of sleeping.
#![allow(dead_code)]

pub mod bluez;
pub mod browser;
pub mod cbor;
pub mod mcp;
pub mod process;
pub mod reference;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gattway::ble::sim::spec::DeviceSpec;
use gattway::ble::sim::{SimBackend, SimConfig, SimDeviceControl, SimRadio};
use gattway::ble::DeviceId;
use gattway::gateway::{Gateway, GatewayConfig, GatewayEvent, RadioSpec};
use gattway::metrics::Metrics;
use tokio::sync::broadcast;

pub const HRM: &str = "C0:FF:EE:00:00:01";
pub const BATTERY: &str = "C0:FF:EE:00:00:02";
pub const ENV: &str = "C0:FF:EE:00:00:03";
pub const UART: &str = "C0:FF:EE:00:00:04";
pub const ROAMER: &str = "C0:FF:EE:00:00:05";
pub const CS108: &str = "C0:FF:EE:00:01:08";
pub const BTHOME: &str = "C0:FF:EE:00:00:06";
pub const BTHOME_SECURE: &str = "C0:FF:EE:00:00:07";
/// The encrypted BTHome thermometer's key (README).
pub const BTHOME_KEY: &str = "231d39c1d7cc1ab1aee224cd096db932";

/// Generous: a loaded CI machine must not turn a working feature red.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Rig {
    pub gateway: Gateway,
    pub sim: Arc<SimBackend>,
}

impl Rig {
    pub fn control(&self, id: &str) -> SimDeviceControl {
        self.sim.control(&DeviceId::new(id)).expect("simulated device")
    }
}

/// Gateway settings for tests: fast back-off, short timeouts, no idle clean-up.
pub fn fast_gateway() -> GatewayConfig {
    GatewayConfig {
        connect_timeout_ms: 3_000,
        op_timeout_ms: 2_000,
        backoff_initial_ms: 5,
        backoff_max_ms: 50,
        idle_timeout_ms: 0,
        ..GatewayConfig::default()
    }
}

pub fn sim_config(time_scale: f64, extra: Vec<DeviceSpec>) -> SimConfig {
    SimConfig {
        time_scale,
        builtin: true,
        devices: extra,
        seed: Some(42),
    }
}

pub fn rig_with(gateway: GatewayConfig, sim: SimConfig) -> Rig {
    let sim = SimBackend::new(&sim).expect("simulator");
    let gateway = Gateway::new(sim.clone(), gateway, Arc::new(Metrics::new())).expect("gateway");
    Rig { gateway, sim }
}

pub fn rig() -> Rig {
    rig_with(fast_gateway(), sim_config(100.0, vec![]))
}

/// Two simulated radios in one world: "near" hears as loud as the world, "far"
/// 20 dB fainter. Returns them and a gateway over both, with these slots.
pub fn two_radios(near_slots: usize, far_slots: usize) -> (Gateway, Arc<SimRadio>, Arc<SimRadio>) {
    let world = SimBackend::new(&sim_config(100.0, vec![])).expect("simulator");
    let (near, far) = (world.radio("near", 0), world.radio("far", -20));
    let radio = |name: &str, backend: &Arc<SimRadio>, slots| RadioSpec {
        name: name.into(),
        backend: backend.clone(),
        slots,
    };
    let radios = vec![radio("near", &near, near_slots), radio("far", &far, far_slots)];
    let gateway = Gateway::with_radios(radios, fast_gateway(), Arc::new(Metrics::new())).expect("gateway");
    (gateway, near, far)
}

/// The radio that carries the link to `id`, if there is one.
pub fn link_radio(gateway: &Gateway, id: &str) -> Option<String> {
    gateway
        .connections()
        .into_iter()
        .find(|c| c.id.as_str() == id)
        .and_then(|c| c.radio)
}

/// Waits for the gateway to say that `id` reconnected.
pub async fn reconnected(events: &mut broadcast::Receiver<GatewayEvent>, id: &str) {
    within("the reconnect", async {
        loop {
            if let Ok(GatewayEvent::Reconnected { id: got, .. }) = events.recv().await {
                if got.as_str() == id {
                    return;
                }
            }
        }
    })
    .await
}

/// Reads a raw socket until the server closes it (EOF or reset); fails after [`WAIT`].
pub async fn closed_by_server(tcp: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    within("the server to close the socket", async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
}

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits for the first gateway event that satisfies `pred`.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<GatewayEvent>,
    what: &str,
    pred: impl Fn(&GatewayEvent) -> bool,
) -> GatewayEvent {
    within(what, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed waiting for {what}"),
            }
        }
    })
    .await
}

/// The element of the JSON list `body[list]` whose `field` is `value`: one device,
/// connection, collection or reading picked out of a listing (a REST answer, a tool
/// result, a socket message) by its id. `None` when it is not listed, or `body[list]`
/// is not a list.
pub fn find_listed(
    body: &serde_json::Value,
    list: &str,
    field: &str,
    value: &str,
) -> Option<serde_json::Value> {
    body[list].as_array()?.iter().find(|e| e[field] == value).cloned()
}

/// Polls a condition the code under test updates without an event of its own
/// (counters); fails after [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
}

/// A running `gattway serve` router on port 0 over a rig's gateway.
pub struct Server {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = reqwest::get(self.url("/metrics")).await.expect("/metrics");
        resp.text().await.expect("/metrics text")
    }

    /// Stops the server and waits for it, failing the test if it does not stop.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("server stop", task)
                .await
                .expect("server task")
                .expect("server result");
        }
    }
}

pub async fn start_server(gateway: &Gateway, mcp: gattway::mcp::McpConfig) -> Server {
    start_server_with(gateway, mcp, Default::default()).await
}

pub async fn start_server_with(
    gateway: &Gateway,
    mcp: gattway::mcp::McpConfig,
    bridge: gattway::bridge::BridgeConfig,
) -> Server {
    start_server_full(gateway, mcp, bridge, Default::default()).await
}

pub async fn start_server_full(
    gateway: &Gateway,
    mcp: gattway::mcp::McpConfig,
    bridge: gattway::bridge::BridgeConfig,
    auth: gattway::auth::AuthConfig,
) -> Server {
    start_any_server(gateway, mcp, bridge, Default::default(), auth).await
}

pub async fn start_control_server(
    gateway: &Gateway,
    control: gattway::control::ControlConfig,
    auth: gattway::auth::AuthConfig,
) -> Server {
    start_any_server(gateway, Default::default(), Default::default(), control, auth).await
}

/// The real router on port 0 over `gateway`, with every front end's settings.
async fn start_any_server(
    gateway: &Gateway,
    mcp: gattway::mcp::McpConfig,
    bridge: gattway::bridge::BridgeConfig,
    control: gattway::control::ControlConfig,
    auth: gattway::auth::AuthConfig,
) -> Server {
    let setup = Setup {
        mcp,
        bridge,
        control,
        auth,
        ..Default::default()
    };
    start(gateway, setup).await.0
}

/// Everything a test server can be given; `Default` is `gattway serve`'s defaults
/// without the hub.
#[derive(Default)]
pub struct Setup {
    pub mcp: gattway::mcp::McpConfig,
    pub bridge: gattway::bridge::BridgeConfig,
    pub control: gattway::control::ControlConfig,
    pub auth: gattway::auth::AuthConfig,
    pub http: gattway::http::HttpConfig,
    pub websocket: gattway::http::ws::WebSocketConfig,
    /// The hub on a store at this URL, with these settings.
    pub hub: Option<(String, gattway::hub::HubConfig)>,
}

/// The real router on port 0 over `gateway`, as `setup` says.
pub async fn start(gateway: &Gateway, setup: Setup) -> (Server, Option<gattway::hub::Hub>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let auth = std::sync::Arc::new(gattway::auth::Authenticator::new(&setup.auth).expect("auth config"));
    let hub = match setup.hub {
        Some((db, config)) => {
            let store = gattway::store::open(&db).await.expect("store");
            Some(
                gattway::hub::Hub::start(store, gateway, auth.clone(), config, &Default::default())
                    .await
                    .expect("hub"),
            )
        }
        None => None,
    };
    let mut state =
        gattway::app::AppState::with_control(gateway.clone(), setup.mcp, setup.bridge, setup.control, auth)
            .with_http(setup.http)
            .with_websocket(&setup.websocket);
    if let Some(hub) = &hub {
        state = state.with_hub(hub.clone());
    }
    let task = tokio::spawn(gattway::app::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let server = Server {
        addr,
        stop: Some(stop),
        task: Some(task),
    };
    (server, hub)
}

impl Rig {
    /// Scans with `filter` for `ms` milliseconds and returns what was heard.
    pub async fn scan(&self, filter: gattway::ble::ScanFilter, ms: u64) -> Vec<gattway::gateway::DeviceInfo> {
        self.gateway
            .scan(filter, Duration::from_millis(ms))
            .await
            .expect("scan")
            .collect()
            .await
    }
}

/// An API key whose secret is its own name (tests only), with scopes and a device list.
pub fn api_key(
    name: &str,
    scopes: Vec<gattway::auth::Scope>,
    devices: Vec<&str>,
) -> gattway::auth::ApiKeyConfig {
    gattway::auth::ApiKeyConfig {
        name: name.into(),
        sha256: gattway::auth::sha256_hex(name.as_bytes()),
        scopes,
        devices: devices.into_iter().map(String::from).collect(),
    }
}

/// The next notification's value on a subscription (lag notices skipped).
pub async fn next_value(sub: &mut gattway::gateway::Subscription) -> Vec<u8> {
    loop {
        match within("notification", sub.recv())
            .await
            .expect("subscription open")
        {
            gattway::gateway::SubscriptionEvent::Notification(n) => return n.value.to_vec(),
            gattway::gateway::SubscriptionEvent::Lagged(_) => continue,
        }
    }
}

/// A database of its own for one test, deleted when dropped: a SQLite file in the
/// temp directory (with its WAL), or a PostgreSQL database made on the server that
/// `./test.sh` runs (`GATTWAY_TEST_POSTGRES`, default
/// `postgres://postgres@127.0.0.1:5432/test`, names where to make it).
pub struct TempDb {
    engine: Engine,
}

enum Engine {
    Sqlite(std::path::PathBuf),
    /// The database's name, on the admin URL's server.
    Postgres(String),
}

/// Where tests make their PostgreSQL databases.
pub fn postgres_admin_url() -> String {
    std::env::var("GATTWAY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs one statement on the admin database, from a thread of its own, so a
/// synchronous constructor or `Drop` can make and remove databases.
/// Never panics (it runs in `Drop`): says what failed instead.
fn postgres_admin(sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            use sqlx::Connection;
            let url = postgres_admin_url();
            let mut admin = sqlx::PgConnection::connect(&url)
                .await
                .map_err(|e| format!("PostgreSQL at {url} (./test.sh starts it): {e}"))?;
            sqlx::raw_sql(&sql)
                .execute(&mut admin)
                .await
                .map_err(|e| format!("{sql}: {e}"))?;
            Ok(())
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the PostgreSQL admin thread panicked".into()))
}

impl TempDb {
    /// A SQLite file.
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("gattway-test-{}.db", uuid::Uuid::new_v4()));
        TempDb {
            engine: Engine::Sqlite(path),
        }
    }

    /// An empty PostgreSQL database.
    pub fn postgres() -> Self {
        let name = format!("gattway_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = postgres_admin(format!("CREATE DATABASE {name}")) {
            panic!("{e}");
        }
        TempDb {
            engine: Engine::Postgres(name),
        }
    }

    pub fn url(&self) -> String {
        match &self.engine {
            Engine::Sqlite(path) => format!("sqlite://{}", path.display()),
            Engine::Postgres(name) => {
                let admin = postgres_admin_url();
                let server = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(server, _)| server);
                format!("{server}/{name}")
            }
        }
    }

    /// Runs SQL on the database behind the server's back (a test's sabotage):
    /// `sqlite` or `postgres`, whichever this database is.
    pub async fn execute(&self, sqlite: &str, postgres: &str) {
        match &self.engine {
            Engine::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect(&self.url()).await.expect("open SQLite");
                sqlx::raw_sql(sqlite).execute(&pool).await.expect(sqlite);
            }
            Engine::Postgres(_) => {
                let pool = sqlx::PgPool::connect(&self.url()).await.expect("open PostgreSQL");
                sqlx::raw_sql(postgres).execute(&pool).await.expect(postgres);
            }
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        match &self.engine {
            Engine::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm", ".gattway-lock"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            // FORCE: a server a failed test left running still holds connections.
            Engine::Postgres(name) => {
                if let Err(e) = postgres_admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
                    eprintln!("test database {name} left behind: {e}");
                }
            }
        }
    }
}

/// A folder in the temp directory, deleted with what it holds when dropped.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("gattway-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("make a temp folder");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Hub settings for tests: no BLE feed unless a test asks for it, and no retention:
/// tests store points with old timestamps (1970, 2025), which the retention task,
/// running at start, would rightly delete under a test's feet.
pub fn hub_config() -> gattway::hub::HubConfig {
    gattway::hub::HubConfig {
        sim_feed: false,
        advert_feed: false,
        retention_days: 0.0,
        ..Default::default()
    }
}

/// The real router with the device hub on a store at `db`.
pub async fn start_hub_server(
    gateway: &Gateway,
    db: &str,
    hub: gattway::hub::HubConfig,
    auth: gattway::auth::AuthConfig,
) -> (Server, gattway::hub::Hub) {
    let setup = Setup {
        auth,
        hub: Some((db.to_string(), hub)),
        ..Default::default()
    };
    let (server, hub) = start(gateway, setup).await;
    (server, hub.expect("hub started"))
}

/// A WebSocket client speaking JSON, for the hub.
pub struct JsonWs {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl JsonWs {
    /// Connects, or says why the upgrade was refused (the HTTP status among it).
    pub async fn try_connect(url: &str) -> Result<Self, String> {
        match within("ws connect", tokio_tungstenite::connect_async(url)).await {
            Ok((ws, _)) => Ok(JsonWs { ws }),
            Err(e) => Err(e.to_string()),
        }
    }

    pub async fn connect(url: &str) -> Self {
        let (ws, _) = within("ws connect", tokio_tungstenite::connect_async(url))
            .await
            .expect("ws handshake");
        JsonWs { ws }
    }

    pub async fn send(&mut self, v: serde_json::Value) {
        use futures::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Text(
                v.to_string().into(),
            ))
            .await
            .expect("ws send");
    }

    pub async fn send_text(&mut self, text: &str) {
        use futures::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .expect("ws send");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        use futures::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Binary(
                bytes.to_vec().into(),
            ))
            .await
            .expect("ws send");
    }

    /// The next JSON message; `None` when the socket closed.
    pub async fn try_next(&mut self) -> Option<serde_json::Value> {
        use futures::StreamExt;
        loop {
            match within("ws message", self.ws.next()).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    return Some(serde_json::from_str(&t).expect("JSON message"))
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | None | Some(Err(_)) => {
                    return None
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn next(&mut self) -> serde_json::Value {
        self.try_next().await.expect("socket closed")
    }

    /// The next message of `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let v = self.next().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// The close frame's code, skipping messages before it.
    pub async fn close_code(&mut self) -> Option<u16> {
        use futures::StreamExt;
        loop {
            match within("ws close", self.ws.next()).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code))
                }
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }
}
