//! Browser assets embedded in the binary (no Node.js at build time, no CDN at run
//! time): the Web Bluetooth polyfill at `/webbluetooth.js`, and the dashboard's
//! script and style sheet.

use axum::http::header;
use axum::response::IntoResponse;

/// `navigator.bluetooth` for any browser, over `/ws` (`?force=1` is read by the
/// script itself: it then replaces a native implementation too).
pub async fn polyfill() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/webbluetooth.js"),
    )
}

/// The dashboard's views (on the index page).
pub async fn dashboard_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/dashboard.js"),
    )
}

pub async fn dashboard_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/dashboard.css"),
    )
}

/// uPlot (MIT, vendored from npm with its licence, `assets/vendor/`): the charts.
pub async fn uplot_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("assets/vendor/uPlot.iife.min.js"),
    )
}

pub async fn uplot_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("assets/vendor/uPlot.min.css"),
    )
}
