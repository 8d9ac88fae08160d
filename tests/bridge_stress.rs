//! 1,000 bridge connect / round trip / disconnect cycles over real WebSockets: every
//! task, lease, subscription and session they create must be gone afterwards.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const CYCLES: usize = 1_000;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Connect, write the battery command, read the answer, disconnect, drain to close.
async fn cycle(url: &str, n: usize) {
    within("cycle", async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("handshake");
        let connected = next_json(&mut ws).await.expect("connected");
        assert_eq!(connected["type"], "connected", "cycle {n}: {connected}");
        let cmd =
            json!({"type": "data", "data": [0xA7, 0xB3, 0x02, 0xD9, 0x82, 0x37, 0x00, 0x00, 0xA0, 0x00]});
        ws.send(Message::Text(cmd.to_string().into())).await.unwrap();
        loop {
            let v = next_json(&mut ws).await.expect("answer");
            if v["type"] == "data" {
                break;
            }
        }
        ws.send(Message::Text(json!({"type": "disconnect"}).to_string().into()))
            .await
            .unwrap();
        while next_json(&mut ws).await.is_some() {}
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_cycles_leak_nothing() {
    let rig = rig_with(fast_gateway(), sim_config(1000.0, vec![]));
    let server = start_server_with(&rig.gateway, Default::default(), Default::default()).await;
    let url = format!(
        "ws://{}/?service=9800&write=9900&notify=9901&device=C0:FF:EE:00:01:08",
        server.addr
    );
    let runtime = tokio::runtime::Handle::current().metrics();
    let stats_before = rig.gateway.stats();
    // One warm-up cycle first: the runtime keeps one task after the server's first
    // connection whatever happens next (see the note on issue 4); a leak grows with
    // the cycles, which is what this test is after.
    cycle(&url, 0).await;
    wait_until("warm-up released", || rig.gateway.stats() == stats_before).await;
    let tasks_before = runtime.num_alive_tasks();

    for n in 1..=CYCLES {
        cycle(&url, n).await;
    }

    wait_until("gateway resources back to their start", || {
        rig.gateway.stats() == stats_before
    })
    .await;
    wait_until("runtime tasks back to their start", || {
        runtime.num_alive_tasks() <= tasks_before
    })
    .await;
    assert!(!rig.control(CS108).is_connected());
    server.stop().await;
}
