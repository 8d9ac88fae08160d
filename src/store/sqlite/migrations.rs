//! The schema's migrations, compiled in so the binary needs no files beside it.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "hub", include_str!("../../../migrations/sqlite/0001_hub.sql")),
    (
        2,
        "connection log retention",
        include_str!("../../../migrations/sqlite/0002_connection_log_retention.sql"),
    ),
];

#[derive(Debug)]
pub(super) struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
