//! Node leases, kept on the database's clock (never the nodes'): each node
//! renews its row every [`RENEW_EVERY`] to `now() + LEASE`, and in every
//! batch it commits. A reservation whose node's lease has run out is
//! recorded `interrupted` by a survivor (see [`super::PgLog`]). A node whose
//! writer has stopped stops renewing, so that its reservations are
//! resolved by the others; a node the database has not answered for
//! [`READY_WITHIN`] reports itself not ready. A renewal gets
//! [`super::ROUND_TRIP`]; one that times out gives its connection up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use super::{reads, PgError, Shared};

/// How often the lease is renewed (and the cached head refreshed).
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(1);

/// How long a lease lasts past its renewal, as SQL (database time).
pub(super) const LEASE_SQL: &str = "now() + interval '10 seconds'";

/// The longest a node stays ready without an answer from the database:
/// well inside the lease, so that a node cut off stops being offered
/// work before its reservations may be taken over.
pub(crate) const READY_WITHIN: Duration = Duration::from_secs(4);

/// Registers this node with a fresh lease.
pub(super) async fn join(client: &Client, node: &str) -> Result<(), PgError> {
    client
        .execute(
            &format!(
                "INSERT INTO openexec_nodes (node_id, lease_until) VALUES ($1, {LEASE_SQL}) \
                 ON CONFLICT (node_id) DO UPDATE SET lease_until = {LEASE_SQL}"
            ),
            &[&node],
        )
        .await?;
    Ok(())
}

/// Renews the lease and refreshes the cached head, forever.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    loop {
        ticks.tick().await;
        if shared.stats.writer_failed.load(Ordering::Relaxed) {
            // Let the lease run out: the survivors take over.
            continue;
        }
        match super::within(super::ROUND_TRIP, renew(&shared)).await {
            Ok(()) => shared.touched(),
            Err(e) => {
                tracing::warn!(error = %e, "renewing this node's lease failed");
                // A connection that did not answer is not used again.
                shared.forget_reader().await;
            }
        }
    }
}

async fn renew(shared: &Shared) -> Result<(), PgError> {
    let client = shared.reader().await?;
    join(&client, &shared.node).await?;
    shared.see(reads::head(&client).await?);
    Ok(())
}
