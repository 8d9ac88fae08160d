//! The gateway's tunables (the `[gateway]` table of the config file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Longest a connect may take, scanning for the device included.
    pub connect_timeout_ms: u64,
    /// Longest one GATT operation may take.
    pub op_timeout_ms: u64,
    /// Extra connection attempts after the first fails.
    pub connect_retries: u32,
    /// First retry delay; doubles each retry, with ±25 % jitter.
    pub backoff_initial_ms: u64,
    /// Ceiling of the retry delay.
    pub backoff_max_ms: u64,
    /// Reconnect on its own when a link drops that nobody closed.
    pub auto_reconnect: bool,
    /// Reconnection attempts before giving a dropped device up.
    pub reconnect_attempts: u32,
    /// Links open at once; the least recently used unleased one is closed to make
    /// room. BlueZ controllers typically manage 7 to 10.
    pub max_connections: usize,
    /// Close a link nobody used, subscribed to or leased for this long (0: never).
    pub idle_timeout_ms: u64,
    /// Notifications a subscriber may fall behind before it is told it lagged.
    pub subscriber_buffer: usize,
    /// Entries the packet log (every value written and notified) keeps.
    pub packet_log_size: usize,
    /// A radio that hears nothing this long while it scans and devices are known is
    /// stuck: its scan is restarted, then (still deaf) it is power-cycled (0: never).
    pub watchdog_stall_ms: u64,
    /// A device not heard this long is forgotten, unless it is connected (0: never).
    pub device_expiry_ms: u64,
    /// The same for a device heard best through a remote proxy (ESPHome): a proxy
    /// passes fewer packets and pauses its scan while it connects (0: never).
    pub proxy_device_expiry_ms: u64,
    /// With several radios, a re-made link moves to another radio only when that
    /// one hears the device this many dB better than the radio it was on.
    pub radio_hysteresis_db: i16,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            connect_timeout_ms: 10_000,
            op_timeout_ms: 10_000,
            connect_retries: 2,
            backoff_initial_ms: 250,
            backoff_max_ms: 5_000,
            auto_reconnect: true,
            reconnect_attempts: 5,
            max_connections: 8,
            idle_timeout_ms: 300_000,
            subscriber_buffer: 1024,
            packet_log_size: 10_000,
            watchdog_stall_ms: 90_000,
            device_expiry_ms: 195_000,
            proxy_device_expiry_ms: 900_000,
            radio_hysteresis_db: 6,
        }
    }
}

impl GatewayConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_ms > 0).then(|| Duration::from_millis(self.idle_timeout_ms))
    }

    pub fn watchdog_stall(&self) -> Option<Duration> {
        (self.watchdog_stall_ms > 0).then(|| Duration::from_millis(self.watchdog_stall_ms))
    }

    pub fn device_expiry(&self) -> Option<Duration> {
        (self.device_expiry_ms > 0).then(|| Duration::from_millis(self.device_expiry_ms))
    }

    pub fn proxy_device_expiry(&self) -> Option<Duration> {
        (self.proxy_device_expiry_ms > 0).then(|| Duration::from_millis(self.proxy_device_expiry_ms))
    }

    /// Delay before retry number `attempt` (1-based): exponential, capped, jittered
    /// ±25 % so that many clients retrying at once spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_initial_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.backoff_max_ms) as f64;
        Duration::from_millis((capped * (0.75 + fastrand::f64() * 0.5)) as u64)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("gateway.max_connections must be at least 1".into());
        }
        if self.subscriber_buffer == 0 {
            return Err("gateway.subscriber_buffer must be at least 1".into());
        }
        if self.op_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err("gateway timeouts must be above 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let c = GatewayConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1000,
            ..Default::default()
        };
        for _ in 0..100 {
            let b1 = c.backoff(1).as_millis();
            let b3 = c.backoff(3).as_millis();
            let b9 = c.backoff(9).as_millis();
            assert!((75..=125).contains(&b1), "{b1}");
            assert!((300..=500).contains(&b3), "{b3}");
            assert!((750..=1250).contains(&b9), "{b9}");
        }
    }
}
