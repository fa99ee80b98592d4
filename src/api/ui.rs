//! The dashboard and template editor: the static files of `ui/dist` (built from `ui/` by
//! `npm run build`), embedded in the binary by rust-embed (debug builds too: the binary alone
//! serves the UI) and served under `/ui/`. Unknown paths under `/ui/` answer `index.html`, so the
//! single-page app's links can be reloaded. Files are public (the app signs in through the API);
//! hashed assets are cached for a year, `index.html` never.
//!
//! The app sends `X-Mutask-Client: ui` with its API calls: a 401 answered to such a request
//! carries no `WWW-Authenticate: Basic`, so the browser shows the app's sign-in form instead of
//! its own dialog.

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/dist"]
#[allow_missing = true]
struct Assets;

/// Header the app sends with every API call.
pub const CLIENT_HEADER: &str = "x-mutask-client";

fn serve(path: &str) -> Response {
    let path = path.trim_start_matches('/');
    let (file, name) = match Assets::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (f, path),
        None => match Assets::get("index.html") {
            // a client-side route: the app decides (unless it asks for a missing file)
            Some(f) if !path.starts_with("assets/") => (f, "index.html"),
            _ => {
                let msg = if Assets::get("index.html").is_none() {
                    "the UI is not built into this binary: run `npm ci && npm run build` in ui/ \
                     and rebuild mutask"
                } else {
                    "no such file"
                };
                return (
                    StatusCode::NOT_FOUND,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    msg,
                )
                    .into_response();
            }
        },
    };
    let mime = file.metadata.mimetype().to_string();
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, cache.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

/// The dashboard (redirects to `/ui/`).
#[utoipa::path(
    get,
    path = "/ui",
    tag = "ui",
    operation_id = "ui_redirect",
    responses((status = 308, description = "To `/ui/`.", headers(("location" = String, description = "`/ui/`")))),
)]
pub async fn redirect() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, "/ui/")]).into_response()
}

/// The dashboard and template editor (a single-page app signing in through the API).
#[utoipa::path(
    get,
    path = "/ui/",
    tag = "ui",
    operation_id = "ui_index",
    responses(
        (status = 200, description = "The app's page.", content_type = "text/html", body = String),
        (status = 404, description = "The UI is not built into this binary.", content_type = "text/plain", body = String),
    ),
)]
pub async fn index() -> Response {
    serve("index.html")
}

/// A file of the app (`assets/…`, cached for a year), or the app's page for its own routes.
#[utoipa::path(
    get,
    path = "/ui/{path}",
    tag = "ui",
    operation_id = "ui_file",
    params(("path" = String, Path, description = "A file of the app (`assets/index-….js`) or one of its routes.")),
    responses(
        (status = 200, description = "The file, or the app's page.", content_type = "application/octet-stream", body = String),
        (status = 404, description = "No such asset.", content_type = "text/plain", body = String),
    ),
)]
pub async fn file(Path(path): Path<String>) -> Response {
    serve(&path)
}

/// Drops `WWW-Authenticate` from 401s answered to the app (see the module documentation).
pub async fn no_browser_dialog(req: Request, next: Next) -> Response {
    let from_ui = req.headers().get(CLIENT_HEADER) == Some(&HeaderValue::from_static("ui"));
    let mut res = next.run(req).await;
    if from_ui && res.status() == StatusCode::UNAUTHORIZED {
        res.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    res
}
