//! The holes of the "one door" issue, each tried as an attacker would: a test per
//! hole that failed on the main before it and passes now.

mod common;

use std::time::Duration;

use common::*;
use gattway::auth::{AuthConfig, Scope};
use gattway::ble::{Uuid, WriteKind};
use gattway::gateway::ConnectOptions;
use gattway::http::HttpConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NUS: &str = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_RX: &str = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
const CS108_QUERY: &str = "service=9800&write=9900&notify=9901&device=CS108";

fn keys(list: Vec<gattway::auth::ApiKeyConfig>) -> AuthConfig {
    AuthConfig {
        api_keys: list,
        jwt_secret: "jwt-secret".into(),
        ..Default::default()
    }
}

fn jwt(subject: &str, scopes: &[Scope], ttl_secs: u64) -> String {
    gattway::auth::issue_jwt(
        "jwt-secret",
        &gattway::auth::TokenRequest {
            subject,
            scopes,
            devices: &[],
            ttl: Duration::from_secs(ttl_secs),
            audience: None,
            issuer: None,
        },
    )
    .expect("jwt")
}

/// The server with these credentials and `[http]` settings, everything else as by
/// default.
async fn with(rig: &Rig, auth: AuthConfig, http: HttpConfig) -> Server {
    let setup = Setup {
        auth,
        http,
        ..Default::default()
    };
    start(&rig.gateway, setup).await.0
}

async fn with_auth(rig: &Rig, auth: AuthConfig) -> Server {
    with(rig, auth, HttpConfig::default()).await
}

async fn with_http(rig: &Rig, http: HttpConfig) -> Server {
    with(rig, AuthConfig::default(), http).await
}

#[tokio::test]
async fn a_foreign_host_is_refused_on_every_route() {
    let rig = rig();
    let http = HttpConfig {
        allowed_hosts: vec!["gw.lan".into()],
        ..Default::default()
    };
    let server = with_http(&rig, http).await;
    let port = server.addr.port();
    let client = reqwest::Client::new();
    let get = |path: &str, host: String| client.get(server.url(path)).header("Host", host).send();
    // A page on evil.test, which resolves to 127.0.0.1, is same-origin with the
    // gateway as far as the browser knows: every route must refuse it.
    for path in [
        "/api/v1/devices",
        "/api/v1/packets",
        "/metrics",
        "/healthz",
        "/",
        "/mcp",
        "/ws",
    ] {
        let r = get(path, format!("evil.test:{port}")).await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "HOST_NOT_ALLOWED", "{path}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("gw.lan:{port}"),
    ] {
        let r = get("/api/v1/devices", host.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    // A cross-site request from a browser is refused on REST too, not only on WebSockets.
    let r = client
        .get(server.url("/api/v1/devices"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn a_device_credential_is_the_device_it_names() {
    let rig = rig();
    let db = TempDb::new();
    let auth = keys(vec![
        api_key("sensor-7", vec![Scope::HubDevice], vec![]),
        api_key("installer", vec![Scope::HubDevice], vec!["boiler"]),
        api_key("two-devices", vec![Scope::HubDevice], vec!["a", "b"]),
    ]);
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), auth).await;
    let url = |q: &str| format!("ws://{}/hub?{q}", server.addr);

    // The impostor: sensor-7's key asking to be the boiler.
    let mut impostor = JsonWs::connect(&url("token=sensor-7&device=boiler")).await;
    let refused = impostor.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "FORBIDDEN", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("sensor-7"),
        "{refused}"
    );
    assert_eq!(impostor.close_code().await, Some(1008));

    let mut own = JsonWs::connect(&url("token=sensor-7")).await;
    let welcome = own.next().await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["device"].as_str()),
        (Some("welcome"), Some("sensor-7"))
    );
    // Naming itself is fine.
    let mut named = JsonWs::connect(&url("token=sensor-7&device=sensor-7")).await;
    assert_eq!(named.next_of("welcome").await["device"], "sensor-7");

    // A list of one device is that device, whatever the key's name.
    let mut boiler = JsonWs::connect(&url("token=installer")).await;
    assert_eq!(boiler.next().await["device"], "boiler");

    // A list of several is no one device.
    let mut many = JsonWs::connect(&url("token=two-devices&device=a")).await;
    let refused = many.next().await;
    assert_eq!(refused["code"], "FORBIDDEN", "{refused}");
    assert_eq!(many.close_code().await, Some(1008));
    server.stop().await;
}

#[tokio::test]
async fn a_device_list_holds_for_the_packet_log() {
    let rig = rig();
    let auth = keys(vec![
        api_key("everything", vec![Scope::BleRead], vec![]),
        api_key("reader-only", vec![Scope::BleRead], vec!["CS108*"]),
    ]);
    let server = with_auth(&rig, auth).await;
    rig.gateway
        .connect(UART, ConnectOptions::default())
        .await
        .expect("connect UART");
    let (nus, rx): (Uuid, Uuid) = (NUS.parse().unwrap(), NUS_RX.parse().unwrap());
    rig.gateway
        .device(&gattway::ble::DeviceId::new(UART))
        .write(nus, rx, b"secret".to_vec(), WriteKind::WithResponse)
        .await
        .expect("write");
    let packets = |key: &'static str| {
        let url = server.url("/api/v1/packets?since=60s");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let all = packets("everything").await;
    let devices: Vec<&str> = all["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["device"].as_str().unwrap())
        .collect();
    assert!(devices.contains(&UART), "the UART's traffic is logged: {all}");
    let limited = packets("reader-only").await;
    assert_eq!(
        limited["packets"],
        json!([]),
        "the UART is not in the list: {limited}"
    );
    assert_eq!(limited["count"], 0);
    server.stop().await;
}

#[tokio::test]
async fn an_unauthenticated_control_socket_sees_nothing_and_is_closed_at_its_deadline() {
    let rig = rig();
    let auth = keys(vec![api_key("reader", vec![Scope::BleRead], vec![])]);
    let http = HttpConfig {
        auth_deadline_ms: 1500,
        ..Default::default()
    };
    let server = with(&rig, auth, http).await;
    let mut lurker = JsonWs::connect(&format!("ws://{}/ws", server.addr)).await;
    // A link change while the lurker has not authenticated.
    rig.gateway
        .connect(HRM, ConnectOptions::default())
        .await
        .expect("connect HRM");
    let mut seen = Vec::new();
    while let Some(m) = lurker.try_next().await {
        seen.push(m);
    }
    assert!(
        seen.iter().all(|m| m["type"] != "CONNECTED"),
        "no event before authenticating: {seen:?}"
    );
    let last = seen.last().expect("told why");
    assert_eq!(
        (last["type"].as_str(), last["code"].as_str()),
        (Some("ERROR"), Some("NOT_AUTHENTICATED")),
        "{seen:?}"
    );

    // The close code, on a second lurker.
    let mut second = JsonWs::connect(&format!("ws://{}/ws", server.addr)).await;
    assert_eq!(second.close_code().await, Some(1008));
    server.stop().await;
}

#[tokio::test]
async fn the_index_page_shows_devices_only_to_a_credential_that_may_see_them() {
    let rig = rig();
    let auth = keys(vec![
        api_key("reader", vec![Scope::BleRead], vec![]),
        api_key("cs108-only", vec![Scope::BleRead], vec!["CS108*"]),
    ]);
    let server = with_auth(&rig, auth).await;
    rig.gateway
        .connect(HRM, ConnectOptions::default())
        .await
        .expect("connect HRM");
    let page = |query: &'static str| {
        let url = server.url(&format!("/{query}"));
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let anonymous = page("").await;
    assert!(
        !anonymous.contains(HRM) && !anonymous.contains("Gattway HRM"),
        "{anonymous}"
    );
    assert!(
        anonymous.contains("ble:read"),
        "says how to see more: {anonymous}"
    );
    assert!(!anonymous.contains("<h2>Radios</h2>"), "{anonymous}");
    let reader = page("?access_token=reader").await;
    assert!(reader.contains(HRM), "{reader}");
    let limited = page("?access_token=cs108-only").await;
    assert!(!limited.contains(HRM), "{limited}");
    server.stop().await;
}

#[tokio::test]
async fn a_bridge_session_resumes_only_with_its_token_or_its_credential() {
    let rig = rig();
    let auth = keys(vec![
        api_key("alice", vec![Scope::BleWrite], vec![]),
        api_key("mallory", vec![Scope::BleWrite], vec![]),
    ]);
    let server = with_auth(&rig, auth).await;
    let open = |query: String| {
        let url = format!("ws://{}/?{CS108_QUERY}&{query}", server.addr);
        async move { JsonWs::connect(&url).await }
    };
    let mut alice = open("session=s1&access_token=alice".into()).await;
    let token = alice.next_of("connected").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    drop(alice);

    // Mallory knows the session id, not its token.
    let mut mallory = open("session=s1&access_token=mallory".into()).await;
    let refused = mallory.next().await;
    assert_eq!(refused["code"], "session_in_use", "{refused}");
    assert_eq!(mallory.close_code().await, Some(1008));
    // Nor does a busy answer give the id away to someone else.
    let mut other = open("session=m1&access_token=mallory".into()).await;
    let busy = other.next().await;
    assert_eq!(busy["code"], "busy", "{busy}");
    assert!(busy.get("blocking_session_id").is_none(), "{busy}");
    assert!(!busy["error"].as_str().unwrap().contains("s1"), "{busy}");

    // With the token, the session resumes; so it does for its own credential.
    let mut with_token = open(format!("session=s1&access_token=mallory&session_token={token}")).await;
    assert_eq!(with_token.next_of("connected").await["token"], token.as_str());
    drop(with_token);
    let mut again = open("session=s1&access_token=alice".into()).await;
    assert_eq!(again.next_of("connected").await["token"], token.as_str());
    server.stop().await;
}

#[tokio::test]
async fn streams_end_when_their_token_expires() {
    let rig = rig();
    let db = TempDb::new();
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), keys(vec![])).await;
    let token = jwt("dashboard", &[Scope::HubClient], 1);
    let mut client = JsonWs::connect(&format!("ws://{}/hub?access_token={token}", server.addr)).await;
    assert_eq!(client.next().await["type"], "welcome");
    let told = client.next().await;
    assert_eq!(told["code"], "SESSION_EXPIRED", "{told}");
    assert_eq!(client.close_code().await, Some(1008));
    server.stop().await;

    let rig = rig_with(fast_gateway(), sim_config(100.0, vec![]));
    let auth = keys(vec![]);
    let server = with_auth(&rig, auth).await;
    let token = jwt("web-app", &[Scope::BleWrite], 1);
    let mut bridge = JsonWs::connect(&format!(
        "ws://{}/?{CS108_QUERY}&access_token={token}",
        server.addr
    ))
    .await;
    assert_eq!(bridge.next_of("connected").await["type"], "connected");
    let told = bridge.next_of("error").await;
    assert_eq!(told["code"], "session_expired", "{told}");
    assert_eq!(bridge.close_code().await, Some(1008));
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_the_socket_before_it_is_buffered() {
    let rig = rig();
    let (server, _) = start(&rig.gateway, Setup::default()).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let handshake = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = within("upgrade", tcp.read(&mut head)).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    // A text frame that says it is 8 MiB long, and then nothing: the server must
    // refuse it at its header, not wait to buffer 8 MiB.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(8u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&frame).await.unwrap();
    closed_by_server(&mut tcp).await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let rig = rig();
    let http = HttpConfig {
        header_read_timeout_ms: 300,
        ..Default::default()
    };
    let server = with_http(&rig, http).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    closed_by_server(&mut tcp).await;
    // A complete request on a fresh connection is answered as usual.
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_slot() {
    let rig = rig();
    let http = HttpConfig {
        max_connections: 2,
        ..Default::default()
    };
    let server = with_http(&rig, http).await;
    let first = JsonWs::connect(&format!("ws://{}/ws", server.addr)).await;
    let _second = JsonWs::connect(&format!("ws://{}/ws", server.addr)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let third = client.get(server.url("/healthz")).send().await;
    assert!(third.is_err(), "two WebSockets hold both slots: {third:?}");
    drop(first);
    let served = within("a slot to free", async {
        loop {
            if let Ok(r) = client.get(server.url("/healthz")).send().await {
                return r.status();
            }
        }
    })
    .await;
    assert_eq!(served, 200);
    server.stop().await;
}

#[tokio::test]
async fn only_an_admin_may_release_a_device_from_its_holder() {
    let rig = rig();
    let auth = keys(vec![
        api_key("reader", vec![Scope::BleRead], vec![]),
        api_key("admin", vec![Scope::BleAdmin], vec![]),
        api_key("admin-of-cs108", vec![Scope::BleAdmin], vec!["CS108*"]),
    ]);
    let server = with_auth(&rig, auth).await;
    rig.gateway
        .connect(UART, ConnectOptions::default())
        .await
        .expect("connect UART");
    let uart = gattway::ble::DeviceId::new(UART);
    let _held = rig.gateway.lease(&uart, "bridge session 9", false).unwrap();
    let client = reqwest::Client::new();
    let release = |key: &'static str| {
        let url = server.url(&format!("/api/v1/devices/{UART}/release"));
        let client = client.clone();
        async move { client.post(url).bearer_auth(key).send().await.unwrap() }
    };
    // Anyone with ble:read sees who holds it.
    let list: serde_json::Value = client
        .get(server.url("/api/v1/connections"))
        .bearer_auth("reader")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = find_listed(&list, "connections", "id", UART);
    assert_eq!(row.unwrap()["lease_holder"], "bridge session 9");
    assert_eq!(release("reader").await.status(), 403);
    assert_eq!(
        release("admin-of-cs108").await.status(),
        403,
        "outside its device list"
    );
    let done = release("admin").await;
    assert_eq!(done.status(), 200);
    assert!(rig.gateway.lease_of(&uart).is_none());
    assert_eq!(release("admin").await.status(), 404, "nobody holds it any more");
    server.stop().await;
}
