//! The gateway driven against the simulator: scanning, every profile, fan-out,
//! leases, limits, faults and recovery.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use gattway::ble::sim::cs108;
use gattway::ble::sim::spec::{CharSpec, DeviceSpec, ServiceSpec, WriteAction};
use gattway::ble::{well_known as wk, BleError, DeviceId, DisconnectReason, ScanFilter, Uuid, WriteKind};
use gattway::gateway::{
    ConnectOptions, GatewayConfig, GatewayError, GatewayEvent, Operation, SubscriptionEvent,
};

fn id(s: &str) -> DeviceId {
    DeviceId::new(s)
}

async fn connect(rig: &Rig, target: &str) {
    within("connect", rig.gateway.connect(target, ConnectOptions::default()))
        .await
        .unwrap_or_else(|e| panic!("connect {target}: {e}"));
}

async fn next_value(sub: &mut gattway::gateway::Subscription) -> Bytes {
    loop {
        match within("notification", sub.recv()).await {
            Some(SubscriptionEvent::Notification(n)) => return n.value,
            Some(SubscriptionEvent::Lagged(_)) => continue,
            None => panic!("subscription ended"),
        }
    }
}

#[tokio::test]
async fn scan_finds_every_simulated_device_with_plausible_rssi() {
    let rig = rig();
    let found = rig.scan(ScanFilter::default(), 400).await;
    let ids: Vec<&str> = found.iter().map(|d| d.id.as_str()).collect();
    for want in [HRM, BATTERY, ENV, UART, ROAMER, CS108, BTHOME, BTHOME_SECURE] {
        assert!(ids.contains(&want), "{want} not found in {ids:?}");
    }
    assert_eq!(found.len(), 8, "each device once: {ids:?}");
    for d in &found {
        assert!((-100..=-30).contains(&d.rssi), "{} rssi {}", d.id, d.rssi);
        assert!(d.name.is_some());
    }
    assert!(
        found.windows(2).all(|w| w[0].rssi >= w[1].rssi),
        "strongest first"
    );
}

#[tokio::test]
async fn scan_filters_by_name_service_and_rssi() {
    let rig = rig();
    let scan = |filter| rig.gateway.scan(filter, Duration::from_millis(300));
    let by_service = scan(ScanFilter {
        services: vec![wk::HEART_RATE_SERVICE],
        ..Default::default()
    })
    .await
    .unwrap()
    .collect()
    .await;
    assert_eq!(
        by_service.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec![HRM]
    );
    let by_name = scan(ScanFilter {
        name_prefix: Some("CS108".into()),
        ..Default::default()
    })
    .await
    .unwrap()
    .collect()
    .await;
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].id.as_str(), CS108);
    let strong = scan(ScanFilter {
        min_rssi: Some(-70),
        ..Default::default()
    })
    .await
    .unwrap()
    .collect()
    .await;
    assert!(strong.iter().all(|d| d.rssi >= -70));
    assert!(
        strong.iter().any(|d| d.id.as_str() == CS108),
        "the reader sits near -55 dBm"
    );
    assert!(
        !strong.iter().any(|d| d.id.as_str() == ROAMER),
        "the roamer sits near -80 dBm (never above -72)"
    );
}

#[tokio::test]
async fn heart_rate_monitor_reads_and_notifies() {
    let rig = rig();
    connect(&rig, HRM).await;
    let dev = rig.gateway.device(&id(HRM));
    let services = dev.services().await.unwrap();
    let uuids: Vec<Uuid> = services.iter().map(|s| s.uuid).collect();
    assert_eq!(
        uuids,
        vec![
            wk::HEART_RATE_SERVICE,
            wk::BATTERY_SERVICE,
            wk::DEVICE_INFORMATION
        ]
    );
    let location = dev
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .unwrap();
    assert_eq!(&location[..], &[0x01], "chest");
    let mut sub = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    for _ in 0..3 {
        let v = next_value(&mut sub).await;
        assert_eq!(v[0] & 0x01, 0, "u8 heart-rate format");
        assert!((40..=200).contains(&v[1]), "bpm {}", v[1]);
    }
    let maker = dev
        .read(wk::DEVICE_INFORMATION, wk::MANUFACTURER_NAME)
        .await
        .unwrap();
    assert_eq!(&maker[..], b"gattway simulator");
}

#[tokio::test]
async fn battery_and_environmental_sensor_values_are_plausible() {
    let rig = rig();
    connect(&rig, BATTERY).await;
    connect(&rig, ENV).await;
    let level = rig
        .gateway
        .device(&id(BATTERY))
        .read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL)
        .await
        .unwrap();
    assert!((1..=100).contains(&level[0]));
    let env = rig.gateway.device(&id(ENV));
    let t = env
        .read(wk::ENVIRONMENTAL_SENSING, wk::TEMPERATURE)
        .await
        .unwrap();
    let celsius = i16::from_le_bytes([t[0], t[1]]) as f64 / 100.0;
    assert!((15.0..=30.0).contains(&celsius), "{celsius} °C");
    let h = env.read(wk::ENVIRONMENTAL_SENSING, wk::HUMIDITY).await.unwrap();
    let percent = u16::from_le_bytes([h[0], h[1]]) as f64 / 100.0;
    assert!((20.0..=80.0).contains(&percent), "{percent} %");
    let desc = env
        .read_descriptor(wk::ENVIRONMENTAL_SENSING, wk::TEMPERATURE, wk::USER_DESCRIPTION)
        .await
        .unwrap();
    assert_eq!(&desc[..], b"Air temperature");
    let mut sub = env
        .subscribe(wk::ENVIRONMENTAL_SENSING, wk::TEMPERATURE)
        .await
        .unwrap();
    assert_eq!(next_value(&mut sub).await.len(), 2);
    let cccd = env
        .read_descriptor(wk::ENVIRONMENTAL_SENSING, wk::TEMPERATURE, wk::CCCD)
        .await
        .unwrap();
    assert_eq!(&cccd[..], &[0x01, 0x00], "notifications enabled");
}

#[tokio::test]
async fn nordic_uart_echoes_what_is_written() {
    let rig = rig();
    connect(&rig, "Gattway UART").await;
    let dev = rig.gateway.device(&id(UART));
    let mut tx = dev.subscribe(wk::NUS_SERVICE, wk::NUS_TX).await.unwrap();
    dev.write(
        wk::NUS_SERVICE,
        wk::NUS_RX,
        &b"hello"[..],
        WriteKind::WithResponse,
    )
    .await
    .unwrap();
    assert_eq!(&next_value(&mut tx).await[..], b"hello");
    dev.write(
        wk::NUS_SERVICE,
        wk::NUS_RX,
        &b"again"[..],
        WriteKind::WithoutResponse,
    )
    .await
    .unwrap();
    assert_eq!(&next_value(&mut tx).await[..], b"again");
}

#[tokio::test]
async fn cs108_reader_answers_command_frames_and_streams_inventory() {
    let rig = rig();
    connect(&rig, "CS108").await;
    let dev = rig.gateway.device(&id(CS108));
    let mut rx = dev.subscribe(wk::CS108_SERVICE, wk::CS108_NOTIFY).await.unwrap();
    let battery = hex::decode("A7B302D982370000A000").unwrap();
    dev.write(
        wk::CS108_SERVICE,
        wk::CS108_WRITE,
        battery,
        WriteKind::WithResponse,
    )
    .await
    .unwrap();
    let answer = next_value(&mut rx).await;
    assert_eq!(&answer[..6], &[0xA7, 0xB3, 0x04, 0xD9, 0x82, 0x9E]);
    assert_eq!(&answer[8..10], &[0xA0, 0x00]);
    let mv = u16::from_be_bytes([answer[10], answer[11]]);
    assert!((3000..=4300).contains(&mv), "{mv} mV");

    let start = cs108::downlink(
        cs108::MODULE_RFID,
        cs108::EV_RFID_COMMAND,
        &[0x70, 0x01, 0x00, 0xF0, 0x0F, 0, 0, 0],
    );
    dev.write(wk::CS108_SERVICE, wk::CS108_WRITE, start, WriteKind::WithResponse)
        .await
        .unwrap();
    let ack = next_value(&mut rx).await;
    assert_eq!(&ack[8..], &[0x80, 0x02, 0x00]);
    for _ in 0..3 {
        let tag = next_value(&mut rx).await;
        assert_eq!(&tag[8..10], &[0x81, 0x00], "tag report");
    }
    let abort = cs108::downlink(
        cs108::MODULE_RFID,
        cs108::EV_RFID_COMMAND,
        &[0x40, 0x03, 0, 0, 0, 0, 0, 0],
    );
    dev.write(wk::CS108_SERVICE, wk::CS108_WRITE, abort, WriteKind::WithResponse)
        .await
        .unwrap();
    // Reports already in flight may precede the abort's acknowledgement.
    loop {
        let v = next_value(&mut rx).await;
        if v[8..] == [0x80, 0x02, 0x00] {
            break;
        }
    }
    let abort_answer = next_value(&mut rx).await;
    assert_eq!(&abort_answer[8..12], &[0x81, 0x00, 0x40, 0x03]);

    let unknown = cs108::downlink(cs108::MODULE_NOTIFICATION, 0xA0EE, &[]);
    dev.write(
        wk::CS108_SERVICE,
        wk::CS108_WRITE,
        unknown,
        WriteKind::WithResponse,
    )
    .await
    .unwrap();
    assert_eq!(
        &next_value(&mut rx).await[8..10],
        &[0xA1, 0x01],
        "error notification"
    );
}

#[tokio::test]
async fn two_subscribers_both_receive_every_notification() {
    let rig = rig();
    connect(&rig, HRM).await;
    let dev = rig.gateway.device(&id(HRM));
    let mut a = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    let mut b = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    assert_eq!(
        rig.gateway.stats().radio_subscriptions,
        1,
        "one radio subscription shared"
    );
    assert_eq!(rig.gateway.stats().subscribers, 2);
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..20 {
        match within("a", a.recv()).await.unwrap() {
            SubscriptionEvent::Notification(n) => seen_a.push(n),
            other => panic!("{other:?}"),
        }
        match within("b", b.recv()).await.unwrap() {
            SubscriptionEvent::Notification(n) => seen_b.push(n),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen_a, seen_b);
    drop(a);
    drop(b);
    wait_until("radio unsubscribed", || {
        rig.gateway.stats().radio_subscriptions == 0
    })
    .await;
    assert_eq!(rig.gateway.stats().subscribers, 0);
}

#[tokio::test]
async fn a_lagging_subscriber_is_told_how_many_it_missed() {
    let rig = rig_with(
        GatewayConfig {
            subscriber_buffer: 4,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    connect(&rig, HRM).await;
    let dev = rig.gateway.device(&id(HRM));
    let mut fast = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    let mut slow = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    for _ in 0..12 {
        next_value(&mut fast).await;
    }
    match within("slow", slow.recv()).await {
        Some(SubscriptionEvent::Lagged(n)) => assert!(n >= 8, "missed {n}"),
        other => panic!("expected Lagged, got {other:?}"),
    }
    // Then it carries on with what is buffered.
    assert!(matches!(
        within("slow", slow.recv()).await,
        Some(SubscriptionEvent::Notification(_))
    ));
}

#[tokio::test]
async fn failed_connects_are_retried_with_backoff() {
    let rig = rig();
    rig.control(HRM).fail_next_connects(2);
    let info = within("connect", rig.gateway.connect(HRM, ConnectOptions::default()))
        .await
        .expect("third attempt succeeds");
    assert_eq!(info.mtu, 247);

    rig.control(BATTERY).fail_next_connects(10);
    let err = within("connect", rig.gateway.connect(BATTERY, ConnectOptions::default()))
        .await
        .unwrap_err();
    match &err {
        GatewayError::ConnectFailed { attempts, last, .. } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(last, BleError::ConnectFailed { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "connect_failed");
    wait_until("failed actor gone", || rig.gateway.stats().device_tasks == 1).await;
}

#[tokio::test]
async fn a_dropped_link_reconnects_and_notifications_resume() {
    let rig = rig();
    let mut events = rig.gateway.events();
    connect(&rig, HRM).await;
    let dev = rig.gateway.device(&id(HRM));
    let mut sub = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    next_value(&mut sub).await;
    rig.control(HRM).drop_link();
    let e = wait_event(&mut events, "disconnect", |e| {
        matches!(e, GatewayEvent::Disconnected { .. })
    })
    .await;
    assert_eq!(
        e,
        GatewayEvent::Disconnected {
            id: id(HRM),
            reason: DisconnectReason::LinkLost,
            will_reconnect: true
        }
    );
    wait_event(&mut events, "reconnect", |e| {
        matches!(e, GatewayEvent::Reconnected { .. })
    })
    .await;
    assert!(rig.control(HRM).is_connected());
    // The same subscription keeps delivering: the gateway re-enabled notifications.
    next_value(&mut sub).await;
    next_value(&mut sub).await;
    assert_eq!(
        dev.read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
            .await
            .unwrap()[0],
        1
    );
}

#[tokio::test]
async fn without_auto_reconnect_a_drop_ends_subscriptions() {
    let rig = rig_with(
        GatewayConfig {
            auto_reconnect: false,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    let mut events = rig.gateway.events();
    connect(&rig, ENV).await;
    let dev = rig.gateway.device(&id(ENV));
    let mut sub = dev
        .subscribe(wk::ENVIRONMENTAL_SENSING, wk::HUMIDITY)
        .await
        .unwrap();
    rig.control(ENV).drop_link();
    let e = wait_event(&mut events, "disconnect", |e| {
        matches!(e, GatewayEvent::Disconnected { .. })
    })
    .await;
    assert!(matches!(
        e,
        GatewayEvent::Disconnected {
            will_reconnect: false,
            ..
        }
    ));
    within("subscription end", async {
        while let Some(ev) = sub.recv().await {
            let _ = ev;
        }
    })
    .await;
    wait_until("actor gone", || rig.gateway.stats().device_tasks == 0).await;
    let err = dev
        .read(wk::ENVIRONMENTAL_SENSING, wk::HUMIDITY)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_connected");
}

#[tokio::test]
async fn a_read_that_never_answers_times_out_and_the_device_stays_usable() {
    let rig = rig_with(
        GatewayConfig {
            op_timeout_ms: 200,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    connect(&rig, BATTERY).await;
    let dev = rig.gateway.device(&id(BATTERY));
    rig.control(BATTERY).hang_next_reads(1);
    let err = within("read", dev.read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GatewayError::Timeout {
                operation: Operation::Read,
                ..
            }
        ),
        "{err:?}"
    );
    dev.read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL)
        .await
        .expect("next read answers");
}

#[tokio::test]
async fn a_link_dropped_mid_operation_fails_that_operation_then_recovers() {
    let rig = rig();
    let mut events = rig.gateway.events();
    connect(&rig, BATTERY).await;
    let dev = rig.gateway.device(&id(BATTERY));
    rig.control(BATTERY).drop_link_on_next_op();
    let err = dev
        .read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL)
        .await
        .unwrap_err();
    assert_eq!(err, GatewayError::Ble(BleError::LinkLost(id(BATTERY))));
    wait_event(&mut events, "reconnect", |e| {
        matches!(e, GatewayEvent::Reconnected { .. })
    })
    .await;
    dev.read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL)
        .await
        .expect("works after reconnect");
}

#[tokio::test]
async fn bad_requests_get_distinct_clear_errors() {
    let rig = rig();
    let quick = ConnectOptions {
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let err = rig
        .gateway
        .connect("AA:AA:AA:AA:AA:AA", quick.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "device_not_found", "{err}");
    let dev = rig.gateway.device(&id(HRM));
    let err = dev
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_connected");
    assert!(err.to_string().contains("not connected"));

    connect(&rig, HRM).await;
    let cases: Vec<(GatewayError, &str)> = vec![
        (
            dev.read(Uuid::from_u16(0x1234), wk::BATTERY_LEVEL)
                .await
                .unwrap_err(),
            "service_not_found",
        ),
        (
            dev.read(wk::HEART_RATE_SERVICE, Uuid::from_u16(0x2A99))
                .await
                .unwrap_err(),
            "characteristic_not_found",
        ),
        (
            dev.write(
                wk::HEART_RATE_SERVICE,
                wk::BODY_SENSOR_LOCATION,
                vec![2],
                WriteKind::WithResponse,
            )
            .await
            .unwrap_err(),
            "not_permitted",
        ),
        (
            dev.read(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
                .await
                .unwrap_err(),
            "not_permitted",
        ),
        (
            dev.subscribe(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
                .await
                .err()
                .unwrap(),
            "not_permitted",
        ),
        (
            dev.read_descriptor(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION, wk::CCCD)
                .await
                .unwrap_err(),
            "descriptor_not_found",
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code, "{err}");
    }
    connect(&rig, UART).await;
    let err = rig
        .gateway
        .device(&id(UART))
        .write(
            wk::NUS_SERVICE,
            wk::NUS_RX,
            vec![0u8; 300],
            WriteKind::WithResponse,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GatewayError::Ble(BleError::ValueTooLong {
            characteristic: wk::NUS_RX,
            len: 300,
            max: 244
        })
    );
}

#[tokio::test]
async fn connect_by_name_prefix_and_ambiguity() {
    let rig = rig();
    let info = within(
        "connect",
        rig.gateway.connect("Gattway H", ConnectOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(info.id.as_str(), HRM);
    assert_eq!(info.name.as_deref(), Some("Gattway HRM"));
    // Hear everyone, then a prefix that several share is refused with the list.
    rig.scan(ScanFilter::default(), 300).await;
    let err = rig
        .gateway
        .connect("Gattway", ConnectOptions::default())
        .await
        .unwrap_err();
    match err {
        GatewayError::Ambiguous { candidates, .. } => assert!(candidates.len() >= 4, "{candidates:?}"),
        other => panic!("{other:?}"),
    }
    let with_service = rig
        .gateway
        .connect(
            "Gattway",
            ConnectOptions {
                services: vec![wk::ENVIRONMENTAL_SENSING],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(with_service.id.as_str(), ENV);
}

#[tokio::test]
async fn a_lease_makes_a_device_exclusive() {
    let rig = rig();
    connect(&rig, HRM).await;
    let alice = rig.gateway.lease(&id(HRM), "alice", false).unwrap();
    let err = rig
        .gateway
        .device(&id(HRM))
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GatewayError::Busy {
            id: id(HRM),
            holder: "alice".into()
        }
    );
    assert!(err.to_string().contains("alice"));
    alice
        .device()
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("the holder may");
    assert_eq!(
        rig.gateway.connections()[0].lease_holder.as_deref(),
        Some("alice")
    );
    let err = rig.gateway.lease(&id(HRM), "bob", false).err().unwrap();
    assert_eq!(err.code(), "busy");

    let bob = rig
        .gateway
        .lease(&id(HRM), "bob", true)
        .expect("forced take-over");
    assert!(!alice.is_valid());
    assert_eq!(
        alice
            .device()
            .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
            .await
            .unwrap_err()
            .code(),
        "busy"
    );
    drop(alice);
    assert!(bob.is_valid(), "dropping the old lease leaves the new one alone");

    assert_eq!(
        rig.gateway.revoke_lease("not-the-token").unwrap_err(),
        GatewayError::InvalidLease
    );
    assert_eq!(rig.gateway.revoke_lease(bob.token()).unwrap(), id(HRM));
    assert_eq!(rig.gateway.stats().leases, 0);
    rig.gateway
        .device(&id(HRM))
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("free again");
}

#[tokio::test]
async fn the_connection_limit_closes_the_least_recently_used_link() {
    let rig = rig_with(
        GatewayConfig {
            max_connections: 2,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    connect(&rig, HRM).await;
    connect(&rig, BATTERY).await;
    // Use the HRM so the battery is the least recently used.
    rig.gateway
        .device(&id(HRM))
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .unwrap();
    connect(&rig, ENV).await;
    let open: Vec<String> = rig
        .gateway
        .connections()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(open, vec![HRM.to_string(), ENV.to_string()]);
    assert!(!rig.control(BATTERY).is_connected());

    let _a = rig.gateway.lease(&id(HRM), "a", false).unwrap();
    let _b = rig.gateway.lease(&id(ENV), "b", false).unwrap();
    let err = rig
        .gateway
        .connect(UART, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err, GatewayError::ConnectionLimit(2));
}

#[tokio::test]
async fn an_idle_link_is_closed() {
    let rig = rig_with(
        GatewayConfig {
            idle_timeout_ms: 150,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    let mut events = rig.gateway.events();
    connect(&rig, BATTERY).await;
    connect(&rig, HRM).await;
    // A subscribed device is in use, however quiet.
    let _sub = rig
        .gateway
        .device(&id(HRM))
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    let e = wait_event(&mut events, "idle disconnect", |e| {
        matches!(e, GatewayEvent::Disconnected { .. })
    })
    .await;
    assert_eq!(
        e,
        GatewayEvent::Disconnected {
            id: id(BATTERY),
            reason: DisconnectReason::Requested,
            will_reconnect: false
        }
    );
    assert!(rig.control(HRM).is_connected());
}

#[tokio::test]
async fn long_writes_without_response_are_chunked_to_the_mtu() {
    let tx = Uuid::from_u16(0xFFF2);
    let mut rx_char = CharSpec {
        uuid: Uuid::from_u16(0xFFF1),
        properties: vec!["write_without_response".into()],
        value: None,
        text: None,
        max_len: 512,
        generator: None,
        on_write: WriteAction::Echo { to: tx },
        descriptors: vec![],
    };
    let tx_char = CharSpec {
        uuid: tx,
        properties: vec!["notify".into()],
        on_write: WriteAction::Store,
        ..rx_char.clone()
    };
    rx_char.max_len = 512;
    let small_mtu = DeviceSpec {
        name: "Tiny MTU".into(),
        address: "AA:00:00:00:00:17".into(),
        rssi: -50,
        tx_power: None,
        mtu: 23,
        connect_latency_ms: 10,
        op_latency_ms: 1,
        advertised_services: vec![Uuid::from_u16(0xFFF0)],
        manufacturer_data: vec![],
        service_data: vec![],
        adverts: vec![],
        advert_period_ms: 1_000,
        range_cycle: None,
        services: vec![ServiceSpec {
            uuid: Uuid::from_u16(0xFFF0),
            characteristics: vec![rx_char, tx_char],
        }],
    };
    let rig = rig_with(fast_gateway(), sim_config(100.0, vec![small_mtu]));
    let info = within("connect", rig.gateway.connect("Tiny", ConnectOptions::default()))
        .await
        .unwrap();
    assert_eq!(info.mtu, 23);
    let dev = rig.gateway.device(&info.id);
    let mut echo = dev.subscribe(Uuid::from_u16(0xFFF0), tx).await.unwrap();
    let payload: Vec<u8> = (0..100u8).collect();
    dev.write(
        Uuid::from_u16(0xFFF0),
        Uuid::from_u16(0xFFF1),
        payload.clone(),
        WriteKind::WithoutResponse,
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < payload.len() {
        let chunk = next_value(&mut echo).await;
        assert!(chunk.len() <= 20, "each packet fits MTU 23 - 3");
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, payload);
}

#[tokio::test]
async fn a_device_out_of_range_drops_and_cannot_be_reached() {
    let rig = rig_with(
        GatewayConfig {
            reconnect_attempts: 2,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    let mut events = rig.gateway.events();
    connect(&rig, HRM).await;
    rig.control(HRM).set_in_range(Some(false));
    wait_event(&mut events, "given up", |e| {
        matches!(
            e,
            GatewayEvent::Disconnected {
                will_reconnect: false,
                ..
            }
        )
    })
    .await;
    let err = rig
        .gateway
        .connect(HRM, ConnectOptions::default())
        .await
        .unwrap_err();
    match err {
        GatewayError::ConnectFailed {
            last: BleError::ConnectFailed { reason, .. },
            ..
        } => {
            assert!(reason.contains("out of range"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    rig.control(HRM).set_in_range(None);
    connect(&rig, HRM).await;
}

#[tokio::test]
async fn shutdown_disconnects_everything() {
    let rig = rig();
    for d in [HRM, ENV, CS108] {
        connect(&rig, d).await;
    }
    assert_eq!(rig.gateway.stats().connected, 3);
    within("shutdown", rig.gateway.shutdown()).await;
    for d in [HRM, ENV, CS108] {
        assert!(!rig.control(d).is_connected(), "{d} still connected");
    }
    wait_until("actors gone", || rig.gateway.stats().device_tasks == 0).await;
    let err = rig
        .gateway
        .connect(HRM, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err, GatewayError::ShuttingDown);
}

/// Waits until the radio has heard an advertisement in the last `ms` milliseconds.
async fn hears_within(rig: &Rig, what: &str, ms: u64) {
    within(what, async {
        loop {
            let radio = rig.gateway.radios().await.remove(0);
            if radio.last_advert_age_ms.is_some_and(|age| age < ms) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// The watchdog's count of `action` recoveries that worked.
async fn recoveries(rig: &Rig, action: &str) -> u64 {
    let wanted =
        format!("gattway_radio_recoveries_total{{radio=\"sim\",action=\"{action}\",outcome=\"ok\"}} ");
    let text = rig.gateway.render_metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .map_or(0, |n| n.parse().expect("a count"))
}

/// Waits for the watchdog's `n`th `action` recovery.
async fn recovered(rig: &Rig, action: &str, n: u64) {
    within(action, async {
        while recoveries(rig, action).await < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_deaf_radio_gets_its_scan_restarted_then_a_power_cycle() {
    let rig = rig_with(
        GatewayConfig {
            watchdog_stall_ms: 300,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    let scan = rig
        .gateway
        .scan(ScanFilter::default(), Duration::from_secs(60))
        .await
        .unwrap();
    hears_within(&rig, "adverts", 100).await;
    assert_eq!(
        recoveries(&rig, "restart_scan").await,
        0,
        "a working radio is left alone"
    );

    // A stuck scanner: a scan restart brings it back.
    rig.sim.stall(gattway::ble::sim::Stall::Scanner);
    recovered(&rig, "restart_scan", 1).await;
    hears_within(&rig, "adverts after the scan restart", 100).await;
    assert_eq!(recoveries(&rig, "power_cycle").await, 0);

    // A stuck adapter: the restart does not help, the power cycle does.
    rig.sim.stall(gattway::ble::sim::Stall::Adapter);
    recovered(&rig, "power_cycle", 1).await;
    hears_within(&rig, "adverts after the power cycle", 100).await;
    assert_eq!(recoveries(&rig, "restart_scan").await, 2);
    let radio = rig.gateway.radios().await.remove(0);
    assert_eq!(radio.state, gattway::gateway::RadioState::Ok);
    drop(scan);
}

#[tokio::test]
async fn devices_not_heard_for_the_expiry_are_forgotten_unless_connected() {
    let rig = rig_with(
        GatewayConfig {
            device_expiry_ms: 300,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    connect(&rig, UART).await;
    let heard = rig
        .gateway
        .scan(ScanFilter::default(), Duration::from_millis(200))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(heard.len() > 1, "{heard:?}");
    // Scanning stopped, nothing is heard: all go but the connected one.
    within("expiry", async {
        while rig.gateway.known_devices().len() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let left: Vec<String> = rig
        .gateway
        .known_devices()
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(left, [UART]);
}

#[tokio::test]
async fn radios_of_one_world_hear_it_from_their_own_distance_and_share_one_link() {
    use gattway::ble::{Backend, BackendEvent};
    let sim = gattway::ble::sim::SimBackend::new(&sim_config(100.0, vec![])).expect("simulator");
    let (near, far) = (sim.radio("near", 0), sim.radio("far", -20));
    let (mut near_events, mut far_events) = (near.events(), far.events());
    let heard = |rx: &mut tokio::sync::broadcast::Receiver<BackendEvent>| {
        let mut rx = rx.resubscribe();
        async move {
            loop {
                if let Ok(BackendEvent::Advertisement(a)) = rx.recv().await {
                    if a.id.as_str() == HRM {
                        return a.rssi;
                    }
                }
            }
        }
    };
    // Only a scanning radio hears; each at its own distance.
    near.start_scan(&ScanFilter::default()).await.unwrap();
    let loud = within("near hears", heard(&mut near_events)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), heard(&mut far_events))
            .await
            .is_err(),
        "a radio that does not scan hears nothing"
    );
    far.start_scan(&ScanFilter::default()).await.unwrap();
    let faint = within("far hears", heard(&mut far_events)).await;
    assert!(faint < loud - 10, "far {faint} dBm, near {loud} dBm");

    // One link, through one radio.
    near.connect(&id(HRM)).await.expect("connect through near");
    assert!(far.connect(&id(HRM)).await.is_err(), "linked through near");
    assert!(far
        .read(&id(HRM), wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .is_err());
    near.read(&id(HRM), wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("read through near");

    // The near radio dies: its link drops (it says so), and far takes the device.
    near.set_powered(false);
    within("near's link to drop", async {
        loop {
            if let Ok(BackendEvent::Disconnected { id, .. }) = near_events.recv().await {
                if id.as_str() == HRM {
                    return;
                }
            }
        }
    })
    .await;
    assert!(near.adapter_status().await.is_err());
    within("far to connect", async {
        while far.connect(&id(HRM)).await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    far.read(&id(HRM), wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("read through far");
}

#[tokio::test]
async fn links_go_through_the_radio_that_hears_best_fill_its_slots_and_fail_over() {
    let (gateway, near, _far) = two_radios(1, 2);
    let heard = gateway
        .scan(ScanFilter::default(), Duration::from_millis(300))
        .await
        .unwrap()
        .collect()
        .await;
    let hrm = heard.iter().find(|d| d.id.as_str() == HRM).expect("HRM heard");
    assert_eq!(hrm.radio.as_deref(), Some("near"), "the radio that hears it best");

    // The strongest radio first; when it is full, the next.
    for target in [HRM, UART, ENV] {
        within("connect", gateway.connect(target, ConnectOptions::default()))
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }
    assert_eq!(link_radio(&gateway, HRM).as_deref(), Some("near"));
    assert_eq!(
        link_radio(&gateway, UART).as_deref(),
        Some("far"),
        "near's one slot is taken"
    );
    assert_eq!(link_radio(&gateway, ENV).as_deref(), Some("far"));
    let full = gateway
        .connect(BATTERY, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(full.code(), "no_free_slot", "{full}");
    let slots: Vec<(String, usize, usize)> = gateway
        .radios()
        .await
        .into_iter()
        .map(|r| (r.name, r.slots_used, r.slots_free))
        .collect();
    assert_eq!(slots, [("near".into(), 1, 0), ("far".into(), 2, 0)]);

    // Near dies: its link moves to far, once far has room, with one reconnect.
    gateway.device(&id(ENV)).disconnect().await.unwrap();
    let mut events = gateway.events();
    near.set_powered(false);
    reconnected(&mut events, HRM).await;
    assert_eq!(link_radio(&gateway, HRM).as_deref(), Some("far"));
    let value = gateway
        .device(&id(HRM))
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("read through far");
    assert_eq!(value.to_vec(), [0x01]);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_broadcasting_sensor_cycles_its_payloads_in_service_data() {
    let rig = rig();
    let _scan = rig
        .gateway
        .scan(ScanFilter::default(), Duration::from_secs(30))
        .await
        .unwrap();
    let fcd2 = Uuid::from_u16(0xFCD2);
    let mut seen = std::collections::BTreeSet::new();
    within("every payload of the BTHome thermometer", async {
        while seen.len() < 4 {
            let known = rig.gateway.known_devices();
            if let Some(d) = known.iter().find(|d| d.id.as_str() == BTHOME) {
                if let Some(data) = d.service_data.get(&fcd2) {
                    seen.insert(hex::encode(data));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "400001015c02ca0903bf13",
            "400002015c02d40903b513",
            "400003015b02e80903a113",
            "400004015b02de0903ab13"
        ]
    );
}
