//! The WAL's checkpoints: a task of the store's own copies the log into the database,
//! so no telemetry commit pays for it.

use std::time::Duration;

use sqlx::{Row, SqlitePool};

use crate::sync::AbortOnDrop;

/// How often the WAL is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Runs checkpoints every [`CHECKPOINT_EVERY`] until the handle is dropped.
pub(super) fn spawn(pool: SqlitePool) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        loop {
            every.tick().await;
            if let Err(e) = checkpoint(&pool).await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }))
}

/// WAL pages (4 KiB) beyond which a checkpoint makes the next writer start the
/// log from the beginning: 64 MiB.
const WAL_RESTART_PAGES: i64 = 16 * 1024;

/// Copies the WAL into the database without waiting for the writer (PASSIVE).
/// Under a steady stream of commits that never lets the log start over, so once it
/// is long a RESTART checkpoint holds the writer back for the (short) rest of the
/// copy and the log is reused from its start.
async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let passive = || async {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
        Ok::<_, sqlx::Error>((row.try_get::<i64, _>(1)?, row.try_get::<i64, _>(2)?))
    };
    let (log_pages, _) = passive().await?;
    if log_pages > WAL_RESTART_PAGES {
        // More passive passes first, each copying what came during the one
        // before, so the RESTART that holds the writer has little left to copy.
        for _ in 0..3 {
            let (log, copied) = passive().await?;
            if log - copied < 256 {
                break;
            }
        }
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(pool)
            .await?;
    }
    Ok(())
}
