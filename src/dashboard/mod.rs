//! The web dashboard at `/dashboard`: one page, its stylesheet and two scripts (the app,
//! and its metrics view with the charts), embedded in the binary, with no build step. The
//! page is a client of this node's own S2 REST API (basins, streams, records, access
//! tokens, `/v1/metrics`) and of its Prometheus `/metrics`; every URL it calls is an
//! absolute path on the page's origin, so it works on any node and through a balancer
//! that routes every path to a node.
//!
//! - [`routes`]: the assets and `config.json` (whether the node requires access tokens,
//!   which the page needs before it can ask for one). None of them is authenticated: they
//!   hold no data, and the page sends the token the user gives it with each API call.
//! - [`browser_redirect`]: `GET /` from a browser (an `Accept` naming `text/html`) goes to
//!   the dashboard; every other client keeps S2's `bad_path` (400) for `/`.
//!
//! Assets are revalidated on every use (`no-cache`) against an `ETag` of their bytes, so
//! a node running a new binary is picked up at once and an unchanged asset costs a 304;
//! the ETag is a digest of the bytes, equal on every node of one build, and weak because
//! the compression layer may send the same file gzip-encoded.

use std::sync::LazyLock;

use axum::{
    Router,
    extract::{Request, State},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::http::AppState;

/// Where the dashboard lives; `/` redirects browsers here.
pub const PATH: &str = "/dashboard";

/// An embedded file with what is sent along with it.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: &'static [u8], content_type: &'static str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, body);
        let hex: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            body,
            content_type,
            etag: HeaderValue::try_from(format!("W/\"{hex}\"")).expect("hex is a valid header"),
        }
    }

    fn respond(
        &self,
        request: &HeaderMap,
        extra: &[(header::HeaderName, &'static str)],
    ) -> Response {
        // `If-None-Match` compares weakly: `W/"x"` and `"x"` match.
        let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        let ours = opaque(self.etag.to_str().expect("ASCII"));
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || opaque(t) == ours));
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut r = self.body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            r
        };
        let h = response.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        for (name, value) in extra {
            h.insert(name.clone(), HeaderValue::from_static(value));
        }
        response
    }
}

static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("assets/index.html"),
        "text/html; charset=utf-8",
    )
});
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("assets/app.js"),
        "text/javascript; charset=utf-8",
    )
});
static METRICS_SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("assets/metrics.js"),
        "text/javascript; charset=utf-8",
    )
});
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("assets/app.css"), "text/css; charset=utf-8"));

/// The page may run only its own script and style and talk only to its own origin; no
/// other site may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes, merged beside the API surfaces by the server.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/metrics.js", get(metrics_script))
        .route("/dashboard/app.css", get(style))
        .route("/dashboard/config.json", get(config))
}

async fn index(headers: HeaderMap) -> Response {
    INDEX.respond(
        &headers,
        &[
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
    )
}

async fn script(headers: HeaderMap) -> Response {
    SCRIPT.respond(&headers, &[])
}

async fn metrics_script(headers: HeaderMap) -> Response {
    METRICS_SCRIPT.respond(&headers, &[])
}

async fn style(headers: HeaderMap) -> Response {
    STYLE.respond(&headers, &[])
}

/// What the page must know before its first API call. Never cached: a node may restart
/// with tokens turned on or off.
async fn config(State(state): State<AppState>) -> Response {
    let body = serde_json::json!({
        "tokens_required": state.auth.required(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response()
}

/// A redirect to the dashboard for a browser's `GET /` (or `HEAD /`), `None` for anything
/// else: API clients asking for `/` keep getting S2's `bad_path`.
pub fn browser_redirect(request: &Request) -> Option<Response> {
    let wants_html = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    let method = request.method();
    (request.uri().path() == "/" && (method == Method::GET || method == Method::HEAD) && wants_html)
        .then(|| Redirect::to(PATH).into_response())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn get(path: &str, accept: Option<&str>) -> Request {
        let mut r = Request::get(path);
        if let Some(a) = accept {
            r = r.header(header::ACCEPT, a);
        }
        r.body(Body::empty()).unwrap()
    }

    #[test]
    fn only_a_browser_asking_for_the_root_is_redirected() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let r = browser_redirect(&get("/", Some(browser))).expect("a redirect");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], PATH);
        assert!(browser_redirect(&get("/", Some("application/json"))).is_none());
        assert!(browser_redirect(&get("/", None)).is_none());
        assert!(browser_redirect(&get("/v1", Some(browser))).is_none());
        let post = Request::post("/")
            .header(header::ACCEPT, browser)
            .body(Body::empty())
            .unwrap();
        assert!(browser_redirect(&post).is_none());
    }

    #[test]
    fn an_asset_answers_304_to_its_own_etag_only() {
        let etag = SCRIPT.etag.to_str().unwrap().to_owned();
        let mut h = HeaderMap::new();
        assert_eq!(SCRIPT.respond(&h, &[]).status(), StatusCode::OK);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(SCRIPT.respond(&h, &[]).status(), StatusCode::OK);
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::try_from(format!("\"other\", {etag}")).unwrap(),
        );
        let r = SCRIPT.respond(&h, &[]);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], etag.as_str());
        let strong = etag.trim_start_matches("W/");
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::try_from(strong).unwrap(),
        );
        assert_eq!(SCRIPT.respond(&h, &[]).status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn the_page_links_the_assets_it_is_served_with() {
        let page = std::str::from_utf8(INDEX.body).unwrap();
        assert!(page.contains("src=\"/dashboard/app.js\""));
        assert!(page.contains("src=\"/dashboard/metrics.js\""));
        assert!(page.contains("href=\"/dashboard/app.css\""));
    }
}
