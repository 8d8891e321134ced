//! The database: connecting (SQLite or PostgreSQL through sea-orm), migrations, the entities, and the
//! ledger that writes conversations and their messages.

pub mod entities;
pub mod ledger;

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::config::{DatabaseKind, DatabaseSettings};

/// Opens a connection pool. The embedded SQLite file and its folder are created when missing.
pub async fn connect(settings: &DatabaseSettings, log_statements: bool) -> anyhow::Result<DatabaseConnection> {
    if settings.is_embedded()
        && let Some(dir) = settings.sqlite_path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the database folder {}", dir.display()))?;
    }
    let kind = settings.kind().context("database.url: unsupported scheme (use postgres:// or sqlite:)")?;
    let mut options = ConnectOptions::new(settings.connection_url());
    options
        .max_connections(settings.max_connections)
        .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .sqlx_logging(log_statements);
    if kind == DatabaseKind::Sqlite {
        // WAL lets readers run beside the one writer; the busy timeout makes a second writer wait for
        // the lock instead of failing with SQLITE_BUSY; foreign keys are off in SQLite unless asked for.
        options.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    }
    Database::connect(options).await.with_context(|| format!("connecting to the database at {}", settings.describe()))
}

/// Applies every pending migration.
pub async fn migrate_up(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("applying migrations")
}

/// Rolls back `steps` migrations, or all of them when `None`.
pub async fn migrate_down(db: &DatabaseConnection, steps: Option<u32>) -> anyhow::Result<()> {
    match steps {
        Some(n) => Migrator::down(db, Some(n)).await,
        None => Migrator::reset(db).await,
    }
    .context("rolling back migrations")
}

/// Each known migration and whether it is applied, oldest first.
pub async fn migration_status(db: &DatabaseConnection) -> anyhow::Result<Vec<(String, bool)>> {
    let applied: Vec<String> = Migrator::get_applied_migrations(db)
        .await
        .context("reading applied migrations")?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    Ok(Migrator::migrations().iter().map(|m| (m.name().to_owned(), applied.iter().any(|a| a == m.name()))).collect())
}

/// Names of migrations not yet applied.
pub async fn pending_migrations(db: &DatabaseConnection) -> anyhow::Result<Vec<String>> {
    Ok(migration_status(db).await?.into_iter().filter(|(_, applied)| !applied).map(|(name, _)| name).collect())
}

/// A cheap round trip, for health checks.
pub async fn ping(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    db.execute_unprepared("SELECT 1").await.map(drop)
}

/// The database server's clock now (not this process's): what decides whether a hold has lapsed at the
/// moment a checkout converts it, whichever replica runs it and however long the turn took before.
pub async fn database_now(db: &impl ConnectionTrait) -> Result<chrono::DateTime<chrono::Utc>, sea_orm::DbErr> {
    use sea_orm::{DatabaseBackend, Statement};
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Sqlite => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS now",
        _ => "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS now",
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| sea_orm::DbErr::Custom("the database did not say the time".into()))?;
    let text: String = row.try_get("", "now")?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&chrono::Utc))
        .map_err(|e| sea_orm::DbErr::Custom(format!("the database's time {text:?}: {e}")))
}

/// A transaction that will write after reading: on SQLite it takes the write lock at `BEGIN` (waiting
/// for it like any writer), so a row it read cannot change before it writes and it never fails with
/// `database is locked` on a snapshot another writer moved on from; on PostgreSQL a plain transaction
/// (its row locks and conditional updates do that work).
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    let immediate =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    db.begin_with_options(immediate).await
}
