//! Verifying the audit chain (`certhall audit verify`).

use certhall_domain::audit::{ChainBreak, ChainVerifier};
use certhall_store::audit;

use crate::{Result, Services};

/// Rows read per query while verifying.
const BATCH: u32 = 1000;

impl Services {
    /// Walks the whole chain; `Ok(Ok(rows))` when intact,
    /// `Ok(Err(break))` naming the first broken row.
    pub async fn verify_audit_chain(&self) -> Result<Result<u64, ChainBreak>> {
        let mut verifier = ChainVerifier::new();
        let mut after = 0;
        loop {
            let rows = audit::page(&self.store, after, BATCH).await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for row in &rows {
                if let Err(b) = verifier.push(row) {
                    return Ok(Err(b));
                }
            }
        }
        Ok(Ok(verifier.count()))
    }
}
