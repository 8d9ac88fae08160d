//! START_SCAN (→ DEVICE_FOUND events → SCAN_COMPLETE), STOP_SCAN, GET_DEVICES.

use std::time::Duration;

use serde_json::{json, Value};

use super::protocol::{event, reply, Code, Failure, Fields, StartScan};
use super::{Conn, ScanTask};
use crate::gateway::DeviceInfo;
use crate::sync::AbortOnDrop;

pub fn device_json(d: &DeviceInfo) -> Value {
    json!({
        "deviceId": d.id,
        "name": d.name,
        "rssi": d.rssi,
        "txPower": d.tx_power,
        "services": d.services.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
        "manufacturerData": d.manufacturer_data.iter().map(|(k, v)| (k.to_string(), Value::String(super::protocol::b64(v)))).collect::<serde_json::Map<_, _>>(),
        "radio": d.radio,
        "serviceData": d.service_data.iter().map(|(k, v)| (k.to_string(), Value::String(super::protocol::b64(v)))).collect::<serde_json::Map<_, _>>(),
        "readings": d.readings,
    })
}

/// Starts the scan; its reply (SCAN_COMPLETE) comes when it ends. A scan already
/// running is refused before the request's fields are read.
pub async fn start(
    conn: &mut Conn,
    reply_to: &Value,
    scan: Fields<StartScan>,
) -> Result<Option<Value>, Failure> {
    if conn.scan.as_ref().is_some_and(|s| !s.task.0.is_finished()) {
        return Err(Failure::new(
            Code::ScanAlreadyActive,
            "a scan is already running on this connection: STOP_SCAN first",
        ));
    }
    let StartScan { duration, filters } = scan.get()?;
    let duration = duration.unwrap_or(Duration::from_secs(5));
    let mut session = conn
        .gateway
        .scan(filters, duration)
        .await
        .map_err(Failure::from)?;
    let out = conn.out.clone();
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let id = reply_to.clone();
    let principal = conn.principal.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                found = session.next() => match found {
                    Some(d) => {
                        if crate::auth::admits(principal.as_ref(), &d.id, d.name.as_deref()) {
                            out.event(event("DEVICE_FOUND", device_json(&d)));
                        }
                    }
                    None => break,
                },
                _ = stopped.notified() => break,
            }
        }
        let devices: Vec<Value> = session
            .results()
            .iter()
            .filter(|d| crate::auth::admits(principal.as_ref(), &d.id, d.name.as_deref()))
            .map(device_json)
            .collect();
        out.reply(reply("SCAN_COMPLETE", &id, json!({"devices": devices})));
    });
    conn.scan = Some(ScanTask {
        task: AbortOnDrop(task),
        stop,
    });
    Ok(None)
}

pub fn stop(conn: &mut Conn, reply_to: &Value) -> Result<Option<Value>, Failure> {
    let running = conn.scan.as_ref().is_some_and(|s| !s.task.0.is_finished());
    if let Some(s) = &conn.scan {
        s.stop.notify_one();
    }
    Ok(Some(reply(
        "SCAN_STOPPED",
        reply_to,
        json!({"wasScanning": running}),
    )))
}

pub fn devices(conn: &Conn, reply_to: &Value) -> Result<Option<Value>, Failure> {
    let devices: Vec<Value> = conn
        .gateway
        .known_devices()
        .iter()
        .filter(|d| crate::auth::admits(conn.principal.as_ref(), &d.id, d.name.as_deref()))
        .map(device_json)
        .collect();
    Ok(Some(reply("DEVICES", reply_to, json!({"devices": devices}))))
}
