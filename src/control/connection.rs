//! CONNECT (→ CONNECTED), DISCONNECT (→ DISCONNECTED), GET_SERVICES (→ SERVICES):
//! a device's connection and the GATT tree it discovers.

use serde_json::{json, Value};

use super::protocol::{reply, Code, Connect, Failure, OnDevice};
use super::Conn;
use crate::gateway::{ConnectOptions, LinkState};

pub async fn connect(conn: &mut Conn, reply_to: &Value, to: Connect) -> Result<Option<Value>, Failure> {
    let timeout = to.timeout;
    // A name prefix is resolved first, and the device list checked against the
    // device it names, not the raw text.
    let resolving = timeout.unwrap_or(conn.gateway.config().connect_timeout());
    let id = conn
        .gateway
        .resolve(to.device_id.as_str(), &[], resolving)
        .await?;
    conn.check_device(&id)?;
    if conn
        .gateway
        .connections()
        .iter()
        .any(|c| c.id == id && c.state == LinkState::Connected)
    {
        return Err(Failure::new(
            Code::AlreadyConnected,
            format!("{id} is already connected: use it directly (GET_SERVICES, CHARACTERISTIC_READ, ...)"),
        ));
    }
    let info = conn
        .gateway
        .connect(
            id.as_str(),
            ConnectOptions {
                timeout,
                services: Vec::new(),
            },
        )
        .await?;
    Ok(Some(reply(
        "CONNECTED",
        reply_to,
        json!({"deviceId": info.id, "name": info.name, "mtu": info.mtu}),
    )))
}

pub async fn disconnect(conn: &mut Conn, reply_to: &Value, from: OnDevice) -> Result<Option<Value>, Failure> {
    let id = from.device_id;
    conn.check_device(&id)?;
    conn.subs.retain(|(d, _, _), _| d != &id);
    conn.gateway.device(&id).disconnect().await?;
    Ok(Some(reply("DISCONNECTED", reply_to, json!({"deviceId": id}))))
}

pub async fn services(conn: &mut Conn, reply_to: &Value, of: OnDevice) -> Result<Option<Value>, Failure> {
    let id = of.device_id;
    conn.check_device(&id)?;
    let tree = conn.gateway.device(&id).services().await?;
    let services: Vec<Value> = tree
        .iter()
        .map(|s| {
            json!({
                "uuid": s.uuid.to_string(),
                "name": s.uuid.name(),
                "primary": s.primary,
                "characteristics": s.characteristics.iter().map(|c| json!({
                    "uuid": c.uuid.to_string(),
                    "name": c.uuid.name(),
                    "properties": c.props.names(),
                    "descriptors": c.descriptors.iter().map(|d| d.uuid.to_string()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Some(reply(
        "SERVICES",
        reply_to,
        json!({"deviceId": id, "services": services}),
    )))
}
