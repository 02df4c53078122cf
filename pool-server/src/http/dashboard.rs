//! The built-in dashboard: HTML pages and scripts embedded in the binary (no CDN, works
//! offline) that poll the read API. `/` is the pool (cards, chart, the workers table paged
//! on the server, accounts, blocks); `/worker?name=NAME` is one worker over a chosen range;
//! `/account?name=NAME` is one account's balances, credits and payouts.

use axum::http::header;
use axum::routing::get;
use axum::Router;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "application/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Each route of the dashboard, its content type and the file it serves.
const ASSETS: [(&str, &str, &str); 8] = [
    ("/", HTML, include_str!("../../assets/dashboard.html")),
    (
        "/dashboard.js",
        JS,
        include_str!("../../assets/dashboard.js"),
    ),
    (
        "/dashboard.css",
        CSS,
        include_str!("../../assets/dashboard.css"),
    ),
    ("/charts.js", JS, include_str!("../../assets/charts.js")),
    ("/worker", HTML, include_str!("../../assets/worker.html")),
    ("/worker.js", JS, include_str!("../../assets/worker.js")),
    ("/account", HTML, include_str!("../../assets/account.html")),
    ("/account.js", JS, include_str!("../../assets/account.js")),
];

/// The dashboard's routes, added to `router`.
pub fn routes<S: Clone + Send + Sync + 'static>(mut router: Router<S>) -> Router<S> {
    for (path, kind, body) in ASSETS {
        router = router.route(
            path,
            get(move || async move { ([(header::CONTENT_TYPE, kind)], body) }),
        );
    }
    router
}
