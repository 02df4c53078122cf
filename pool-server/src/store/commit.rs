//! How batches become rows: one transaction, the same steps in either database. Which batch
//! ids are new is asked first (a batch stored before adds nothing, so a replay never counts a
//! share twice); the shares of exactly those batches go in through the database's own bulk
//! path ([`super::postgres::insert_shares`], [`super::sqlite::insert_shares`]), then blocks
//! by upsert, the same SQL text in both.

use std::collections::HashSet;

use uuid::Uuid;

use super::{Backend, Batch, Dialect, ShareRecord};

/// A block found again (another session, a replayed spool) keeps its first finder and takes
/// the newest status.
const UPSERT_BLOCK: &str = "INSERT INTO blocks (hash, height, prev_hash, chain, worker,
         network_difficulty, status, detail, raw, found_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (hash) DO UPDATE SET status = excluded.status, detail = excluded.detail,
         worker = coalesce(blocks.worker, excluded.worker)";

const INSERT_PLAN: &str = "INSERT INTO block_plans (block_hash, plan, created_at)
     VALUES ($1, $2, $3) ON CONFLICT (block_hash) DO NOTHING";

/// The shares to store: those of the batches `fresh` names, each batch once (`remove`: a batch
/// id twice in one write, an old spool's duplicate line, counts once).
fn fresh_shares(batches: &[Batch], mut fresh: HashSet<Uuid>) -> Vec<&ShareRecord> {
    batches
        .iter()
        .filter(|b| fresh.remove(&b.id))
        .flat_map(Batch::shares)
        .collect()
}

/// Store `batches` in one transaction; with `commit` false it is rolled back (a probe).
pub(super) async fn write(
    backend: &Backend,
    batches: &[Batch],
    commit: bool,
) -> anyhow::Result<()> {
    crate::with_pool!(backend, p, db => {
        let mut tx = p.begin().await?;
        let fresh = db::new_batches(&mut tx, batches).await?;
        let shares = fresh_shares(batches, fresh);
        if !shares.is_empty() {
            db::insert_shares(&mut tx, &shares).await?;
        }
        for b in batches.iter().flat_map(Batch::blocks) {
            sqlx::query(&p.sql(UPSERT_BLOCK))
                .bind(&b.hash)
                .bind(b.height)
                .bind(&b.prev_hash)
                .bind(&b.chain)
                .bind(&b.worker)
                .bind(b.network_difficulty)
                .bind(&b.status)
                .bind(&b.detail)
                .bind(&b.raw)
                .bind(b.found_at)
                .execute(&mut *tx)
                .await?;
            if let Some(plan) = &b.coinbase_plan {
                sqlx::query(&p.sql(INSERT_PLAN))
                    .bind(&b.hash)
                    .bind(plan)
                    .bind(b.found_at)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if commit {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
    });
    Ok(())
}
