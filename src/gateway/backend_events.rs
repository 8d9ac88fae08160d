//! The backend's events, routed: advertisements to the known-device table and to
//! scanners, link drops to the device's actor.

use std::sync::{Arc, Weak};

use tokio::sync::broadcast;

use super::{lock, DeviceInfo, Heard, Inner};
use crate::ble::{BackendEvent, DisconnectReason};

/// Known devices kept from advertisements; beyond this the oldest are forgotten.
const KNOWN_DEVICES_MAX: usize = 4096;

/// Reads the backend's events: advertisements to the known-device table and to
/// scanners; link drops to the device's actor.
pub(super) async fn route_backend_events(
    inner: Weak<Inner>,
    radio: usize,
    mut rx: broadcast::Receiver<BackendEvent>,
) {
    let adverts_heard = match inner.upgrade() {
        Some(inner) => inner.metrics.radio_adverts(&inner.radios.list[radio].name),
        None => return,
    };
    loop {
        let event = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "gateway fell behind the adapter's events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        match event {
            BackendEvent::Advertisement(mut adv) => {
                adverts_heard.inc();
                let now = inner.now_ms();
                let radios = &inner.radios;
                radios.list[radio]
                    .last_advert_ms
                    .store(now + 1, std::sync::atomic::Ordering::Relaxed);
                // Scanners and the known table see the radio that hears it best.
                let (best, rssi) = radios.heard(radio, &adv.id, adv.rssi, now);
                adv.rssi = rssi;
                // Decoded here, once, for the known table and every listener.
                let mut info = DeviceInfo::from(&adv);
                info.radio = Some(radios.list[best].name.clone());
                let keys = lock(&inner.advert_keys).clone();
                info.readings = keys.decode(&adv);
                {
                    let mut known = lock(&inner.known);
                    if known.len() >= KNOWN_DEVICES_MAX && !known.contains_key(&adv.id) {
                        if let Some(oldest) = known.values().min_by_key(|d| d.last_seen).map(|d| d.id.clone())
                        {
                            known.remove(&oldest);
                        }
                    }
                    known.insert(adv.id.clone(), info.clone());
                }
                let _ = inner.adverts.send(Arc::new(Heard {
                    advert: adv,
                    device: info,
                }));
            }
            // Only the radio that carries the link speaks for it.
            BackendEvent::Disconnected { id, .. } if inner.radios.carrier(&id) != Some(radio) => {}
            BackendEvent::Disconnected { id, reason } => {
                let handle = lock(&inner.devices).get(&id).cloned();
                if let (Some(h), DisconnectReason::LinkLost) = (handle, reason) {
                    h.shared.link_lost.notify_one();
                }
            }
            BackendEvent::Connected(_) => {}
        }
    }
}
