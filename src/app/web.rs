//! Browser assets embedded in the binary (no Node.js at build time, no CDN at run
//! time): the Web Bluetooth polyfill at `/webbluetooth.js`, the dashboard's script
//! and style sheet, and uPlot.

use axum::http::header;
use axum::response::IntoResponse;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
/// Our own assets change with the binary: the browser asks again each time.
const OURS: &str = "no-cache";
/// A vendored release does not change under its name.
const VENDORED: &str = "max-age=86400";

fn asset(content_type: &'static str, cache: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
}

/// `navigator.bluetooth` for any browser, over `/ws` (`?force=1` is read by the
/// script itself: it then replaces a native implementation too).
pub async fn polyfill() -> impl IntoResponse {
    asset(JS, OURS, include_str!("assets/webbluetooth.js"))
}

/// The dashboard's views (on the index page).
pub async fn dashboard_js() -> impl IntoResponse {
    asset(JS, OURS, include_str!("assets/dashboard.js"))
}

pub async fn dashboard_css() -> impl IntoResponse {
    asset(CSS, OURS, include_str!("assets/dashboard.css"))
}

/// uPlot (MIT, vendored from npm with its licence, `assets/vendor/`): the charts.
pub async fn uplot_js() -> impl IntoResponse {
    asset(JS, VENDORED, include_str!("assets/vendor/uPlot.iife.min.js"))
}

pub async fn uplot_css() -> impl IntoResponse {
    asset(CSS, VENDORED, include_str!("assets/vendor/uPlot.min.css"))
}
