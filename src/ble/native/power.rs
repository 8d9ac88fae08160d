//! Power-cycling the adapter through BlueZ (`org.bluez.Adapter1.Powered`, off then
//! on): the watchdog's last resort for a radio that stays deaf after its scan was
//! restarted. btleplug has no call for it; BlueZ's D-Bus API does.

use crate::ble::{BleError, BleResult};

#[cfg(target_os = "linux")]
pub(super) async fn power_cycle(adapter: &str) -> BleResult<()> {
    use std::time::Duration;

    use dbus::blocking::stdintf::org_freedesktop_dbus::Properties;

    let path = format!("/org/bluez/{adapter}");
    // The blocking connection, on a blocking thread: two property writes, rarely.
    let cycled = tokio::task::spawn_blocking(move || -> Result<(), dbus::Error> {
        let bus = dbus::blocking::Connection::new_system()?;
        let proxy = bus.with_proxy("org.bluez", path, Duration::from_secs(5));
        proxy.set("org.bluez.Adapter1", "Powered", false)?;
        proxy.set("org.bluez.Adapter1", "Powered", true)
    })
    .await
    .map_err(|e| BleError::Other(format!("power-cycling {adapter}: {e}")))?;
    cycled.map_err(|e| BleError::AdapterUnavailable(format!("power-cycling {adapter} through BlueZ: {e}")))
}

#[cfg(not(target_os = "linux"))]
pub(super) async fn power_cycle(adapter: &str) -> BleResult<()> {
    Err(BleError::AdapterUnavailable(format!(
        "power-cycling {adapter}: gattway does it through BlueZ, on Linux only"
    )))
}
