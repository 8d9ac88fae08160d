//! The hub's test suites (`tests/suites/`) on the embedded store: SQLite.

mod common;
#[path = "suites/hub/mod.rs"]
mod hub;
#[path = "suites/hub_crash.rs"]
mod hub_crash;

/// A fresh database for one test.
fn store() -> common::TempDb {
    common::TempDb::new()
}
