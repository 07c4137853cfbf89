//! Steps 3–5 of the pipeline: the attempt's tenant, the allow-lists (the
//! service's, then the principal's), the registered action, the approval
//! and the handler's payload check. Kept apart from the running and the
//! recording of an attempt because it decides, without touching the
//! ledger, whether the attempt may go on at all; a refusal here is a
//! [`Decision`] the boundary records.

use chrono::Utc;

use super::{Attempt, Boundary, Decision, Mode, Stage};
use crate::action::{Decoded, Handler};
use crate::core::approval::{self, ApprovalError, Artifact, RequestRef, VerifiedApproval};

/// What [`Boundary::authorize`] lets through.
pub(super) struct Authorized {
    pub(super) handler: Handler,
    pub(super) approval: Option<VerifiedApproval>,
    /// The payload, decoded by the handler's check.
    pub(super) payload: Decoded,
}

impl Boundary {
    /// The tenant of an attempt without a principal: the configured
    /// tenant, else (clawshield mode) the artifact's, else "".
    pub(super) fn effective_tenant(&self, artifact: Option<&Artifact>) -> String {
        // An artifact's tenant only counts where artifacts are verified.
        let from_artifact = artifact.filter(|_| self.policy.mode == Mode::Clawshield);
        self.policy
            .approvals
            .tenant
            .clone()
            .or_else(|| from_artifact.map(|a| a.tenant().to_owned()))
            .unwrap_or_default()
    }

    /// The tenant an approval must name: the principal's, else the
    /// configured one (none: a v2 approval's own tenant is in its request
    /// hash; a v1 approval is refused).
    fn pinned_tenant<'a>(&'a self, attempt: &'a Attempt) -> Option<&'a str> {
        match &attempt.principal {
            Some(_) => Some(attempt.tenant.as_str()),
            None => self.policy.approvals.tenant.as_deref(),
        }
    }

    /// Steps 3–5: allow-list, registry, approval, payload check. Returns the
    /// registered handler that step 7 runs, with the payload it decoded.
    pub(super) fn authorize(
        &self,
        attempt: &Attempt,
        artifact: Option<Result<Artifact, ApprovalError>>,
    ) -> Result<Authorized, Decision> {
        self.panic_hook.fire(Stage::Authorize);
        let action = &attempt.request.action;
        if let Some(list) = &self.policy.allow_list {
            if !list.iter().any(|a| a.as_str() == action.as_str()) {
                return Err(Decision::reject(
                    403,
                    "action_not_allowed",
                    format!("Action '{action}' is not in the execution allow-list"),
                ));
            }
        }
        if let Some(principal) = attempt.principal.as_ref() {
            if !principal.allows_action(action.as_str()) {
                return Err(Decision::reject(
                    403,
                    "action_not_allowed",
                    format!("Action '{action}' is not in this credential's allow-list"),
                ));
            }
        }
        let handler = self.registry.get(action).cloned().ok_or_else(|| {
            Decision::reject(400, "unknown_action", format!("Unknown action: {action}"))
        })?;
        let verified = match self.policy.mode {
            Mode::Demo => None,
            Mode::Clawshield => {
                let artifact = artifact
                    .ok_or(ApprovalError::Missing)
                    .and_then(|a| a)
                    .map_err(approval_rejection)?;
                let request = RequestRef {
                    action,
                    payload: &attempt.request.payload_as_sent,
                    request_hash: &attempt.request_hash,
                    tenant: self.pinned_tenant(attempt),
                };
                Some(
                    approval::verify(&artifact, request, &self.policy.approvals, Utc::now())
                        .map_err(approval_rejection)?,
                )
            }
        };
        let payload = handler
            .check(&attempt.request.payload)
            .map_err(|msg| Decision::reject(400, "invalid_payload", msg))?;
        Ok(Authorized {
            handler,
            approval: verified,
            payload,
        })
    }
}

fn approval_rejection(e: ApprovalError) -> Decision {
    let status = if matches!(e, ApprovalError::Malformed(_)) {
        422
    } else {
        403
    };
    Decision::reject(status, e.code(), e.to_string())
}
