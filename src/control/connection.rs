//! CONNECT (→ CONNECTED), DISCONNECT (→ DISCONNECTED), GET_SERVICES (→ SERVICES):
//! a device's connection and the GATT tree it discovers.

use std::time::Duration;

use serde_json::{json, Value};

use super::protocol::{reply, Code, Failure, Request};
use super::Conn;
use crate::gateway::{ConnectOptions, LinkState};

pub async fn connect(conn: &mut Conn, req: &Request) -> Result<Option<Value>, Failure> {
    // A name prefix is resolved first, and the device list checked against the
    // device it names, not the raw text.
    let target = req.device()?;
    let timeout = req.opt_u64("timeout", 120_000)?.map(Duration::from_millis);
    let resolving = timeout.unwrap_or(conn.gateway.config().connect_timeout());
    let id = conn.gateway.resolve(target.as_str(), &[], resolving).await?;
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
        &req.id,
        json!({"deviceId": info.id, "name": info.name, "mtu": info.mtu}),
    )))
}

pub async fn disconnect(conn: &mut Conn, req: &Request) -> Result<Option<Value>, Failure> {
    let id = req.device()?;
    conn.check_device(&id)?;
    conn.subs.retain(|(d, _, _), _| d != &id);
    conn.gateway.device(&id).disconnect().await?;
    Ok(Some(reply("DISCONNECTED", &req.id, json!({"deviceId": id}))))
}

pub async fn services(conn: &mut Conn, req: &Request) -> Result<Option<Value>, Failure> {
    let id = req.device()?;
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
        &req.id,
        json!({"deviceId": id, "services": services}),
    )))
}
