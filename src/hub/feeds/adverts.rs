//! Advertisements as telemetry: sensors that only broadcast (BTHome thermometers,
//! door contacts, RuuviTags, Govee hygrometers, beacons) become hub devices like
//! any other. The hub keeps a scan running,
//! decodes what each advertisement says (`crate::adverts`) and stores a device's
//! readings as its telemetry whenever its payload changes: a sensor repeats one
//! packet many times, and each packet is stored once.

use std::sync::Weak;
use std::time::Duration;

use serde_json::Value;

use crate::ble::{DeviceId, ScanFilter};
use crate::gateway::Gateway;
use crate::hub::{Hub, Inner};
use crate::store::{now_ms, DeviceBatch, Point};
use crate::sync::AbortOnDrop;

/// A scan is started afresh this often (a scan that fails is retried sooner).
const SCAN_FOR: Duration = Duration::from_secs(3600);

pub(in crate::hub) fn spawn(gateway: Gateway, hub: Weak<Inner>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(run(gateway, hub)))
}

async fn run(gateway: Gateway, hub: Weak<Inner>) {
    let mut adverts = gateway.advertisements();
    let mut packets = crate::adverts::NewPackets::default();
    loop {
        // Held while it runs: the radios scan as long as the feed listens.
        let _scan = match gateway.scan(ScanFilter::default(), SCAN_FOR).await {
            Ok(scan) => scan,
            Err(e) => {
                tracing::warn!(error = %e, "advertisement feed: no scan; trying again in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let listen = async {
            loop {
                let heard = match adverts.recv().await {
                    Ok(heard) => heard,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "advertisement feed fell behind");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                // Decoded by the gateway already.
                let (adv, readings) = (&heard.advert, &heard.device.readings);
                if readings.is_empty() {
                    continue;
                }
                if !packets.is_new(adv) {
                    continue;
                }
                let Some(inner) = hub.upgrade() else { return };
                store(&Hub(inner), &adv.id, readings.clone()).await;
            }
        };
        if tokio::time::timeout(SCAN_FOR, listen).await.is_ok() {
            return; // the gateway or the hub is gone
        }
    }
}

/// Hands one advertisement's readings to the writer as the device's telemetry.
async fn store(hub: &Hub, device: &DeviceId, readings: Vec<crate::adverts::Reading>) {
    let ts = now_ms();
    let points = readings
        .into_iter()
        .filter(|r| !matches!(r.value, Value::Null))
        .map(|r| Point {
            key: r.key,
            value: r.value,
            ts,
        })
        .collect();
    let batch = DeviceBatch {
        device: device.as_str().into(),
        seq: None,
        points,
    };
    // Nobody waits for this ack; a batch the store refused is logged, and the next
    // payload of the device is stored as usual.
    match hub.writer().submit(batch).await {
        Ok(ack) => {
            let device = device.clone();
            tokio::spawn(async move {
                if let Ok(Err(e)) = ack.await {
                    tracing::warn!(%device, error = %e, "advertised readings not stored");
                }
            });
        }
        Err(e) => tracing::warn!(%device, error = %e, "advertised readings not stored"),
    }
}
