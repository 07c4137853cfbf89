//! `GET /ui` and its files: content types, the security headers on every
//! answer (errors included), revalidation by ETag, and a page with no
//! inline script or style. The page's behaviour in a browser is tested by
//! `scripts/ui-test` (ui/tests/).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use common::server::{self, agent, send};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn assert_secured(r: &ureq::Response, what: &str) {
    assert_eq!(r.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
}

#[test]
fn the_page_and_its_files_are_served_with_their_types_and_headers() {
    let s = server::start(&[]);
    for (path, media) in [
        ("/ui", "text/html; charset=utf-8"),
        ("/ui/index.html", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/verify.js", "text/javascript; charset=utf-8"),
        ("/ui/json.js", "text/javascript; charset=utf-8"),
        ("/ui/draw.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
    ] {
        let r = send(agent().get(&s.url(path)), None);
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.header("content-type"), Some(media), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert_secured(&r, path);
        let etag = r.header("etag").expect("an ETag").to_owned();
        assert!(etag.starts_with('"') && etag.len() == 45, "{path}: {etag}");
        let body = r.into_string().unwrap();
        assert!(!body.trim().is_empty(), "{path}");
        // The same version again: 304, no body, the headers still there.
        let again = send(agent().get(&s.url(path)).set("If-None-Match", &etag), None);
        assert_eq!(again.status(), 304, "{path}");
        assert_secured(&again, path);
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert!(again.into_string().unwrap().is_empty());
        // Another version: the file.
        let other = send(
            agent()
                .get(&s.url(path))
                .set("If-None-Match", "\"something else\""),
            None,
        );
        assert_eq!(other.status(), 200, "{path}");
    }
}

#[test]
fn anything_else_under_ui_is_a_secured_json_error() {
    let s = server::start(&[]);
    for path in [
        "/ui/nope.js",
        "/ui/INDEX.HTML",
        "/ui/app.js.map",
        "/ui/.env",
    ] {
        let r = send(agent().get(&s.url(path)), None);
        assert_eq!(r.status(), 404, "{path}");
        assert_secured(&r, path);
        let body: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
        assert_eq!(body["code"], "not_found", "{path}");
    }
    for path in ["/ui", "/ui/app.js"] {
        let r = send(agent().post(&s.url(path)), None);
        assert_eq!(r.status(), 405, "{path}");
        assert_eq!(r.header("allow"), Some("GET"));
        assert_secured(&r, path);
    }
}

#[test]
fn the_page_has_no_inline_script_or_style_and_loads_only_its_own_files() {
    let s = server::start(&[]);
    let (status, html) = s.get("/ui");
    assert_eq!(status, 200);
    let lower = html.to_ascii_lowercase();
    // Every <script> has a src on this origin, and none has a body.
    let scripts: Vec<&str> = lower.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "{html}");
    for s in &scripts {
        let tag = &s[..s.find('>').unwrap()];
        assert!(tag.contains("src=\"/ui/"), "{tag}");
        assert!(s[s.find('>').unwrap() + 1..].starts_with("</script>"));
    }
    for forbidden in [
        "<style",
        " style=",
        " onclick",
        " onload",
        " onerror",
        "javascript:",
        "http://",
        "https://",
    ] {
        assert!(!lower.contains(forbidden), "the page holds {forbidden}");
    }
    // No script writes markup from strings.
    for asset in ["app.js", "verify.js", "json.js", "draw.js"] {
        let (_, js) = s.get(&format!("/ui/{asset}"));
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!js.contains(sink), "{asset} uses {sink}");
        }
    }
}

#[test]
fn the_page_routes_are_public_and_documented() {
    let s = server::start(&[]);
    let (_, doc) = s.get_json("/openapi.json");
    for path in ["/ui", "/ui/{asset}"] {
        let get = &doc["paths"][path]["get"];
        assert!(get.is_object(), "{path} missing from the OpenAPI document");
        assert!(get.get("security").is_none(), "{path} is public");
    }
}
