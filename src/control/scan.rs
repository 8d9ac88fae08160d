//! START_SCAN (→ DEVICE_FOUND events → SCAN_COMPLETE), STOP_SCAN, GET_DEVICES.

use std::time::Duration;

use serde_json::{json, Value};

use super::protocol::{event, reply, Code, Failure, Request};
use super::{Conn, ScanTask};
use crate::ble::{ScanFilter, Uuid};
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

/// Starts the scan; its reply (SCAN_COMPLETE) comes when it ends.
pub async fn start(conn: &mut Conn, req: &Request) -> Result<Option<Value>, Failure> {
    if conn.scan.as_ref().is_some_and(|s| !s.task.0.is_finished()) {
        return Err(Failure::new(
            Code::ScanAlreadyActive,
            "a scan is already running on this connection: STOP_SCAN first",
        ));
    }
    let duration = req.opt_u64("duration", 60_000)?.unwrap_or(5_000);
    let filters = match req.body.get("filters") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(Failure::params("filters must be an object")),
    };
    let sub = Request {
        id: req.id.clone(),
        kind: req.kind.clone(),
        body: filters,
    };
    let services = match sub.body.get("services") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| Failure::params("filters.services must be UUID strings"))?
                    .parse::<Uuid>()
                    .map_err(|e| Failure::params(format!("filters.services: {e}")))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Failure::params("filters.services must be an array")),
    };
    let min_rssi = match sub.body.get("minRssi") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|r| (-127..=20).contains(r))
                .ok_or_else(|| Failure::params("filters.minRssi must be an integer dBm from -127 to 20"))?
                as i16,
        ),
    };
    let filter = ScanFilter {
        name_prefix: sub.opt_str("name")?.map(str::to_string),
        services,
        min_rssi,
    };
    let mut session = conn
        .gateway
        .scan(filter, Duration::from_millis(duration))
        .await
        .map_err(Failure::from)?;
    let out = conn.out.clone();
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let id = req.id.clone();
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

pub fn stop(conn: &mut Conn, req: &Request) -> Result<Option<Value>, Failure> {
    let running = conn.scan.as_ref().is_some_and(|s| !s.task.0.is_finished());
    if let Some(s) = &conn.scan {
        s.stop.notify_one();
    }
    Ok(Some(reply(
        "SCAN_STOPPED",
        &req.id,
        json!({"wasScanning": running}),
    )))
}

pub fn devices(conn: &Conn, req: &Request) -> Result<Option<Value>, Failure> {
    let devices: Vec<Value> = conn
        .gateway
        .known_devices()
        .iter()
        .filter(|d| crate::auth::admits(conn.principal.as_ref(), &d.id, d.name.as_deref()))
        .map(device_json)
        .collect();
    Ok(Some(reply("DEVICES", &req.id, json!({"devices": devices}))))
}
