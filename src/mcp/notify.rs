//! Watching values: `ble_subscribe`, `ble_unsubscribe`, and `ble_notifications`,
//! which returns what arrived since a cursor from this session's bounded buffer.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router, Json};

use super::error::{seconds_arg, ToolError};
use super::types::{
    CharacteristicParams, NotificationOut, NotificationsParams, NotificationsResult, SubscribeResult,
    ValueOut,
};
use super::BleMcp;
use crate::gateway::serde_helpers::to_unix_ms;

#[tool_router(router = notify_router, vis = "pub(super)")]
impl BleMcp {
    /// Subscribe to a characteristic's notifications. They collect in this
    /// session's buffer; read them with ble_notifications, starting at the returned cursor.
    #[tool(annotations(
        title = "Subscribe to notifications",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true
    ))]
    async fn ble_subscribe(
        &self,
        Parameters(p): Parameters<CharacteristicParams>,
    ) -> Result<Json<SubscribeResult>, String> {
        let (id, service, characteristic) = self.char_target(&p.device, &p.service, &p.characteristic)?;
        let cursor = self.session.head();
        let sub = self
            .gateway
            .device(&id)
            .subscribe(service, characteristic)
            .await
            .map_err(ToolError::from)?;
        self.session
            .add_subscription((id.clone(), service, characteristic), sub);
        Ok(Json(SubscribeResult {
            device: id.to_string(),
            characteristic: characteristic.into(),
            subscribed: true,
            cursor,
        }))
    }

    /// Stop this session's subscription to a characteristic.
    #[tool(annotations(
        title = "Unsubscribe",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true
    ))]
    async fn ble_unsubscribe(
        &self,
        Parameters(p): Parameters<CharacteristicParams>,
    ) -> Result<Json<SubscribeResult>, String> {
        let (id, service, characteristic) = self.char_target(&p.device, &p.service, &p.characteristic)?;
        if !self
            .session
            .remove_subscription(&(id.clone(), service, characteristic))
        {
            return Err(ToolError(format!(
                "this session is not subscribed to {} on {id}: ble_notifications lists the subscriptions",
                characteristic.short()
            ))
            .into());
        }
        Ok(Json(SubscribeResult {
            device: id.to_string(),
            characteristic: characteristic.into(),
            subscribed: false,
            cursor: self.session.head(),
        }))
    }

    /// Notifications that arrived after `cursor` (oldest first), decoded where the
    /// characteristic is standard. Waits up to `timeout` seconds when none has
    /// arrived yet. `dropped` counts what the bounded buffer lost since your cursor.
    #[tool(annotations(title = "Get notifications", read_only_hint = true))]
    async fn ble_notifications(
        &self,
        Parameters(p): Parameters<NotificationsParams>,
    ) -> Result<Json<NotificationsResult>, String> {
        let wait = seconds_arg("timeout", p.timeout, 5.0, 60.0)?;
        let limit = p.limit.unwrap_or(100).clamp(1, 1000);
        let page = self
            .session
            .notifications(p.cursor.unwrap_or(0), limit, wait)
            .await;
        let notifications = page
            .entries
            .iter()
            .map(|e| NotificationOut {
                seq: e.seq,
                at_ms: to_unix_ms(e.at),
                device: e.device.to_string(),
                service: e.service.short(),
                characteristic: e.characteristic.into(),
                value: ValueOut::new(e.characteristic, &e.value),
            })
            .collect();
        Ok(Json(NotificationsResult {
            notifications,
            cursor: page.cursor,
            dropped: page.dropped,
            subscriptions: self.session.subscription_names(),
        }))
    }
}
