//! Leases: one holder's exclusive use of a device ([`Lease`]); everyone else gets
//! `busy`. A lease is proven by its token, compared in constant time.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{
    lock, serde_helpers, ConnectOptions, ConnectionInfo, DeviceRef, Gateway, GatewayError, GatewayResult,
};
use crate::auth::constant_time_eq;
use crate::ble::DeviceId;

impl Gateway {
    /// Takes `id` for exclusive use. With `force`, an existing holder loses it.
    pub fn lease(&self, id: &DeviceId, holder: &str, force: bool) -> GatewayResult<Lease> {
        self.ensure_running()?;
        let mut leases = lock(&self.inner.leases);
        if let Some(existing) = leases.get(id) {
            if !force {
                return Err(GatewayError::Busy {
                    id: id.clone(),
                    holder: existing.holder.clone(),
                });
            }
            tracing::info!(device = %id, previous = %existing.holder, new = holder, "lease taken over");
        }
        let info = LeaseInfo {
            token: uuid::Uuid::new_v4().to_string(),
            holder: holder.to_string(),
            since: SystemTime::now(),
        };
        leases.insert(id.clone(), info.clone());
        Ok(Lease {
            gateway: self.clone(),
            id: id.clone(),
            info,
        })
    }

    /// Who holds `id`, if anyone.
    pub fn lease_of(&self, id: &DeviceId) -> Option<LeaseInfo> {
        lock(&self.inner.leases).get(id).cloned()
    }

    /// Takes the device back from whoever holds it (an operator's forced release):
    /// the holder's lease is void from now on, so its next operation is refused and
    /// every client may use the device again. Returns the holder it had, if any.
    pub fn release(&self, id: &DeviceId) -> Option<String> {
        let released = lock(&self.inner.leases).remove(id).map(|l| l.holder);
        if let Some(holder) = &released {
            tracing::info!(device = %id, %holder, "lease released by an operator");
        }
        released
    }

    /// Ends the lease with this token wherever it is (forced clean-up by a client
    /// that lost its handle); returns the device it was on.
    pub fn revoke_lease(&self, token: &str) -> GatewayResult<DeviceId> {
        let mut leases = lock(&self.inner.leases);
        let id = leases
            .iter()
            .find(|(_, l)| constant_time_eq(l.token.as_bytes(), token.as_bytes()))
            .map(|(id, _)| id.clone())
            .ok_or(GatewayError::InvalidLease)?;
        leases.remove(&id);
        Ok(id)
    }

    pub(super) fn check_lease(&self, id: &DeviceId, token: Option<&str>) -> GatewayResult<()> {
        match lock(&self.inner.leases).get(id) {
            None => Ok(()),
            Some(l) if token.is_some_and(|t| constant_time_eq(t.as_bytes(), l.token.as_bytes())) => Ok(()),
            Some(l) => Err(GatewayError::Busy {
                id: id.clone(),
                holder: l.holder.clone(),
            }),
        }
    }
}

/// Who holds a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    /// The secret that proves holding; clients use it for forced clean-up.
    #[serde(skip)]
    pub token: String,
    pub holder: String,
    #[serde(serialize_with = "serde_helpers::unix_ms")]
    pub since: SystemTime,
}

/// Exclusive use of one device. Operations through [`Lease::device`] pass; others
/// get `busy`. Dropping the lease releases it (the link stays open).
pub struct Lease {
    gateway: Gateway,
    id: DeviceId,
    info: LeaseInfo,
}

impl Lease {
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    pub fn token(&self) -> &str {
        &self.info.token
    }

    pub fn holder(&self) -> &str {
        &self.info.holder
    }

    /// Whether this lease still holds (a forced take-over or revoke ends it).
    pub fn is_valid(&self) -> bool {
        self.gateway
            .lease_of(&self.id)
            .is_some_and(|l| l.token == self.info.token)
    }

    pub fn device(&self) -> DeviceRef<'_> {
        DeviceRef {
            gateway: &self.gateway,
            id: self.id.clone(),
            token: Some(&self.info.token),
        }
    }

    /// Connects the leased device (a lease can be taken before the link is up).
    pub async fn connect(&self, timeout: Option<Duration>) -> GatewayResult<ConnectionInfo> {
        self.gateway
            .connect_as(
                self.id.as_str(),
                ConnectOptions {
                    timeout,
                    services: Vec::new(),
                },
                Some(&self.info.token),
            )
            .await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut leases = lock(&self.gateway.inner.leases);
        if leases.get(&self.id).is_some_and(|l| l.token == self.info.token) {
            leases.remove(&self.id);
        }
    }
}
