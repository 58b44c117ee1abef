//! The web dashboard's files as a browser fetches them: `/dashboard` serves its page,
//! scripts and stylesheet with their content types, revalidated against an ETag; `/`
//! sends a browser there and stays S2's `bad_path` (400) for every other client. What the page
//! does in a browser is tested by `tests/browser/run.sh`.

use reqwest::{StatusCode, header};

use crate::harness::{Backend, TestServer};

crate::on_every_backend!(dashboard_serves_its_files_and_the_root_redirects_browsers,);

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn dashboard_serves_its_files_and_the_root_redirects_browsers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();

    for (path, content_type, needle) in [
        (
            "/dashboard",
            "text/html; charset=utf-8",
            "<title>Sluice dashboard</title>",
        ),
        (
            "/dashboard/",
            "text/html; charset=utf-8",
            "src=\"/dashboard/app.js\"",
        ),
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            "function route(",
        ),
        (
            "/dashboard/metrics.js",
            "text/javascript; charset=utf-8",
            "function parseProm(",
        ),
        ("/dashboard/app.css", "text/css; charset=utf-8", ".chart"),
    ] {
        let reply = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{path}");
        let h = reply.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], content_type, "{path}");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with("W/\"") && etag.len() > 10,
            "{path}: {etag}"
        );
        let body = reply.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
        if content_type.starts_with("text/html") {
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("connect-src 'self'"), "{csp}");
        }

        // Revalidation: the same ETag is a 304 without a body, any other the file.
        let again = http
            .get(server.url(path))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = http
            .get(server.url(path))
            .header(header::IF_NONE_MATCH, "\"stale\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }

    let config = http
        .get(server.url("/dashboard/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), StatusCode::OK);
    assert_eq!(config.headers()[header::CACHE_CONTROL], "no-store");
    let config: serde_json::Value = config.json().await.unwrap();
    assert_eq!(config["tokens_required"], false, "{config}");

    let root = http
        .get(server.url("/"))
        .header(header::ACCEPT, BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()[header::LOCATION], "/dashboard");

    // Everyone else keeps S2's answer for a path no route takes.
    for accept in [None, Some("application/json"), Some("*/*")] {
        let mut request = http.get(server.url("/"));
        if let Some(a) = accept {
            request = request.header(header::ACCEPT, a);
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "accept {accept:?}");
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["code"], "bad_path", "accept {accept:?}: {body}");
    }
    let post = http
        .post(server.url("/"))
        .header(header::ACCEPT, BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::BAD_REQUEST);
    let unknown = http
        .get(server.url("/dashboard/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

/// With tokens on, the page and its files need none (they hold no data), and the page
/// learns that it must ask for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_root_token_the_dashboard_is_served_and_says_tokens_are_required() {
    let server =
        TestServer::start_with(Backend::Local, |c| c.root_token = Some("root".into())).await;
    let http = client();
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/app.css"] {
        let reply = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{path}");
    }
    let config: serde_json::Value = http
        .get(server.url("/dashboard/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["tokens_required"], true, "{config}");
    let basins = http.get(server.url("/v1/basins")).send().await.unwrap();
    assert_eq!(basins.status(), StatusCode::UNAUTHORIZED);
}
