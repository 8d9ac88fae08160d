//! [`DeviceFilter`]: a caller's device allow-list made ready for results that
//! carry only device ids (packet log entries, connection lists): the names the
//! list may match are looked up once, before the results are walked, so no
//! gateway lock is taken inside another's.

use std::collections::HashMap;

use super::Gateway;
use crate::auth::{DeviceAllowList, Principal};
use crate::ble::DeviceId;
use crate::sync::lock;

/// Which devices a caller may see.
pub struct DeviceFilter {
    /// `None`: every device.
    limited: Option<(DeviceAllowList, HashMap<DeviceId, String>)>,
}

impl DeviceFilter {
    /// Every device (no credentials configured, or a credential without a list).
    pub fn all() -> Self {
        DeviceFilter { limited: None }
    }

    pub fn admits(&self, id: &DeviceId) -> bool {
        match &self.limited {
            None => true,
            Some((list, names)) => list.admits(id.as_str(), names.get(id).map(String::as_str)),
        }
    }
}

impl Gateway {
    /// The devices `principal` may see, as a filter over device ids.
    pub fn device_filter(&self, principal: Option<&Principal>) -> DeviceFilter {
        let Some(list) = principal.map(|p| &p.devices).filter(|l| !l.is_any()) else {
            return DeviceFilter::all();
        };
        let names = lock(&self.inner.known)
            .iter()
            .filter_map(|(id, d)| Some((id.clone(), d.name.clone()?)))
            .collect();
        DeviceFilter {
            limited: Some((list.clone(), names)),
        }
    }
}
