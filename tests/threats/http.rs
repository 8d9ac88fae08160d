//! The HTTP door: the accept loop and what every page and script is served with.

use std::time::{Duration, Instant};

use gattway::http::HttpConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;

#[tokio::test]
async fn sockets_that_never_send_a_request_are_closed_at_the_header_deadline() {
    let rig = rig();
    let http = HttpConfig {
        max_connections: 4,
        header_read_timeout_ms: 500,
        ..Default::default()
    };
    let setup = Setup {
        http,
        ..Default::default()
    };
    let (server, _) = start(&rig.gateway, setup).await;
    let opened = Instant::now();
    // Three that say nothing, and one that starts HTTP/2's preface and stops: the
    // four fill every slot.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut half_h2 = TcpStream::connect(server.addr).await.unwrap();
    half_h2.write_all(b"PRI * HTTP/2.0").await.unwrap();
    silent.push(half_h2);
    for tcp in &mut silent {
        closed_by_server(tcp).await;
    }
    let took = opened.elapsed();
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // The slots are free again.
    let r = within("/healthz", reqwest::get(server.url("/healthz")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn pages_and_scripts_may_not_be_framed_sniffed_or_injected_into() {
    let rig = rig();
    let (server, _) = start(&rig.gateway, Setup::default()).await;
    for path in [
        "/",
        "/dashboard.js",
        "/dashboard.css",
        "/webbluetooth.js",
        "/vendor/uPlot.iife.min.js",
        "/vendor/uPlot.min.css",
        "/healthz",
    ] {
        let r = reqwest::get(server.url(path)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        let header = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path} has no {name}"))
                .to_string()
        };
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
    }
    // The page keeps to its policy: every script is a file of this server.
    let page = reqwest::get(server.url("/")).await.unwrap().text().await.unwrap();
    let scripts: Vec<&str> = page.split("<script").skip(1).collect();
    assert!(!scripts.is_empty());
    assert!(
        scripts.iter().all(|s| s.trim_start().starts_with("src=\"/")),
        "{page}"
    );
    server.stop().await;
}
