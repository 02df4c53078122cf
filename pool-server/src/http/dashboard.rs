//! The built-in dashboard: HTML pages and scripts embedded in the binary (no CDN, works
//! offline) that poll the read API. `/` is the pool (cards, chart, the workers table paged
//! on the server, accounts, blocks); `/worker?name=NAME` is one worker over a chosen range;
//! `/account?name=NAME` is one account's balances, credits and payouts.

use axum::http::header;
use axum::response::IntoResponse;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "application/javascript; charset=utf-8";

pub async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HTML)],
        include_str!("../../assets/dashboard.html"),
    )
}

pub async fn worker_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HTML)],
        include_str!("../../assets/worker.html"),
    )
}

pub async fn account_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HTML)],
        include_str!("../../assets/account.html"),
    )
}

pub async fn account_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JS)],
        include_str!("../../assets/account.js"),
    )
}

pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/dashboard.css"),
    )
}

pub async fn charts() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JS)],
        include_str!("../../assets/charts.js"),
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JS)],
        include_str!("../../assets/dashboard.js"),
    )
}

pub async fn worker_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JS)],
        include_str!("../../assets/worker.js"),
    )
}
