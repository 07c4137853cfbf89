//! The log as C2SP `tlog-tiles` (read-only): `GET /checkpoint`, hash tiles
//! `GET /tile/<L>/<N>[.p/<W>]` and entry bundles
//! `GET /tile/entries/<N>[.p/<W>]` (docs/API.md, docs/FORMATS.md).
//!
//! A hash tile is read from the stored hashes the log keeps for its proofs
//! (Go `sumdb/tlog` layout holds every level, so level `L`'s hashes are the
//! stored hashes at tree level `8·L`): no second copy of the tree, at most
//! 256 stored-hash reads per tile and 256 entry reads per bundle. A tile
//! is served once the committed tree holds all its hashes; a partial one
//! `.p/W` stays available after the tree grows, so every checkpoint's
//! partial tiles can still be fetched.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{ApiError, AppState};
use crate::core::tile_path::{TileKind, TilePath};
use crate::ledger::LedgerError;

/// Full tiles and bundles never change under their URL.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The checkpoint advances and a partial tile is superseded by a wider
/// one: caches revalidate each time.
const SHORT_LIVED: &str = "no-cache";

#[utoipa::path(get, path = "/checkpoint", responses((status = 200, description = "C2SP tlog-tiles checkpoint: the same signed note as `GET /ledger/checkpoint` (published checkpoint with its stored cosignatures); `Cache-Control: no-cache`", body = String, content_type = "text/plain; charset=utf-8"), (status = 503, description = "Storage unavailable", body = super::openapi::ErrorBody)))]
pub(super) async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ledger = state.boundary.ledger().clone();
    let note = web::block(move || ledger.published_checkpoint())
        .await
        .map_err(|_| unavailable())??;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, SHORT_LIVED))
        .body(note))
}

#[utoipa::path(get, path = "/tile/{level}/{index}*", params(
    ("level" = u8, Path, description = "Tile level `L`, 0 to 63, decimal without leading zeros"),
    ("index" = String, Path, description = "Tile index `N` in three-digit elements, all but the last prefixed `x` (`x001/x234/067`), then `.p/<W>` (W 1 to 255) for a partial tile")),
    responses(
    (status = 200, description = "W (256 for a full tile) consecutive 32-byte Merkle tree hashes at tree level 8·L (`Cache-Control: public, max-age=31536000, immutable` when full, `no-cache` when partial)", body = Vec<u8>, content_type = "application/octet-stream"),
    (status = 404, description = "Not a tlog-tiles path, or a tile the committed tree does not hold (full tile past it, width past it)", body = super::openapi::ErrorBody),
    (status = 503, description = "Storage unavailable", body = super::openapi::ErrorBody)))]
pub(super) async fn hash_tile(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tile = tile_of(&req)?;
    let TileKind::Hashes { .. } = tile.kind() else {
        return Err(no_tile());
    };
    let ledger = state.boundary.ledger().clone();
    let body = web::block(move || hash_tile_bytes(&ledger, &tile))
        .await
        .map_err(|_| unavailable())??;
    Ok(tile_response(&tile, body))
}

#[utoipa::path(get, path = "/tile/entries/{index}*", params(
    ("index" = String, Path, description = "Bundle index `N` in three-digit elements (`x001/x234/067`), then `.p/<W>` (W 1 to 255) for a partial bundle")),
    responses(
    (status = 200, description = "Entries `N·256` to `N·256 + W − 1`, each its canonical bytes (the leaf data its leaf hash covers) behind a big-endian uint16 length (`Cache-Control: public, max-age=31536000, immutable` when full, `no-cache` when partial)", body = Vec<u8>, content_type = "application/octet-stream"),
    (status = 404, description = "Not a tlog-tiles path, or a bundle the committed tree does not hold", body = super::openapi::ErrorBody),
    (status = 503, description = "Storage unavailable", body = super::openapi::ErrorBody)))]
pub(super) async fn entry_bundle(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tile = tile_of(&req)?;
    if tile.kind() != TileKind::Entries {
        return Err(no_tile());
    }
    let ledger = state.boundary.ledger().clone();
    let body = web::block(move || bundle_bytes(&ledger, &tile))
        .await
        .map_err(|_| unavailable())??;
    Ok(tile_response(&tile, body))
}

/// The tile the request path names, if the spec defines it.
fn tile_of(req: &HttpRequest) -> Result<TilePath, ApiError> {
    let path = req.path().strip_prefix('/').unwrap_or_default();
    TilePath::parse(path).map_err(|_| no_tile())
}

/// The tile's hashes, concatenated.
fn hash_tile_bytes(ledger: &crate::ledger::Ledger, tile: &TilePath) -> Result<Vec<u8>, ApiError> {
    if !tile.within(ledger.head().size) {
        return Err(no_tile());
    }
    let first = tile.first_position().ok_or_else(no_tile)?;
    let hashes = ledger
        .subtree_hashes(tile.tree_level(), first, u64::from(tile.width()))
        .map_err(not_found_as_no_tile)?;
    Ok(hashes.iter().flat_map(|h| *h.as_bytes()).collect())
}

/// The bundle's entries, each behind its big-endian `u16` length.
fn bundle_bytes(ledger: &crate::ledger::Ledger, tile: &TilePath) -> Result<Vec<u8>, ApiError> {
    if !tile.within(ledger.head().size) {
        return Err(no_tile());
    }
    let first = tile.first_position().ok_or_else(no_tile)?;
    let mut body = Vec::new();
    for index in first..first + u64::from(tile.width()) {
        let (bytes, _) = ledger.entry(index).map_err(not_found_as_no_tile)?;
        let len = u16::try_from(bytes.len()).map_err(|_| {
            ApiError::new(
                500,
                "entry_too_large",
                format!("Entry {index} is longer than a bundle can frame (65535 bytes)"),
            )
        })?;
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&bytes);
    }
    Ok(body)
}

fn tile_response(tile: &TilePath, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            header::CACHE_CONTROL,
            if tile.is_full() {
                IMMUTABLE
            } else {
                SHORT_LIVED
            },
        ))
        .body(body)
}

fn no_tile() -> ApiError {
    ApiError::not_found("Tile")
}

fn not_found_as_no_tile(e: LedgerError) -> ApiError {
    match e {
        LedgerError::NotFound => no_tile(),
        other => other.into(),
    }
}

fn unavailable() -> ApiError {
    ApiError::new(503, "ledger_unavailable", "The ledger is unavailable")
}
