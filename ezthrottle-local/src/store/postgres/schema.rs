//! The `ezt_*` tables: created, or migrated one version at a time, when a store opens.

use tokio_postgres::Client;

use super::sql_error;
use crate::store::StoreError;

/// Any 64-bit number the engines agree on: the advisory lock that serialises migrations
/// when several engines start at once.
const MIGRATION_LOCK: i64 = 0x657a_7468_726f_7431;

/// `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`; the schema this version
/// writes is their count. A migration only ever adds: an engine of the previous version
/// still running beside a migrated one keeps working until it is replaced.
const MIGRATIONS: [&str; 2] = [
    "
    CREATE TABLE ezt_jobs (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        submission BYTEA NOT NULL,
        settled BOOLEAN NOT NULL,
        finished_at_ms BIGINT,
        progress BYTEA NOT NULL
    );
    CREATE INDEX ezt_jobs_unsettled ON ezt_jobs (id) WHERE NOT settled;
    CREATE TABLE ezt_bindings (
        key TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        bound_at_ms BIGINT NOT NULL
    );
    ",
    // Replicas: leases, hosts held, jobs claimed (oldest first, by `serial`); each job's
    // acceptance and status (for listing); the tenants' webhook secrets.
    "
    ALTER TABLE ezt_jobs ADD COLUMN host TEXT NOT NULL DEFAULT '';
    ALTER TABLE ezt_jobs ADD COLUMN accepted_at_ms BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE ezt_jobs ADD COLUMN status TEXT NOT NULL DEFAULT 'queued';
    ALTER TABLE ezt_jobs ADD COLUMN owner TEXT;
    ALTER TABLE ezt_jobs ADD COLUMN serial BIGSERIAL;
    CREATE INDEX ezt_jobs_waiting ON ezt_jobs (host, serial) WHERE owner IS NULL AND NOT settled;
    CREATE INDEX ezt_jobs_claimed ON ezt_jobs (owner) WHERE owner IS NOT NULL AND NOT settled;
    CREATE TABLE ezt_replicas (
        id TEXT PRIMARY KEY,
        lease_until_ms BIGINT NOT NULL
    );
    CREATE TABLE ezt_hosts (
        host TEXT PRIMARY KEY,
        owner TEXT,
        rps DOUBLE PRECISION,
        max_concurrent INTEGER
    );
    CREATE TABLE ezt_webhook_secrets (
        tenant TEXT PRIMARY KEY,
        document BYTEA NOT NULL
    );
    ",
];

/// Creates or migrates the schema in one transaction, under the advisory lock.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let latest = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    let migration = client.transaction().await.map_err(sql_error("beginning the migration"))?;
    migration.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(sql_error("locking"))?;
    migration
        .batch_execute("CREATE TABLE IF NOT EXISTS ezt_schema (version INTEGER NOT NULL)")
        .await
        .map_err(sql_error("creating the schema table"))?;
    let version: i32 = migration
        .query_one("SELECT coalesce(max(version), 0) FROM ezt_schema", &[])
        .await
        .map_err(sql_error("reading the schema version"))?
        .try_get(0)
        .map_err(sql_error("reading the schema version"))?;
    if version > latest {
        return Err(StoreError::new(format!(
            "postgres: the database has schema version {version}; this engine knows {latest}"
        )));
    }
    for (from, step) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        migration.batch_execute(step).await.map_err(|err| {
            StoreError::with_source(format!("postgres: migrating the schema from version {from}"), err)
        })?;
    }
    if version < latest {
        migration.execute("DELETE FROM ezt_schema", &[]).await.map_err(sql_error("writing the schema version"))?;
        migration
            .execute("INSERT INTO ezt_schema (version) VALUES ($1)", &[&latest])
            .await
            .map_err(sql_error("writing the schema version"))?;
    }
    migration.commit().await.map_err(sql_error("committing the migration"))
}
