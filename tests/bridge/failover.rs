//! A bridge session carrying on when the radio under its link fails over.

use super::{fast_bridge, Client, CS108_QUERY};
use crate::common::*;

#[tokio::test]
async fn a_bridge_session_carries_on_through_a_radio_failover() {
    let (gateway, near, _far) = two_radios(7, 7);
    let server = start_server_with(&gateway, Default::default(), fast_bridge()).await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    c.battery_round_trip().await;
    assert_eq!(link_radio(&gateway, CS108).as_deref(), Some("near"));

    // Near dies mid-session: the link is re-made through far, and the same
    // session's next command gets its answer.
    let mut events = gateway.events();
    near.set_powered(false);
    reconnected(&mut events, CS108).await;
    assert_eq!(link_radio(&gateway, CS108).as_deref(), Some("far"));
    let answer = c.battery_round_trip().await;
    assert_eq!(&answer[..6], &[0xA7, 0xB3, 0x04, 0xD9, 0x82, 0x9E]);
    server.stop().await;
}
