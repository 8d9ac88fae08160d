//! The cluster's store: PostgreSQL, which several gattway instances can share.
//! Migrated at open (sqlx's migrator holds an advisory lock, so instances starting
//! together migrate once). Every query but the telemetry append is shared with
//! SQLite ([`super::sql`]).
//!
//! An append is one transaction that locks the `telemetry_head` row first: appends
//! from every instance take turns on it, so point ids are consecutive and in commit
//! order across the cluster, and the seq de-duplication reads a device's `last_seq`
//! where no other instance can store between the read and the write. Rows go in
//! as one `INSERT … SELECT FROM UNNEST` of column arrays: one statement, one plan,
//! whatever the batch's size.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres};

use super::sql::append::{devices_with_seq, plan, Plan};
use super::sql::migrations::Embedded;
use super::sql::rows::encode_value;
use super::sql::SqlBackend;
use super::{Appended, DeviceBatch, StoreResult};

const MIGRATIONS: Embedded = Embedded(&[(
    1,
    "hub",
    include_str!("../../../migrations/postgres/0001_hub.sql"),
)]);

/// Connections per instance: the telemetry writer holds one, the rest serve
/// history, commands and the connection log.
const POOL_SIZE: u32 = 8;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` and migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("gattway");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            // A database that is down fails a request in seconds, with its reason,
            // rather than holding it for sqlx's default 30 s.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Migrator::new(MIGRATIONS).await?.run(&pool).await?;
        Ok(PgStore { pool })
    }
}

#[async_trait]
impl SqlBackend for PgStore {
    type Db = Postgres;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn append(&self, batches: &[DeviceBatch]) -> StoreResult<Appended> {
        let mut tx = self.pool.begin().await?;
        // The turn: held until commit (see the module's doc).
        let first: i64 = sqlx::query_scalar("SELECT next_id FROM telemetry_head FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
        let with_seq = devices_with_seq(batches);
        let mut last = HashMap::new();
        if !with_seq.is_empty() {
            let stored: Vec<(String, i64)> =
                sqlx::query_as("SELECT id, last_seq FROM devices WHERE id = ANY($1)")
                    .bind(&with_seq)
                    .fetch_all(&mut *tx)
                    .await?;
            let stored: HashMap<String, i64> = stored.into_iter().collect();
            for device in with_seq {
                last.insert(device, stored.get(device).copied().unwrap_or(0));
            }
        }
        let Plan {
            stored,
            rows,
            devices,
        } = plan(batches, last);
        if !rows.is_empty() {
            let n = rows.len();
            let (mut ids, mut device_ids, mut keys, mut ts, mut nums, mut values) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for (i, (device, p)) in rows.iter().enumerate() {
                let (num, text) = encode_value(&p.value);
                ids.push(first + i as i64);
                device_ids.push(*device);
                keys.push(p.key.as_str());
                ts.push(p.ts);
                nums.push(num);
                values.push(text);
            }
            sqlx::query(
                "INSERT INTO telemetry (id, device_id, key, ts, num, value) \
                 SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::float8[], $6::text[])",
            )
            .bind(&ids)
            .bind(&device_ids)
            .bind(&keys)
            .bind(&ts)
            .bind(&nums)
            .bind(&values)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE telemetry_head SET next_id = $1")
                .bind(first + n as i64)
                .execute(&mut *tx)
                .await?;
        }
        if !devices.is_empty() {
            let (ids, seqs): (Vec<&str>, Vec<i64>) = devices.into_iter().unzip();
            // In id order (the plan's), so two transactions never lock the same
            // device rows in opposite orders.
            sqlx::query(
                "INSERT INTO devices (id, kind, last_seq, online, first_seen, last_seen) \
                 SELECT d, 'network', s, TRUE, $3, $3 FROM UNNEST($1::text[], $2::int8[]) AS u(d, s) \
                 ON CONFLICT (id) DO UPDATE SET last_seq = GREATEST(devices.last_seq, excluded.last_seq), \
                 last_seen = excluded.last_seen",
            )
            .bind(&ids)
            .bind(&seqs)
            .bind(super::now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Appended {
            first_id: first,
            stored,
        })
    }

    async fn last_id(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT next_id - 1 FROM telemetry_head")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Each process takes a block of 2^32 ids of its own from a sequence: instances
    /// sharing the database never collide, with no round trip per connection.
    async fn first_connection_id(&self) -> StoreResult<i64> {
        let block: i64 = sqlx::query_scalar("SELECT nextval('connection_id_blocks')")
            .fetch_one(&self.pool)
            .await?;
        Ok(block << 32)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}
