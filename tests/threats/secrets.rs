//! Credentials at start-up: tokens from an authorisation server are checked for
//! this server's audience, and the database password never reaches a log line.

use crate::common::process::{gattway, listening_addr, reading_stderr};
use crate::common::*;

#[tokio::test]
async fn jwks_without_an_audience_refuses_to_start() {
    let out = within(
        "gattway serve to refuse",
        gattway()
            .env("GATTWAY_AUTH_JWKS_URL", "http://127.0.0.1:9/certs")
            .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"])
            .output(),
    )
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served tokens for any audience: {said}");
    assert!(said.contains("auth.jwt_audience"), "{said}");
}

#[tokio::test]
async fn the_database_password_is_never_logged() {
    let db = TempDb::postgres();
    // Trust authentication here: the password is carried, not checked.
    let url = db
        .url()
        .replacen("postgres@", "postgres:hunter2-not-for-logs@", 1);
    assert!(url.contains("hunter2"), "{url}");
    let mut command = gattway();
    command
        .args([
            "--backend",
            "sim",
            "--log-level",
            "debug",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--database", &url])
        .env("GATTWAY_HUB_SIM_FEED", "false");
    let (_child, mut lines) = reading_stderr(command);
    let mut said = Vec::new();
    within("the server to listen", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let listening = line.contains("listening on http://");
            said.push(line);
            if listening {
                return;
            }
        }
        panic!("stderr ended: {said:?}");
    })
    .await;
    let _ = listening_addr(said.last().unwrap());
    let all = said.join("\n");
    assert!(
        all.contains("postgres://postgres:***@"),
        "the database is still named: {all}"
    );
    assert!(!all.contains("hunter2"), "the password was logged: {all}");
}
