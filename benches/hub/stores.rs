//! The stores the hub runs on in the bench (a fresh SQLite file, or a fresh
//! PostgreSQL database) and the raw stores its ingest is measured against, on
//! the same schema (made by the store's own migrations) and the same points (100
//! devices × 100 points a transaction, eight keys), with no server, socket,
//! parsing or acks: batched multi-row INSERTs into SQLite, and client-side `COPY`
//! into PostgreSQL.

use std::time::{Duration, Instant};

use sqlx::Connection;

/// Points a transaction: what 100 devices sending 100 points each bring.
const POINTS_PER_COMMIT: usize = 10_000;
/// Rows a SQLite INSERT: six parameters each, under its limit of 32,766.
const ROWS_PER_INSERT: usize = 128;

/// Points per second into SQLite at `url`, for `secs`; `indexed: false` drops the
/// series index first (history needs it; without it SQLite takes ~3 × as many).
pub async fn raw_sqlite(url: &str, secs: u64, indexed: bool) -> f64 {
    drop(gattway::store::open(url).await.expect("schema"));
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("SQLite");
    if !indexed {
        sqlx::raw_sql("DROP INDEX telemetry_series")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // As the hub runs it, but with SQLite's own checkpoints (every 1,000 pages, in
    // the committing connection): what an application that writes in batches gets.
    // With none at all it is slower still: the WAL's index grows without bound.
    sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut sql = String::from("INSERT INTO telemetry (id, device_id, key, ts, num, value) VALUES ");
    sql.push_str(&vec!["(?,?,?,?,?,NULL)"; ROWS_PER_INSERT].join(","));
    let (start, mut id) = (Instant::now(), 1i64);
    while start.elapsed() < Duration::from_secs(secs) {
        let mut tx = conn.begin().await.unwrap();
        for _ in 0..POINTS_PER_COMMIT / ROWS_PER_INSERT {
            let mut query = sqlx::query(&sql);
            for _ in 0..ROWS_PER_INSERT {
                let (device, key) = names(id);
                query = query.bind(id).bind(device).bind(key).bind(id).bind(id as f64);
                id += 1;
            }
            query.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    (id - 1) as f64 / start.elapsed().as_secs_f64()
}

/// Points per second into PostgreSQL at `url` with `COPY … FROM STDIN`, one
/// transaction per copy, for `secs`.
pub async fn raw_postgres(url: &str, secs: u64) -> f64 {
    drop(gattway::store::open(url).await.expect("schema"));
    let mut conn = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
    let (start, mut id) = (Instant::now(), 1i64);
    let mut rows = String::new();
    while start.elapsed() < Duration::from_secs(secs) {
        rows.clear();
        for _ in 0..POINTS_PER_COMMIT {
            let (device, key) = names(id);
            rows.push_str(&format!("{id}\t{device}\t{key}\t{id}\t{id}\t\\N\n"));
            id += 1;
        }
        let mut copy = conn
            .copy_in_raw("COPY telemetry (id, device_id, key, ts, num, value) FROM STDIN")
            .await
            .unwrap();
        copy.send(rows.as_bytes()).await.unwrap();
        copy.finish().await.unwrap();
    }
    (id - 1) as f64 / start.elapsed().as_secs_f64()
}

/// The device and key of point `id`: 100 devices, eight keys.
fn names(id: i64) -> (String, String) {
    (format!("bench-{}", (id / 100) % 100), format!("k{}", id % 8))
}

/// Which store the hub (and its raw peer) runs on.
#[derive(Clone)]
pub enum Store {
    Sqlite,
    /// The admin URL fresh databases are made on.
    Postgres(String),
}

impl Store {
    /// Points a second the raw store takes, for `secs`, on a fresh database.
    pub async fn raw_ingest(&self, secs: u64, indexed: bool) -> f64 {
        let url = self.fresh("raw");
        let raw = match self {
            Store::Sqlite => raw_sqlite(&url, secs, indexed).await,
            Store::Postgres(_) => raw_postgres(&url, secs).await,
        };
        self.remove(&url);
        raw
    }

    pub fn name(&self) -> &'static str {
        match self {
            Store::Sqlite => "SQLite",
            Store::Postgres(_) => "PostgreSQL",
        }
    }

    pub fn from_env() -> Store {
        match std::env::var("GATTWAY_BENCH_STORE").as_deref() {
            Ok("postgres") => Store::Postgres(
                std::env::var("GATTWAY_BENCH_POSTGRES")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            ),
            Ok("sqlite") | Err(_) => Store::Sqlite,
            Ok(other) => panic!("GATTWAY_BENCH_STORE={other}: sqlite or postgres"),
        }
    }

    pub fn peer_name(&self) -> &'static str {
        match self {
            Store::Sqlite => "batched SQLite INSERTs",
            Store::Postgres(_) => "PostgreSQL COPY",
        }
    }

    /// A new empty database's URL, named for `purpose`.
    pub fn fresh(&self, purpose: &str) -> String {
        let name = format!(
            "gattway_bench_{purpose}_{}_{}",
            std::process::id(),
            fastrand::u32(..)
        );
        match self {
            Store::Sqlite => format!(
                "sqlite://{}",
                std::env::temp_dir().join(format!("{name}.db")).display()
            ),
            Store::Postgres(admin) => {
                admin_sql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                admin_sql(admin, &format!("CREATE DATABASE {name}"));
                let server = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(server, _)| server);
                format!("{server}/{name}")
            }
        }
    }

    pub fn remove(&self, url: &str) {
        match self {
            Store::Sqlite => {
                let path = url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
            Store::Postgres(admin) => {
                let name = url.rsplit('/').next().unwrap_or_default();
                admin_sql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// One statement on the admin database, from a thread of its own (the bench's
/// runtime is busy with the load).
fn admin_sql(admin: &str, sql: &str) {
    let (admin, sql) = (admin.to_string(), sql.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL admin");
                sqlx::raw_sql(&sql)
                    .execute(&mut conn)
                    .await
                    .expect("admin statement");
            })
    })
    .join()
    .unwrap();
}
