//! The OpenAPI 3 document served at `GET /openapi.json`, generated with
//! utoipa from the route annotations in [`super::routes`] and the schema
//! types below. The schema types describe the wire shapes only; the
//! handlers build the same shapes (tests/openapi.rs checks that real
//! responses match).

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Body of `POST /execute`.
#[derive(Serialize, ToSchema)]
pub struct ExecuteBody {
    /// Action name, `[A-Za-z0-9_.-]{1,64}`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub action: String,
    /// Payload object; or a string holding a JSON object (OpenAI
    /// `function.arguments`); or null/absent for `{}`.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    /// 1–128 printable ASCII characters, no space; scoped per tenant.
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub nonce: String,
    /// A ClawShield v1 or OpenExec v2 approval (see docs/FORMATS.md).
    #[schema(value_type = Option<Object>)]
    pub approval_artifact: Option<serde_json::Value>,
}

/// An inclusion proof.
#[derive(Serialize, ToSchema)]
pub struct InclusionProofDoc {
    /// Tree size the proof leads to.
    pub tree_size: u64,
    /// Base64 hashes, leaf side first.
    pub hashes: Vec<String>,
}

/// A receipt (docs/FORMATS.md, "Receipt").
#[derive(Serialize, ToSchema)]
pub struct ReceiptDoc {
    /// `openexec-receipt/v1`.
    pub format: String,
    /// The entry's canonical JSON text.
    pub entry: String,
    /// Base64 Ed25519 signature of the log over the entry.
    pub entry_signature: String,
    /// Leaf index.
    pub leaf_index: u64,
    /// Inclusion proof.
    pub inclusion_proof: InclusionProofDoc,
    /// Signed C2SP checkpoint note.
    pub checkpoint: String,
    /// Salts opening the commitments (absent if content is not kept).
    #[schema(value_type = Option<Object>)]
    pub salts: Option<serde_json::Value>,
}

/// Response of `POST /execute`, success or recorded failure/rejection.
#[derive(Serialize, ToSchema)]
pub struct ExecuteResponse {
    /// Execution id (= `exec_id`; for a replay, the original's).
    pub id: String,
    /// Same as `id`.
    pub exec_id: String,
    /// Action.
    pub action: String,
    /// `executed`, `failed`, `rejected` or `replayed`.
    pub outcome: String,
    /// Whether this answer is a replay of a recorded attempt.
    pub replayed: bool,
    /// True when the action ran (now or originally) and succeeded.
    pub approved: bool,
    /// Handler result, when there is one.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// The original service's receipt hash over id and result.
    pub receipt_hash: Option<String>,
    /// Receipt of this attempt's ledger entry.
    pub receipt: ReceiptDoc,
    /// For a replay: the original outcome.
    pub original_outcome: Option<String>,
    /// For a replay of an attempt whose content an operator erased
    /// (redaction): `"erased"`, and no `result` or `receipt_hash`.
    pub content: Option<String>,
    /// With `content`: the redaction that erased it.
    pub redaction: Option<RedactionDoc>,
    /// Error text, on failure or rejection.
    pub detail: Option<String>,
    /// Machine code, on failure or rejection.
    pub code: Option<String>,
}

/// The redaction named by a replay whose original content was erased.
#[derive(Serialize, ToSchema)]
pub struct RedactionDoc {
    /// Index of the `redacted` entry that records the redaction.
    pub index: u64,
    /// Its reason code: `personal_data`, `leaked_secret`, `legal` or `other`.
    pub reason: String,
}

/// Error shape of every refusal.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable reason.
    pub detail: String,
    /// Machine code.
    pub code: String,
}

/// `GET /`.
#[derive(Serialize, ToSchema)]
pub struct RootResponse {
    /// "OpenExec".
    pub service: String,
    /// "running".
    pub status: String,
    /// Version.
    pub version: String,
}

/// Ledger summary inside `/health`.
#[derive(Serialize, ToSchema)]
pub struct LedgerSummary {
    /// Entries.
    pub size: u64,
    /// Base64 root hash.
    pub root: String,
    /// Log origin.
    pub origin: String,
}

/// `GET /health`.
#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// "healthy".
    pub status: String,
    /// "demo" or "clawshield".
    pub exec_mode: String,
    /// "enabled" or "disabled".
    pub signature_verification: String,
    /// "restricted" or "open".
    pub restriction: String,
    /// The allow-list, when set.
    pub allow_list: Option<Vec<String>>,
    /// Present when no allow-list is set.
    pub warning: Option<String>,
    /// Ledger size and root.
    pub ledger: LedgerSummary,
    /// Latest signed checkpoint.
    pub checkpoint: String,
}

/// `POST /ledger/cosignatures`: what the log accepted.
#[derive(Serialize, ToSchema)]
pub struct CosignaturesResponse {
    /// Size of the cosigned checkpoint.
    pub tree_size: u64,
    /// Key names of the witnesses whose cosignatures this request added.
    pub witnesses: Vec<String>,
    /// Cosignatures now stored for that checkpoint.
    pub cosignatures: usize,
}

/// `GET /ready`.
#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    /// True when the store is readable.
    pub ready: bool,
}

/// `GET /version`.
#[derive(Serialize, ToSchema)]
pub struct VersionResponse {
    /// Version.
    pub version: String,
    /// RFC 3339 UTC time.
    pub timestamp: String,
}

/// `GET /handlers`: the sealed registry.
#[derive(Serialize, ToSchema)]
pub struct HandlersResponse {
    /// Base64 SHA-256 of the RFC 8785 bytes of the other fields: what
    /// every ledger entry records as `registry`.
    pub fingerprint: String,
    /// The OpenExec library the binary was built with.
    pub openexec_version: String,
    /// The binary: `{name, version}`.
    #[schema(value_type = Object)]
    pub binary: serde_json::Value,
    /// The actions by name: `{name, title, description, version, effects,
    /// destructive, deadline_ms, input_schema, output_schema}`, the schemas JSON Schema
    /// draft 2020-12.
    #[schema(value_type = Vec<Object>)]
    pub handlers: Vec<serde_json::Value>,
}

/// Body of `POST /receipts/verify`.
#[derive(Serialize, ToSchema)]
pub struct VerifyBody {
    /// For the original triple.
    pub exec_id: Option<String>,
    /// For the original triple: the Python `json.dumps(result, sort_keys=True)` text (or the object).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// The original 64-hex receipt hash, or a full receipt object.
    #[schema(value_type = Object)]
    pub receipt: serde_json::Value,
}

/// Response of `POST /receipts/verify`.
#[derive(Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether the receipt is valid and names an entry of this ledger.
    pub valid: bool,
    /// Why not, when invalid.
    pub detail: Option<String>,
}

/// One ledger entry.
#[derive(Serialize, ToSchema)]
pub struct EntryResponse {
    /// Index.
    pub index: u64,
    /// Canonical entry text.
    pub entry: String,
    /// Base64 entry signature.
    pub entry_signature: String,
}

/// A page of entries.
#[derive(Serialize, ToSchema)]
pub struct EntriesResponse {
    /// Entries `[start, end)`.
    pub entries: Vec<EntryResponse>,
}

/// An inclusion proof response.
#[derive(Serialize, ToSchema)]
pub struct InclusionResponse {
    /// Leaf index.
    pub index: u64,
    /// Tree size.
    pub tree_size: u64,
    /// Base64 hashes.
    pub hashes: Vec<String>,
}

/// A consistency proof response.
#[derive(Serialize, ToSchema)]
pub struct ConsistencyResponse {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
    /// Base64 hashes.
    pub hashes: Vec<String>,
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenExec",
        description = "Execution boundary for AI agents with a verifiable receipt ledger."
    ),
    paths(
        super::routes::root,
        super::routes::health,
        super::routes::ready,
        super::routes::version,
        super::routes::handlers,
        super::routes::metrics,
        super::routes::execute,
        super::routes::mcp,
        super::routes::verify,
        super::routes::receipt,
        super::routes::checkpoint,
        super::routes::cosignatures,
        super::routes::key,
        super::routes::entries,
        super::routes::entry,
        super::routes::inclusion,
        super::routes::consistency,
        super::routes::openapi,
        super::ui::page,
        super::ui::asset,
        super::tiles::checkpoint,
        super::tiles::entry_bundle,
        super::tiles::hash_tile
    ),
    components(schemas(
        ExecuteBody,
        ExecuteResponse,
        RedactionDoc,
        ErrorBody,
        ReceiptDoc,
        InclusionProofDoc,
        RootResponse,
        HealthResponse,
        LedgerSummary,
        ReadyResponse,
        VersionResponse,
        HandlersResponse,
        VerifyBody,
        VerifyResponse,
        EntryResponse,
        EntriesResponse,
        InclusionResponse,
        ConsistencyResponse,
        CosignaturesResponse
    )),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme that the protected operations
/// name: `Authorization: Bearer oex1_...`, required only when principals
/// are configured (docs/API.md, "Who may call what").
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("oex1_<principal id>_<secret>")
                    .description(Some(
                        "A token from `openexec token create`; required by the operations that \
                         name this scheme once principals are configured",
                    ))
                    .build(),
            ),
        );
    }
}
