//! The auditor's page: `GET /ui` and its few static files (`ui/` at the
//! top of the repository), compiled into the binary so that there is
//! nothing to install or build besides it.
//!
//! The page holds no data: it calls the public ledger routes (and, with a
//! token its user pastes, the protected ones) from the browser, and
//! verifies receipts there. Every answer under `/ui` carries a strict
//! Content-Security-Policy — scripts, styles and connections from this
//! origin only, no inline script or style, no framing — so that a ledger
//! string shown on the page can never run as code, even if it were ever
//! taken for markup. Files are revalidated by an `ETag` that is their
//! SHA-256 (`Cache-Control: no-cache`): a new binary serves new files at
//! once, an unchanged one answers `304`.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use serde_json::json;

/// The policy of every `/ui` answer: nothing but this origin's own files,
/// no inline code, no plugins, no framing, no forms, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/ui/`, media type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page's files. `index.html` is also served at `/ui` itself.
const ASSETS: [Asset; 6] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../ui/app.js"),
    },
    Asset {
        name: "verify.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../ui/verify.js"),
    },
    Asset {
        name: "json.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../ui/json.js"),
    },
    Asset {
        name: "draw.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../ui/draw.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../ui/style.css"),
    },
];

/// Each file's entity tag: the base64 SHA-256 of its bytes, quoted.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body.as_bytes());
            format!(
                "\"{}\"",
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
            )
        })
        .collect()
});

/// The security headers every `/ui` answer carries, an error's included.
fn secured(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    builder
}

/// Serves asset `i`, or `304` when the client holds this version.
fn serve(req: &HttpRequest, i: usize) -> HttpResponse {
    let (Some(asset), Some(etag)) = (ASSETS.get(i), ETAGS.get(i)) else {
        return not_found();
    };
    let held = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*");
    let builder = if held {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    let mut builder = secured(builder);
    builder
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::ETAG,
            HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ));
    if held {
        return builder.finish();
    }
    builder.content_type(asset.content_type).body(asset.body)
}

/// `404 not_found` as JSON, with the page's headers.
fn not_found() -> HttpResponse {
    secured(HttpResponse::NotFound()).json(json!({ "detail": "No such file", "code": "not_found" }))
}

#[utoipa::path(get, path = "/ui", responses((status = 200, description = "The auditor's page (HTML; no data of its own: it calls the ledger routes from the browser and verifies receipts there)", body = String, content_type = "text/html"), (status = 304, description = "Not modified (If-None-Match)")))]
pub(super) async fn page(req: HttpRequest) -> HttpResponse {
    serve(&req, 0)
}

#[utoipa::path(get, path = "/ui/{asset}", params(("asset" = String, Path, description = "One of the page's files: index.html, app.js, verify.js, json.js, draw.js, style.css")), responses((status = 200, description = "The file: a JavaScript module, the stylesheet or the HTML page", content((String = "text/javascript"), (String = "text/css"), (String = "text/html"))), (status = 304, description = "Not modified (If-None-Match)"), (status = 404, description = "No such file", body = super::openapi::ErrorBody)))]
pub(super) async fn asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().position(|a| a.name == name.as_str()) {
        Some(i) => serve(&req, i),
        None => not_found(),
    }
}

/// The security headers on a `/ui` answer made elsewhere (a `405`).
pub(super) fn secure_headers() -> [(header::HeaderName, &'static str); 4] {
    [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ]
}
