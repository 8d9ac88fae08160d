//! Leases: a device held by one user is exclusive until released.

use super::{connect, id};
use crate::common::*;
use gattway::ble::well_known as wk;
use gattway::gateway::GatewayError;

#[tokio::test]
async fn a_lease_makes_a_device_exclusive() {
    let rig = rig();
    connect(&rig, HRM).await;
    let alice = rig.gateway.lease(&id(HRM), "alice", false).unwrap();
    let err = rig
        .gateway
        .device(&id(HRM))
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GatewayError::Busy {
            id: id(HRM),
            holder: "alice".into()
        }
    );
    assert!(err.to_string().contains("alice"));
    alice
        .device()
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("the holder may");
    assert_eq!(
        rig.gateway.connections()[0].lease_holder.as_deref(),
        Some("alice")
    );
    let err = rig.gateway.lease(&id(HRM), "bob", false).err().unwrap();
    assert_eq!(err.code(), "busy");

    let bob = rig
        .gateway
        .lease(&id(HRM), "bob", true)
        .expect("forced take-over");
    assert!(!alice.is_valid());
    assert_eq!(
        alice
            .device()
            .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
            .await
            .unwrap_err()
            .code(),
        "busy"
    );
    drop(alice);
    assert!(bob.is_valid(), "dropping the old lease leaves the new one alone");

    assert_eq!(
        rig.gateway.revoke_lease("not-the-token").unwrap_err(),
        GatewayError::InvalidLease
    );
    assert_eq!(rig.gateway.revoke_lease(bob.token()).unwrap(), id(HRM));
    assert_eq!(rig.gateway.stats().leases, 0);
    rig.gateway
        .device(&id(HRM))
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("free again");
}
