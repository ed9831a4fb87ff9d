//! The SQLite audit writer: a connection of its own, used on a blocking thread, that writes a
//! whole batch of calls in one hand-off.
//!
//! Through the pool every statement of a batch is a round trip to the driver's thread (a
//! futex wake each way) and every parameter is copied into an owned value first; measured
//! under `bench/profile.sh` that was most of the 8.6 % of the hub's CPU samples the audit log
//! took. Here the batch's rows cross to the blocking thread once, in one buffer, and are
//! inserted by prepared multi-row statements inside one transaction (`BEGIN IMMEDIATE`: it takes
//! the write lock up front, so a concurrent writer makes it wait, never fail half-way). The
//! connection keeps its page cache between batches and commits with `synchronous=FULL`, as
//! the pool does.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rusqlite::{OpenFlags, ToSql, TransactionBehavior};

use crate::audit_sql::EncodedCall;
use crate::{StoreError, StoreResult};

/// How long a write waits for another connection's write lock before it fails (as the pool).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows per insert statement, largest first: a batch is written in as few statements as these
/// shapes allow. Sixteen rows' parameters (176), SQLite's registers and its cursor stay in the
/// CPU's first-level cache, and one statement of many rows seeks its place in the table and the
/// time index once (one statement per row cost 2 300 more instructions per call, callgrind).
const ROWS_PER_STATEMENT: [usize; 3] = [16, 4, 1];

/// The insert statement of `rows` rows. `INSERT OR FAIL`: a statement after a transaction's
/// first needs no statement journal (copies of the pages it touches, kept to undo it alone); a
/// failing row fails the batch, whose transaction is rolled back.
fn insert_statement(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR FAIL INTO gateway_calls (at, tenant, caller, target, service, method, path, \
         endpoint, status, duration_us, request_id) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        sql.push_str(&["?"; 11].join(", "));
        sql.push(')');
    }
    sql
}

/// The audit log's own connection to the database file.
#[derive(Clone)]
pub(crate) struct CallWriter(Arc<Mutex<rusqlite::Connection>>);

impl CallWriter {
    /// Opens the database file at `path` (created and migrated by the pool before).
    pub(crate) fn open(path: &Path) -> StoreResult<Self> {
        let connection = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        Ok(Self(Arc::new(Mutex::new(connection))))
    }

    /// Writes `calls` in one transaction: all or none.
    pub(crate) async fn write(&self, calls: &[EncodedCall<'_>]) -> StoreResult<()> {
        let rows = CallRows::from(calls);
        let connection = Arc::clone(&self.0);
        let written = tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .expect("the audit writer's connection is never poisoned");
            rows.insert(&mut connection)
        })
        .await;
        match written {
            Ok(result) => Ok(result?),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err(StoreError::WriterStopped),
        }
    }
}

/// A batch's rows, owned so that they can cross to the blocking thread: the numbers per row,
/// and every row's path and request id one after the other in one string.
struct CallRows {
    rows: Vec<CallRow>,
    text: String,
}

/// One row; its texts end at `path_end` and `request_id_end` in [`CallRows::text`] (each
/// starts where the previous text ends).
struct CallRow {
    at: i64,
    tenant: i64,
    caller: i64,
    target: Option<i64>,
    service: i64,
    method: i64,
    endpoint: Option<i64>,
    status: i64,
    duration_us: i64,
    path_end: usize,
    request_id_end: usize,
}

impl From<&[EncodedCall<'_>]> for CallRows {
    fn from(calls: &[EncodedCall<'_>]) -> Self {
        let text_len = calls
            .iter()
            .map(|encoded| encoded.call.path.len() + encoded.call.request_id.len())
            .sum();
        let mut text = String::with_capacity(text_len);
        let rows = calls
            .iter()
            .map(|encoded| {
                let call = encoded.call;
                text.push_str(&call.path);
                let path_end = text.len();
                text.push_str(&call.request_id);
                CallRow {
                    at: call.at_ms,
                    tenant: encoded.tenant,
                    caller: encoded.caller,
                    target: encoded.target,
                    service: encoded.service,
                    method: encoded.method,
                    endpoint: encoded.endpoint,
                    status: i64::from(call.status),
                    duration_us: call.duration_us,
                    path_end,
                    request_id_end: text.len(),
                }
            })
            .collect();
        Self { rows, text }
    }
}

impl CallRows {
    /// Inserts every row in one transaction; a failing row rolls the transaction back.
    fn insert(&self, connection: &mut rusqlite::Connection) -> rusqlite::Result<()> {
        static STATEMENTS: [OnceLock<String>; 3] = [const { OnceLock::new() }; 3];
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut rest = self.rows.as_slice();
        let mut text_start = 0;
        for (shape, rows) in ROWS_PER_STATEMENT.into_iter().enumerate() {
            let sql = STATEMENTS[shape].get_or_init(|| insert_statement(rows));
            let mut insert = transaction.prepare_cached(sql)?;
            let mut chunks = rest.chunks_exact(rows);
            for chunk in chunks.by_ref() {
                let mut parameter = 0;
                let mut bind = |value: &dyn ToSql| {
                    parameter += 1;
                    insert.raw_bind_parameter(parameter, value)
                };
                for row in chunk {
                    bind(&row.at)?;
                    bind(&row.tenant)?;
                    bind(&row.caller)?;
                    bind(&row.target)?;
                    bind(&row.service)?;
                    bind(&row.method)?;
                    bind(&&self.text[text_start..row.path_end])?;
                    bind(&row.endpoint)?;
                    bind(&row.status)?;
                    bind(&row.duration_us)?;
                    bind(&&self.text[row.path_end..row.request_id_end])?;
                    text_start = row.request_id_end;
                }
                insert.raw_execute()?;
            }
            rest = chunks.remainder();
        }
        transaction.commit()
    }
}
