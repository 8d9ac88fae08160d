//! CHARACTERISTIC_READ (→ CHARACTERISTIC_VALUE), CHARACTERISTIC_WRITE
//! (→ CHARACTERISTIC_WRITTEN), SUBSCRIBE (→ SUBSCRIBED, then NOTIFICATION events),
//! UNSUBSCRIBE (→ UNSUBSCRIBED), DESCRIPTOR_READ (→ DESCRIPTOR_VALUE) and
//! DESCRIPTOR_WRITE (→ DESCRIPTOR_WRITTEN). Values are base64.

use serde_json::{json, Value};

use super::protocol::{
    b64, event, reply, CharacteristicWrite, DescriptorWrite, Failure, OnCharacteristic, OnDescriptor,
};
use super::Conn;
use crate::ble::{DeviceId, Uuid, WriteKind};
use crate::gateway::serde_helpers::to_unix_ms;
use crate::gateway::SubscriptionEvent;
use crate::sync::AbortOnDrop;

/// The characteristic a request names, once the device list admits its device.
fn target(conn: &Conn, at: OnCharacteristic) -> Result<(DeviceId, Uuid, Uuid), Failure> {
    conn.check_device(&at.device_id)?;
    Ok((at.device_id, at.service_uuid, at.characteristic_uuid))
}

pub async fn read(conn: &mut Conn, reply_to: &Value, at: OnCharacteristic) -> Result<Option<Value>, Failure> {
    let (id, service, characteristic) = target(conn, at)?;
    let value = conn.gateway.device(&id).read(service, characteristic).await?;
    Ok(Some(reply(
        "CHARACTERISTIC_VALUE",
        reply_to,
        json!({"deviceId": id, "serviceUuid": service.to_string(), "characteristicUuid": characteristic.to_string(),
            "value": b64(&value), "decoded": decoded(characteristic, &value)}),
    )))
}

/// A standard characteristic's value as the SIG decoder reads it (`value`, `unit`,
/// `text`), or null.
fn decoded(characteristic: Uuid, bytes: &[u8]) -> Value {
    crate::ble::decode::decode(characteristic, bytes)
        .map(|d| json!({"value": d.value, "unit": d.unit, "text": d.text}))
        .unwrap_or(Value::Null)
}

pub async fn write(
    conn: &mut Conn,
    reply_to: &Value,
    w: CharacteristicWrite,
) -> Result<Option<Value>, Failure> {
    let (id, service, characteristic) = target(conn, w.characteristic)?;
    let value = w.value;
    let kind = if w.with_response.unwrap_or(true) {
        WriteKind::WithResponse
    } else {
        WriteKind::WithoutResponse
    };
    let len = value.len();
    conn.gateway
        .device(&id)
        .write(service, characteristic, value, kind)
        .await?;
    Ok(Some(reply(
        "CHARACTERISTIC_WRITTEN",
        reply_to,
        json!({"deviceId": id, "serviceUuid": service.to_string(), "characteristicUuid": characteristic.to_string(), "bytes": len}),
    )))
}

pub async fn read_descriptor(
    conn: &mut Conn,
    reply_to: &Value,
    at: OnDescriptor,
) -> Result<Option<Value>, Failure> {
    let descriptor = at.descriptor_uuid;
    let (id, service, characteristic) = target(conn, at.characteristic)?;
    let value = (conn.gateway.device(&id))
        .read_descriptor(service, characteristic, descriptor)
        .await?;
    Ok(Some(reply(
        "DESCRIPTOR_VALUE",
        reply_to,
        json!({"deviceId": id, "serviceUuid": service.to_string(), "characteristicUuid": characteristic.to_string(),
            "descriptorUuid": descriptor.to_string(), "value": b64(&value)}),
    )))
}

pub async fn write_descriptor(
    conn: &mut Conn,
    reply_to: &Value,
    w: DescriptorWrite,
) -> Result<Option<Value>, Failure> {
    let (descriptor, value) = (w.descriptor.descriptor_uuid, w.value);
    let (id, service, characteristic) = target(conn, w.descriptor.characteristic)?;
    let len = value.len();
    (conn.gateway.device(&id))
        .write_descriptor(service, characteristic, descriptor, value)
        .await?;
    Ok(Some(reply(
        "DESCRIPTOR_WRITTEN",
        reply_to,
        json!({"deviceId": id, "serviceUuid": service.to_string(), "characteristicUuid": characteristic.to_string(),
            "descriptorUuid": descriptor.to_string(), "bytes": len}),
    )))
}

pub async fn subscribe(
    conn: &mut Conn,
    reply_to: &Value,
    at: OnCharacteristic,
) -> Result<Option<Value>, Failure> {
    let (id, service, characteristic) = target(conn, at)?;
    let mut sub = conn
        .gateway
        .device(&id)
        .subscribe(service, characteristic)
        .await?;
    let out = conn.out.clone();
    let task = tokio::spawn(async move {
        while let Some(ev) = sub.recv().await {
            match ev {
                SubscriptionEvent::Notification(n) => {
                    out.event(event(
                        "NOTIFICATION",
                        json!({
                            "deviceId": n.device,
                            "serviceUuid": n.service.to_string(),
                            "characteristicUuid": n.characteristic.to_string(),
                            "value": b64(&n.value),
                            "decoded": decoded(n.characteristic, &n.value),
                            "timestamp": to_unix_ms(n.at),
                        }),
                    ));
                }
                SubscriptionEvent::Lagged(k) => out.lost(k),
            }
        }
    });
    conn.subs
        .insert((id.clone(), service, characteristic), AbortOnDrop(task));
    Ok(Some(reply(
        "SUBSCRIBED",
        reply_to,
        json!({"deviceId": id, "serviceUuid": service.to_string(), "characteristicUuid": characteristic.to_string()}),
    )))
}

pub fn unsubscribe(
    conn: &mut Conn,
    reply_to: &Value,
    at: OnCharacteristic,
) -> Result<Option<Value>, Failure> {
    let (id, service, characteristic) = target(conn, at)?;
    if conn.subs.remove(&(id.clone(), service, characteristic)).is_none() {
        return Err(Failure::params(format!(
            "not subscribed to {characteristic} on {id}"
        )));
    }
    Ok(Some(reply(
        "UNSUBSCRIBED",
        reply_to,
        json!({"deviceId": id, "serviceUuid": service.to_string(), "characteristicUuid": characteristic.to_string()}),
    )))
}
