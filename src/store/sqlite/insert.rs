//! The telemetry INSERTs: multi-row statements in a few fixed sizes, so each
//! pooled connection caches a handful of compiled statements whatever the batch.

use std::sync::OnceLock;

/// Rows per INSERT statement: six parameters each, well under SQLite's 32,766. A
/// power of two: see [`insert_sql`].
pub(super) const ROWS_PER_INSERT: usize = 128;

/// The INSERT for `rows` rows, `rows` a power of two up to [`ROWS_PER_INSERT`].
///
/// A batch goes in as chunks of those sizes only (100 rows: 64 + 32 + 4), so each
/// pooled connection caches at most eight compiled INSERTs. One statement per batch
/// size meant up to a hundred cached per connection (sqlx's statement cache), each
/// compiled for up to 127 rows: the server's memory grew with every new batch size a
/// busy store saw (benches/churn.rs).
pub(super) fn insert_sql(rows: usize) -> &'static str {
    const SIZES: usize = ROWS_PER_INSERT.trailing_zeros() as usize + 1;
    static SQL: OnceLock<[String; SIZES]> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        std::array::from_fn(|power| {
            let mut sql = String::from("INSERT INTO telemetry (id, device_id, key, ts, num, value) VALUES ");
            for i in 0..1usize << power {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?,?,?,?,?,?)");
            }
            sql
        })
    });
    debug_assert!(rows.is_power_of_two() && rows <= ROWS_PER_INSERT);
    &all[rows.trailing_zeros() as usize]
}

/// Splits `rows` into chunks whose lengths [`insert_sql`] has a statement for:
/// full chunks first, then the rest by falling powers of two.
pub(super) fn insert_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        // The largest power of two not above what is left, capped at a full chunk.
        let len = ROWS_PER_INSERT.min(1 << rows.len().ilog2());
        let (chunk, rest) = rows.split_at(len);
        rows = rest;
        Some(chunk)
    })
}
