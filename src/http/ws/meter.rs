//! A connection's place in the metrics: the endpoint's gauge of open connections
//! (down again when the meter is dropped, however the connection ends) and its
//! message counters.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::{Direction, Endpoint, EndpointLabels, MessageLabels, Metrics};

/// The gauge of open connections (down again when dropped) and the message counters.
pub struct Meter {
    gauge: Gauge,
    pub sent: Counter,
    pub received: Counter,
}

impl Meter {
    pub fn open(metrics: &Metrics, endpoint: Endpoint) -> Meter {
        let gauge = metrics
            .ws_connections
            .get_or_create(&EndpointLabels { endpoint })
            .clone();
        gauge.inc();
        let counter = |direction| {
            metrics
                .messages
                .get_or_create(&MessageLabels { endpoint, direction })
                .clone()
        };
        Meter {
            gauge,
            sent: counter(Direction::sent),
            received: counter(Direction::received),
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
