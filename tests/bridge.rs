//! The WebSocket bridge with a real WebSocket client against the simulated CS108
//! reader, speaking the ble-mcp-test protocol.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use gattway::ble::DeviceId;
use gattway::bridge::BridgeConfig;
use gattway::gateway::{GatewayConfig, GatewayEvent};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CS108_QUERY: &str = "service=9800&write=9900&notify=9901&device=CS108";
const BATTERY_CMD: [u8; 10] = [0xA7, 0xB3, 0x02, 0xD9, 0x82, 0x37, 0x00, 0x00, 0xA0, 0x00];

struct Client {
    ws: Stream,
}

enum Next {
    Json(Value),
    Closed(u16, String),
}

impl Client {
    async fn open(server: &Server, query: &str) -> Client {
        Self::open_with_origin(server, query, None)
            .await
            .expect("handshake")
    }

    async fn open_with_origin(server: &Server, query: &str, origin: Option<&str>) -> Result<Client, String> {
        let mut req = format!("ws://{}/?{query}", server.addr)
            .into_client_request()
            .unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        let (ws, _) = within("ws handshake", tokio_tungstenite::connect_async(req))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Client { ws })
    }

    async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    async fn next(&mut self) -> Next {
        within("bridge message", async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        return Next::Json(serde_json::from_str(t.as_str()).expect("json"))
                    }
                    Some(Ok(Message::Close(f))) => {
                        return match f {
                            Some(f) => Next::Closed(u16::from(f.code), f.reason.to_string()),
                            None => Next::Closed(1005, String::new()),
                        }
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Next::Closed(1006, e.to_string()),
                    None => return Next::Closed(1006, "stream ended".into()),
                }
            }
        })
        .await
    }

    /// The next JSON message; fails on close.
    async fn json(&mut self) -> Value {
        match self.next().await {
            Next::Json(v) => v,
            Next::Closed(c, r) => panic!("closed {c} {r:?} while expecting a message"),
        }
    }

    /// The next message of this type, skipping notifications (`data`) and others.
    async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let v = self.json().await;
            if v["type"] == kind {
                return v;
            }
            assert_ne!(v["type"], "error", "error while waiting for {kind}: {v}");
        }
    }

    /// Skips messages until the close; returns its code and reason.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Next::Closed(c, r) = self.next().await {
                return (c, r);
            }
        }
    }

    /// Writes the battery command and waits for the reader's answer.
    async fn battery_round_trip(&mut self) -> Vec<u8> {
        self.send(json!({"type": "data", "data": BATTERY_CMD})).await;
        loop {
            let v = self.expect("data").await;
            let bytes: Vec<u8> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
                .collect();
            if bytes.len() >= 10 && bytes[8..10] == [0xA0, 0x00] {
                return bytes;
            }
        }
    }
}

fn fast_bridge() -> BridgeConfig {
    BridgeConfig {
        idle_timeout_ms: 60_000,
        eviction_grace_ms: 5_000,
        session_grace_ms: 60_000,
        connect_timeout_ms: 3_000,
        max_frame_bytes: 1024,
        admin_token: "admin-secret".into(),
    }
}

async fn setup(bridge: BridgeConfig) -> (Rig, Server) {
    setup_with(fast_gateway(), bridge).await
}

async fn setup_with(gateway: GatewayConfig, bridge: BridgeConfig) -> (Rig, Server) {
    let rig = rig_with(gateway, sim_config(100.0, vec![]));
    let server = start_server_with(&rig.gateway, Default::default(), bridge).await;
    (rig, server)
}

fn cs108() -> DeviceId {
    DeviceId::new(CS108)
}

#[tokio::test]
async fn a_command_frame_gets_the_readers_answer_as_data() {
    let (rig, server) = setup(fast_bridge()).await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    let connected = c.expect("connected").await;
    assert_eq!(connected["device"], "CS108Reader000001");
    assert_eq!(connected["token"].as_str().unwrap().len(), 36);
    let answer = c.battery_round_trip().await;
    assert_eq!(&answer[..6], &[0xA7, 0xB3, 0x04, 0xD9, 0x82, 0x9E]);
    // Every byte went through the packet log, both ways.
    let log = rig.gateway.packet_log();
    assert!(
        !log.search("A7B302D982370000A000", &gattway::gateway::DeviceFilter::all(), 1)
            .is_empty(),
        "TX logged"
    );
    assert!(
        !log.search("A7B304D9829E", &gattway::gateway::DeviceFilter::all(), 1)
            .is_empty(),
        "RX logged"
    );
    // The session holds the device exclusively.
    assert!(rig
        .gateway
        .lease_of(&cs108())
        .unwrap()
        .holder
        .starts_with("bridge session"));

    c.send(json!({"type": "keepalive"})).await;
    assert!(c.expect("keepalive_ack").await["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    c.send(json!({"type": "check_pressure"})).await;
    let p = c.expect("pressure_report").await;
    assert_eq!((p["sessions"].as_u64(), p["leases"].as_u64()), (Some(1), Some(1)));
    c.send(json!({"type": "health"})).await;
    assert_eq!(c.expect("health").await["state"], "ACTIVE");

    let mut events = rig.gateway.events();
    c.send(json!({"type": "disconnect"})).await;
    assert_eq!(c.expect("disconnected").await["reason"], "client disconnect");
    assert_eq!(c.closed().await.0, 1000);
    wait_event(
        &mut events,
        "device released",
        |e| matches!(e, GatewayEvent::Disconnected { id, .. } if id.as_str() == CS108),
    )
    .await;
    wait_until("lease released", || rig.gateway.stats().leases == 0).await;
    server.stop().await;
}

#[tokio::test]
async fn missing_parameters_are_refused_with_the_ble_mcp_test_error() {
    let (_rig, server) = setup(fast_bridge()).await;
    let mut c = Client::open(&server, "service=9800&write=9900").await;
    let e = c.json().await;
    assert_eq!(
        e,
        json!({"type": "error", "error": "Missing required parameters: service, write, notify", "code": "missing_parameters"})
    );
    assert_eq!(c.closed().await.0, 1008);
    // The same on /ws/bridge.
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/bridge?{CS108_QUERY}", server.addr))
        .await
        .unwrap();
    let mut c = Client { ws };
    c.expect("connected").await;
    server.stop().await;
}

#[tokio::test]
async fn a_session_resumes_within_its_grace_period() {
    let (rig, server) = setup(fast_bridge()).await;
    let mut events = rig.gateway.events();
    let query = format!("{CS108_QUERY}&session=resume-me");
    let mut first = Client::open(&server, &query).await;
    let token = first.expect("connected").await["token"].clone();
    first.ws.close(None).await.unwrap();
    drop(first);
    let mut second = Client::open(&server, &query).await;
    assert_eq!(
        second.expect("connected").await["token"],
        token,
        "same session, same token"
    );
    second.battery_round_trip().await;
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, GatewayEvent::Disconnected { .. }),
            "the link stayed up: {e:?}"
        );
    }
    assert!(rig.control(CS108).is_connected());
    server.stop().await;
}

#[tokio::test]
async fn after_the_grace_period_the_device_is_released() {
    let (rig, server) = setup(BridgeConfig {
        session_grace_ms: 150,
        ..fast_bridge()
    })
    .await;
    let mut events = rig.gateway.events();
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    c.ws.close(None).await.unwrap();
    wait_event(
        &mut events,
        "release after grace",
        |e| matches!(e, GatewayEvent::Disconnected { id, .. } if id.as_str() == CS108),
    )
    .await;
    wait_until("lease and subscription gone", || {
        let s = rig.gateway.stats();
        s.leases == 0 && s.subscribers == 0
    })
    .await;
    assert!(!rig.control(CS108).is_connected());
    server.stop().await;
}

#[tokio::test]
async fn an_idle_client_is_warned_then_evicted() {
    let (rig, server) = setup(BridgeConfig {
        idle_timeout_ms: 200,
        eviction_grace_ms: 150,
        ..fast_bridge()
    })
    .await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    let w = c.expect("eviction_warning").await;
    assert_eq!(w["grace_period_ms"], 150);
    assert!(w["reason"].as_str().unwrap().contains("keepalive"));
    assert_eq!(c.expect("disconnected").await["reason"], "idle timeout");
    assert_eq!(c.closed().await, (1000, "idle eviction".to_string()));
    wait_until("device released", || !rig.control(CS108).is_connected()).await;
    server.stop().await;
}

#[tokio::test]
async fn a_keepalive_in_the_grace_period_cancels_the_eviction() {
    let (_rig, server) = setup(BridgeConfig {
        idle_timeout_ms: 200,
        eviction_grace_ms: 400,
        ..fast_bridge()
    })
    .await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    c.expect("eviction_warning").await;
    c.send(json!({"type": "keepalive"})).await;
    c.expect("keepalive_ack").await;
    // Only a session that survived its first eviction window warns a second time.
    c.expect("eviction_warning").await;
    c.battery_round_trip().await;
    server.stop().await;
}

#[tokio::test]
async fn force_cleanup_needs_the_right_token_and_really_releases() {
    let (rig, server) = setup(fast_bridge()).await;
    let mut events = rig.gateway.events();
    let mut c = Client::open(&server, CS108_QUERY).await;
    let token = c.expect("connected").await["token"].as_str().unwrap().to_string();
    c.send(json!({"type": "force_cleanup", "token": "not-the-token"}))
        .await;
    let e = c.json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("invalid_token"))
    );
    c.battery_round_trip().await;

    // Another client with the token (the first lost track of its socket, say).
    let mut other = Client::open(
        &server,
        "service=180f&write=2a19&notify=2a19&device=Gattway%20Battery",
    )
    .await;
    let _ = other.json().await;
    other.send(json!({"type": "force_cleanup", "token": token})).await;
    assert_eq!(
        other.expect("force_cleanup_complete").await["message"],
        "Cleanup complete"
    );
    assert_eq!(c.closed().await.0, 1000);
    wait_event(
        &mut events,
        "reader disconnected",
        |e| matches!(e, GatewayEvent::Disconnected { id, .. } if id.as_str() == CS108),
    )
    .await;
    assert!(!rig.control(CS108).is_connected(), "no zombie link");
    assert!(rig.gateway.lease_of(&cs108()).is_none(), "no zombie lease");
    server.stop().await;
}

#[tokio::test]
async fn a_second_session_is_busy_until_it_forces_a_takeover() {
    let (rig, server) = setup(fast_bridge()).await;
    let mut events = rig.gateway.events();
    let mut a = Client::open(&server, &format!("{CS108_QUERY}&session=alpha")).await;
    a.expect("connected").await;

    let mut b = Client::open(&server, &format!("{CS108_QUERY}&session=beta")).await;
    let busy = b.json().await;
    assert_eq!(busy["type"], "error");
    assert_eq!(busy["code"], "busy");
    assert_eq!(busy["blocking_session_id"], "alpha");
    assert_eq!(busy["device"], CS108);
    assert!(busy["error"].as_str().unwrap().contains("force=true"));
    assert_eq!(b.closed().await.0, 1013);

    let mut c = Client::open(&server, &format!("{CS108_QUERY}&session=gamma&force=true")).await;
    let warning = c.json().await;
    assert_eq!(warning["type"], "warning");
    assert!(warning["warning"].as_str().unwrap().contains("alpha"));
    c.expect("connected").await;
    let evicted = a.json().await;
    assert_eq!(evicted["code"], "evicted");
    assert!(evicted["error"].as_str().unwrap().contains("gamma"));
    assert_eq!(a.closed().await.0, 4006);
    c.battery_round_trip().await;
    assert_eq!(
        rig.gateway.lease_of(&cs108()).unwrap().holder,
        "bridge session 'gamma'"
    );
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, GatewayEvent::Disconnected { .. }),
            "a take-over keeps the link: {e:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_racing_for_one_device_one_wins() {
    let (_rig, server) = setup(fast_bridge()).await;
    let server = std::sync::Arc::new(server);
    let racers = (0..50).map(|i| {
        let server = server.clone();
        tokio::spawn(async move {
            let mut c = Client::open(&server, &format!("{CS108_QUERY}&session=racer-{i}")).await;
            let first = c.json().await;
            (
                first["type"].as_str().unwrap().to_string(),
                first["code"].as_str().map(str::to_string),
                c,
            )
        })
    });
    let results = futures::future::join_all(racers).await;
    let mut winners = 0;
    let mut busy = 0;
    let mut keep = Vec::new();
    for r in results {
        let (kind, code, c) = r.unwrap();
        match (kind.as_str(), code.as_deref()) {
            ("connected", _) => winners += 1,
            ("error", Some("busy")) => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
        keep.push(c);
    }
    assert_eq!((winners, busy), (1, 49));
    drop(keep);
}

#[tokio::test]
async fn every_failure_closes_with_its_code() {
    let (rig, server) = setup_with(
        GatewayConfig {
            auto_reconnect: false,
            ..fast_gateway()
        },
        fast_bridge(),
    )
    .await;
    let case = |query: String| {
        let server = &server;
        async move {
            let mut c = Client::open(server, &query).await;
            let e = c.json().await;
            assert_eq!(e["type"], "error", "{query}: {e}");
            (c.closed().await.0, e["error"].as_str().unwrap().to_string())
        }
    };
    let (code, text) =
        case("service=9800&write=9900&notify=9901&device=NoSuchDevice&timeout=200".into()).await;
    assert_eq!(code, 4001, "{text}");
    rig.control(UART).fail_next_connects(10);
    let (code, text) = case("service=6e400001-b5a3-f393-e0a9-e50e24dcca9e&write=6e400002-b5a3-f393-e0a9-e50e24dcca9e&notify=6e400003-b5a3-f393-e0a9-e50e24dcca9e&device=Gattway%20UART".into()).await;
    assert_eq!(code, 4002, "{text}");
    let (code, text) = case("service=1234&write=9900&notify=9901&device=CS108".into()).await;
    assert_eq!(code, 4003, "{text}");
    let (code, text) = case("service=9800&write=9999&notify=9901&device=CS108".into()).await;
    assert_eq!(code, 4004, "{text}");

    // 4005: the device drops and is not coming back.
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    rig.control(CS108).drop_link();
    assert_eq!(c.expect("disconnected").await["reason"], "device disconnected");
    assert_eq!(c.closed().await.0, 4005);

    // 4006: a new client while the previous session is still releasing the device.
    wait_until("reader free", || rig.gateway.lease_of(&cs108()).is_none()).await;
    let mut a = Client::open(&server, CS108_QUERY).await;
    a.expect("connected").await;
    rig.control(CS108).set_response_delay(Duration::from_secs(3));
    a.send(json!({"type": "force_cleanup"})).await;
    assert!(a.expect("warning").await["warning"]
        .as_str()
        .unwrap()
        .starts_with("Cleaning up"));
    let (code, text) = case(CS108_QUERY.to_string()).await;
    assert_eq!(code, 4006, "{text}");
    assert!(text.contains("Retry"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_session_keeps_working() {
    let (_rig, server) = setup(fast_bridge()).await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("not json".into()), "invalid_message"),
        (Message::Text(r#"{"type":"dance"}"#.into()), "unknown_type"),
        (
            Message::Text(r#"{"type":"data","data":[1,256]}"#.into()),
            "invalid_data",
        ),
        (
            Message::Text(r#"{"type":"data","data":["x"]}"#.into()),
            "invalid_data",
        ),
        (
            Message::Text(json!({"type": "data", "data": vec![1; 2000]}).to_string().into()),
            "message_too_large",
        ),
        (Message::Binary(vec![1, 2, 3].into()), "invalid_message"),
        (
            Message::Text(r#"{"type":"admin_cleanup","auth":"guess","action":"cleanup_all"}"#.into()),
            "unauthorized",
        ),
    ];
    for (frame, code) in cases {
        c.send_raw(frame).await;
        let e = c.json().await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some(code)),
            "{e}"
        );
    }
    c.battery_round_trip().await;
    c.send(json!({"type": "admin_cleanup", "auth": "admin-secret", "action": "cleanup_all"}))
        .await;
    // The admin's own session is among those cleaned up: its socket closes.
    let (code, _) = c.closed().await;
    assert_eq!(code, 1000);
    server.stop().await;
}

#[tokio::test]
async fn browser_origins_are_checked() {
    let (_rig, server) = setup(fast_bridge()).await;
    let refused = Client::open_with_origin(&server, CS108_QUERY, Some("https://evil.example")).await;
    assert!(refused.err().unwrap().contains("403"));
    let mut ok = Client::open_with_origin(&server, CS108_QUERY, Some("http://localhost:5173"))
        .await
        .expect("a local dev server may connect");
    ok.expect("connected").await;
    server.stop().await;
}

#[tokio::test]
async fn reopening_a_released_session_id_gets_a_fresh_working_session() {
    let (rig, server) = setup(fast_bridge()).await;
    let query = format!("{CS108_QUERY}&session=again");
    for round in 0..3 {
        let mut c = Client::open(&server, &query).await;
        c.expect("connected").await;
        c.battery_round_trip().await;
        c.send(json!({"type": "disconnect"})).await;
        assert_eq!(c.closed().await.0, 1000, "round {round}");
    }
    let mut c = Client::open(&server, &query).await;
    c.expect("connected").await;
    c.battery_round_trip().await;
    c.send(json!({"type": "check_pressure"})).await;
    assert_eq!(c.expect("pressure_report").await["sessions"], 1);
    assert_eq!(rig.gateway.stats().leases, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_client_pipelining_writes_gets_every_echo_and_is_not_dropped() {
    let (_rig, server) = setup(fast_bridge()).await;
    let mut c = Client::open(
        &server,
        "service=6e400001-b5a3-f393-e0a9-e50e24dcca9e&write=6e400002-b5a3-f393-e0a9-e50e24dcca9e\
         &notify=6e400003-b5a3-f393-e0a9-e50e24dcca9e&device=Gattway%20UART",
    )
    .await;
    c.expect("connected").await;
    const N: usize = 2_000;
    // Far more than any queue holds, written before reading a single echo.
    for i in 0..N {
        c.send(json!({"type": "data", "data": [(i % 256) as u8, (i / 256) as u8]}))
            .await;
    }
    for i in 0..N {
        let v = c.expect("data").await;
        assert_eq!(
            v["data"],
            json!([(i % 256) as u8, (i / 256) as u8]),
            "echo {i} in order"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn with_auth_configured_the_bridge_needs_a_credential_with_write_scope() {
    use gattway::auth::{sha256_hex, ApiKeyConfig, AuthConfig, Scope};
    let rig = rig();
    let key = |name: &str, scopes: Vec<Scope>, devices: Vec<String>| ApiKeyConfig {
        name: name.into(),
        sha256: sha256_hex(name.as_bytes()),
        scopes,
        devices,
    };
    let auth = AuthConfig {
        api_keys: vec![
            key("writer", vec![Scope::BleWrite], vec![]),
            key("reader", vec![Scope::BleRead], vec![]),
            key("hrm-only", vec![Scope::BleWrite], vec!["Gattway HRM".into()]),
        ],
        ..Default::default()
    };
    let server = start_server_full(&rig.gateway, Default::default(), fast_bridge(), auth).await;
    let refused = Client::open_with_origin(&server, CS108_QUERY, None).await;
    assert!(refused.err().unwrap().contains("401"));
    let refused =
        Client::open_with_origin(&server, &format!("{CS108_QUERY}&access_token=reader"), None).await;
    assert!(refused.err().unwrap().contains("403"));
    let mut outside = Client::open(&server, &format!("{CS108_QUERY}&access_token=hrm-only")).await;
    let e = outside.json().await;
    assert_eq!(e["code"], "forbidden", "{e}");
    assert_eq!(outside.closed().await.0, 1008);
    let mut ok = Client::open(&server, &format!("{CS108_QUERY}&access_token=writer")).await;
    ok.expect("connected").await;
    ok.battery_round_trip().await;
    let packets = reqwest::get(server.url("/api/v1/packets")).await.unwrap();
    assert_eq!(
        packets.status(),
        401,
        "the packet log is data: it needs a credential too"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_bridge_session_carries_on_through_a_radio_failover() {
    let (gateway, near, _far) = two_radios(7, 7);
    let server = start_server_with(&gateway, Default::default(), fast_bridge()).await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    c.battery_round_trip().await;
    assert_eq!(link_radio(&gateway, CS108).as_deref(), Some("near"));

    // Near dies mid-session: the link is re-made through far, and the same
    // session's next command gets its answer.
    let mut events = gateway.events();
    near.set_powered(false);
    reconnected(&mut events, CS108).await;
    assert_eq!(link_radio(&gateway, CS108).as_deref(), Some("far"));
    let answer = c.battery_round_trip().await;
    assert_eq!(&answer[..6], &[0xA7, 0xB3, 0x04, 0xD9, 0x82, 0x9E]);
    server.stop().await;
}
