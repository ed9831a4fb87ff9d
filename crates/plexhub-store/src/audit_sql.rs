//! The audit log's SQL, shared by every backend like [`crate::sql`]: calls are stored together,
//! up to [`CALLS_PER_ROW`] per row of `gateway_call_batches` (migration 0016), their names as
//! ids of `gateway_call_names` (migration 0014).

use std::sync::{Arc, Mutex};

use plexhub_core::tenant::TenantId;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::{CallRecord, StoreResult};

/// Calls stored in one row at most. A write of more calls takes several rows, in one
/// statement; a listing decodes whole rows, so a row stays a few tens of kilobytes.
pub(crate) const CALLS_PER_ROW: usize = 256;

/// Rows a listing reads per statement.
pub(crate) const ROWS_PER_READ: usize = 32;

/// The ids of the names the audit log stores once each (migration 0014: tenant ids, plugin ids,
/// services, methods, endpoints), as far as this process has met them, both ways. Ids never
/// change once given, so what is cached here never goes stale.
#[derive(Clone, Default)]
pub(crate) struct CallNames(Arc<Mutex<NameIds>>);

#[derive(Default)]
struct NameIds {
    tenants: FxHashMap<TenantId, i64>,
    names: FxHashMap<String, i64>,
    by_id: FxHashMap<i64, Arc<str>>,
}

/// One call with its names replaced by their ids.
pub(crate) struct EncodedCall<'a> {
    /// The call.
    pub(crate) call: &'a crate::CallRecord,
    /// Id of its tenant's id.
    pub(crate) tenant: i64,
    /// Id of its caller.
    pub(crate) caller: i64,
    /// Id of its target, when resolved.
    pub(crate) target: Option<i64>,
    /// Id of its service.
    pub(crate) service: i64,
    /// Id of its method.
    pub(crate) method: i64,
    /// Id of its matched endpoint, when one matched.
    pub(crate) endpoint: Option<i64>,
}

/// A name the audit log has no id for yet.
pub(crate) enum NewName {
    /// A tenant's id.
    Tenant(TenantId),
    /// Any other name.
    Other(String),
}

impl NewName {
    /// The name as stored.
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Tenant(id) => id.to_string(),
            Self::Other(name) => name.clone(),
        }
    }
}

impl CallNames {
    /// The calls with every name encoded, or the names (deduplicated) this process has no id
    /// for yet.
    pub(crate) fn encode<'a>(
        &self,
        calls: &'a [crate::CallRecord],
    ) -> Result<Vec<EncodedCall<'a>>, Vec<NewName>> {
        let ids = self
            .0
            .lock()
            .expect("the call-name cache is never poisoned");
        let mut missing = Vec::new();
        let mut name = |name: &str| {
            ids.names.get(name).copied().unwrap_or_else(|| {
                if !missing
                    .iter()
                    .any(|new| matches!(new, NewName::Other(known) if known == name))
                {
                    missing.push(NewName::Other(name.to_owned()));
                }
                0
            })
        };
        let mut encoded = Vec::with_capacity(calls.len());
        for call in calls {
            let caller = name(&call.caller);
            let target = call.target.as_deref().map(&mut name);
            let service = name(&call.service);
            let method = name(&call.method);
            let endpoint = call.endpoint.as_deref().map(&mut name);
            encoded.push(EncodedCall {
                call,
                tenant: 0,
                caller,
                target,
                service,
                method,
                endpoint,
            });
        }
        for row in &mut encoded {
            let tenant = row.call.tenant_id;
            match ids.tenants.get(&tenant) {
                Some(id) => row.tenant = *id,
                None => {
                    if !missing
                        .iter()
                        .any(|new| matches!(new, NewName::Tenant(known) if *known == tenant))
                    {
                        missing.push(NewName::Tenant(tenant));
                    }
                }
            }
        }
        if missing.is_empty() {
            Ok(encoded)
        } else {
            Err(missing)
        }
    }

    /// Remembers the id of `name`.
    pub(crate) fn learn(&self, name: NewName, id: i64) {
        if let NewName::Tenant(tenant) = &name {
            self.0
                .lock()
                .expect("the call-name cache is never poisoned")
                .tenants
                .insert(*tenant, id);
        }
        self.remember(id, &name.text());
    }

    /// Remembers a name and its id, both ways (every name, a tenant's id as text too).
    pub(crate) fn remember(&self, id: i64, name: &str) {
        let mut ids = self
            .0
            .lock()
            .expect("the call-name cache is never poisoned");
        ids.by_id.insert(id, name.into());
        ids.names.insert(name.to_owned(), id);
    }

    /// The id of `name` as far as this process knows it.
    pub(crate) fn id_of(&self, name: &str) -> Option<i64> {
        self.0
            .lock()
            .expect("the call-name cache is never poisoned")
            .names
            .get(name)
            .copied()
    }

    /// Whether this process knows the name of every id `calls` refer to.
    pub(crate) fn knows_all(&self, calls: &[StoredCall]) -> bool {
        let ids = self
            .0
            .lock()
            .expect("the call-name cache is never poisoned");
        calls
            .iter()
            .flat_map(StoredCall::name_ids)
            .all(|id| ids.by_id.contains_key(&id))
    }

    /// The stored calls with their names, or [`crate::StoreError::Corrupt`] for an id that
    /// names nothing (call [`Self::knows_all`] first, and read the names if it says no).
    pub(crate) fn records(&self, calls: Vec<StoredCall>) -> StoreResult<Vec<CallRecord>> {
        let ids = self
            .0
            .lock()
            .expect("the call-name cache is never poisoned");
        let name = |id: i64| {
            ids.by_id.get(&id).cloned().ok_or_else(|| {
                crate::sql::corrupt("gateway_call_batches", "calls", &format!("name id {id}"))
            })
        };
        calls
            .into_iter()
            .map(|call| {
                Ok(CallRecord {
                    tenant_id: crate::sql::tenant_id(&name(call.tenant)?)?,
                    at_ms: call.at,
                    caller: name(call.caller)?,
                    target: call.target.map(&name).transpose()?,
                    service: name(call.service)?,
                    method: name(call.method)?,
                    path: call.path,
                    endpoint: call.endpoint.map(&name).transpose()?,
                    status: u16::try_from(call.status).unwrap_or(0),
                    duration_us: call.duration_us,
                    request_id: call.request_id,
                })
            })
            .collect()
    }
}

/// One row of `gateway_call_batches` to insert.
pub(crate) struct CallRow {
    /// The earliest of its calls' times.
    pub(crate) first_at: i64,
    /// The latest of its calls' times.
    pub(crate) last_at: i64,
    /// Its calls, a JSON array of [`StoredCall`] arrays.
    pub(crate) calls: String,
}

impl CallRow {
    /// The rows that store `calls`, [`CALLS_PER_ROW`] per row.
    pub(crate) fn encode(calls: &[EncodedCall<'_>]) -> Vec<Self> {
        calls
            .chunks(CALLS_PER_ROW)
            .map(|chunk| {
                let (first_at, last_at) =
                    chunk
                        .iter()
                        .fold((i64::MAX, i64::MIN), |(first, last), encoded| {
                            (first.min(encoded.call.at_ms), last.max(encoded.call.at_ms))
                        });
                // About 110 bytes per call: reserved at once, not grown by doubling.
                let mut json = Vec::with_capacity(chunk.len() * 128);
                serde_json::to_writer(&mut json, &StoredChunk(chunk))
                    .expect("numbers and strings always serialize");
                Self {
                    first_at,
                    last_at,
                    calls: String::from_utf8(json).expect("serde_json writes UTF-8"),
                }
            })
            .collect()
    }
}

/// Serializes calls as a JSON array of [`StoredCall`] arrays.
struct StoredChunk<'c, 'a>(&'c [EncodedCall<'a>]);

impl Serialize for StoredChunk<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|encoded| {
            let call = encoded.call;
            (
                call.at_ms,
                encoded.tenant,
                encoded.caller,
                encoded.target,
                encoded.service,
                encoded.method,
                call.path.as_str(),
                encoded.endpoint,
                call.status,
                call.duration_us,
                call.request_id.as_str(),
            )
        }))
    }
}

/// A call as stored: its names still ids. In a row it is an array of these fields, in order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct StoredCall {
    /// When it was answered, epoch ms.
    pub(crate) at: i64,
    /// Id of its tenant's id.
    pub(crate) tenant: i64,
    /// Id of its caller.
    pub(crate) caller: i64,
    /// Id of its target, when resolved.
    pub(crate) target: Option<i64>,
    /// Id of its service.
    pub(crate) service: i64,
    /// Id of its method.
    pub(crate) method: i64,
    /// The path asked for on the service.
    pub(crate) path: String,
    /// Id of its matched endpoint, when one matched.
    pub(crate) endpoint: Option<i64>,
    /// The status the caller got.
    pub(crate) status: i64,
    /// Time spent, microseconds.
    pub(crate) duration_us: i64,
    /// The request id.
    pub(crate) request_id: String,
}

impl StoredCall {
    /// Every name id it refers to.
    fn name_ids(&self) -> impl Iterator<Item = i64> {
        [self.tenant, self.caller, self.service, self.method]
            .into_iter()
            .chain(self.target)
            .chain(self.endpoint)
    }

    /// Whether it is listed before `other`: newest first, then by request id, descending.
    fn listed_before(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, &other.request_id).cmp(&(self.at, &self.request_id))
    }
}

/// What a listing keeps, its names as ids.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallFilter {
    /// Only this tenant's calls.
    pub(crate) tenant: Option<i64>,
    /// Only this caller's calls.
    pub(crate) caller: Option<i64>,
    /// Only calls to this target.
    pub(crate) target: Option<i64>,
    /// Only statuses in `[from, to]`.
    pub(crate) status: (i64, i64),
    /// Only calls at or after this time.
    pub(crate) since: i64,
    /// Only calls listed after this `(time, request id)`.
    pub(crate) after: Option<(i64, String)>,
}

impl CallFilter {
    /// Whether `call` is listed.
    fn keeps(&self, call: &StoredCall) -> bool {
        self.tenant.is_none_or(|tenant| call.tenant == tenant)
            && self.caller.is_none_or(|caller| call.caller == caller)
            && self.target.is_none_or(|target| call.target == Some(target))
            && (self.status.0..=self.status.1).contains(&call.status)
            && call.at >= self.since
            && self
                .after
                .as_ref()
                .is_none_or(|(at, request_id)| (call.at, &call.request_id) < (*at, request_id))
    }
}

/// A page of a listing, gathered from rows read newest first (by their latest call).
pub(crate) struct CallPage {
    filter: CallFilter,
    limit: usize,
    calls: Vec<StoredCall>,
}

impl CallPage {
    /// An empty page of at most `limit` calls that `filter` keeps.
    pub(crate) fn new(filter: CallFilter, limit: usize) -> Self {
        Self {
            filter,
            limit,
            calls: Vec::new(),
        }
    }

    /// Whether a row whose latest call is at `last_at` may still hold a call of the page (no
    /// later row can, once this says no: rows are read by their latest call, descending).
    pub(crate) fn wants(&mut self, last_at: i64) -> bool {
        if self.calls.len() < self.limit {
            return true;
        }
        self.trim();
        self.calls.last().is_some_and(|last| last.at <= last_at)
    }

    /// Adds the calls of a row that the filter keeps.
    pub(crate) fn add(&mut self, row: &str) -> StoreResult<()> {
        let calls: Vec<StoredCall> = serde_json::from_str(row).map_err(|error| {
            crate::sql::corrupt("gateway_call_batches", "calls", &error.to_string())
        })?;
        let filter = &self.filter;
        self.calls
            .extend(calls.into_iter().filter(|call| filter.keeps(call)));
        if self.calls.len() > 4 * self.limit.max(CALLS_PER_ROW) {
            self.trim();
        }
        Ok(())
    }

    /// The page, in listing order.
    pub(crate) fn finish(mut self) -> Vec<StoredCall> {
        self.trim();
        self.calls
    }

    /// Keeps the first `limit` calls, sorted.
    fn trim(&mut self) {
        self.calls.sort_unstable_by(StoredCall::listed_before);
        self.calls.truncate(self.limit);
    }
}

/// The audit log's SQL that differs between backends (their JSON functions).
pub(crate) trait CallDialect {
    /// Removes the calls of one tenant (`$1`: its id) from every row that holds one; a row
    /// left with none holds `[]`.
    const FORGET_TENANT: &'static str;
}

impl CallDialect for sqlx::Sqlite {
    const FORGET_TENANT: &'static str = "UPDATE gateway_call_batches SET calls = \
         (SELECT json_group_array(json(value)) FROM json_each(gateway_call_batches.calls) \
          WHERE json_extract(value, '$[1]') IS NOT \
          (SELECT id FROM gateway_call_names WHERE name = $1)) \
         WHERE EXISTS (SELECT 1 FROM json_each(gateway_call_batches.calls) \
          WHERE json_extract(value, '$[1]') = (SELECT id FROM gateway_call_names WHERE name = $1))";
}

impl CallDialect for sqlx::Postgres {
    const FORGET_TENANT: &'static str = "UPDATE gateway_call_batches SET calls = COALESCE(\
         (SELECT json_agg(e)::text FROM json_array_elements(calls::json) e \
          WHERE (e->>1)::bigint <> t.id), '[]') \
         FROM gateway_call_names t WHERE t.name = $1 AND EXISTS \
         (SELECT 1 FROM json_array_elements(calls::json) e WHERE (e->>1)::bigint = t.id)";
}

/// Implements [`crate::AuditStore`] for `$store` (see [`crate::sql::sql_store!`]); the store has
/// a `call_names: CallNames` field.
macro_rules! audit_store {
    ($store:ident, $db:ty) => {
        use crate::audit_sql::{CallFilter, CallPage, CallRow, ROWS_PER_READ};
        use crate::{AuditStore, CallQuery, CallRecord};

        /// Tries to give a name an id before giving up (each failure is another hub giving the
        /// same id to another name at the same moment).
        const NAME_ATTEMPTS: usize = 16;

        /// The id of `name` in `gateway_call_names`, when it has one.
        async fn known_call_name_id(
            pool: &sqlx::Pool<$db>,
            name: &str,
        ) -> StoreResult<Option<i64>> {
            Ok(
                sqlx::query_scalar("SELECT id FROM gateway_call_names WHERE name = $1")
                    .bind(name)
                    .fetch_optional(pool)
                    .await?,
            )
        }

        /// The id of `name` in `gateway_call_names`, giving it the next free one when it is new.
        /// Each statement commits on its own: an id is durable before a row refers to it.
        async fn call_name_id(pool: &sqlx::Pool<$db>, name: &str) -> StoreResult<i64> {
            for _ in 0..NAME_ATTEMPTS {
                if let Some(id) = known_call_name_id(pool, name).await? {
                    return Ok(id);
                }
                // Two hubs naming at once may pick the same id: one insert does nothing, and
                // the next round finds the name (the other hub added it) or tries again.
                sqlx::query(
                    "INSERT INTO gateway_call_names (id, name) \
                     SELECT COALESCE(MAX(id), 0) + 1, $1 FROM gateway_call_names WHERE true \
                     ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .execute(pool)
                .await?;
            }
            Err(StoreError::Duplicate)
        }

        impl $store {
            /// Up to ROWS_PER_READ rows (latest call time, calls) whose latest call is at
            /// `upper` or before and at `since` or after, and whose earliest is at `cursor_at`
            /// or before, latest first.
            async fn call_rows(
                &self,
                upper: i64,
                since: i64,
                cursor_at: i64,
            ) -> StoreResult<Vec<(i64, String)>> {
                Ok(sqlx::query_as(
                    "SELECT last_at, calls FROM gateway_call_batches \
                     WHERE last_at <= $1 AND last_at >= $2 AND first_at <= $3 \
                     ORDER BY last_at DESC LIMIT $4",
                )
                .bind(upper)
                .bind(since)
                .bind(cursor_at)
                .bind(ROWS_PER_READ as i64)
                .fetch_all(&self.pool)
                .await?)
            }

            /// The calls of every row whose latest call is at `at` and earliest at `cursor_at`
            /// or before.
            async fn call_rows_at(&self, at: i64, cursor_at: i64) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT calls FROM gateway_call_batches WHERE last_at = $1 AND first_at <= $2",
                )
                .bind(at)
                .bind(cursor_at)
                .fetch_all(&self.pool)
                .await?)
            }

            /// The filter of `query` with its names as ids, or `None` when a name it asks for
            /// has no id (no call can match).
            async fn call_filter(&self, query: &CallQuery) -> StoreResult<Option<CallFilter>> {
                let mut ids = [None; 3];
                let names = [
                    query.tenant_id.map(|id| id.to_string()),
                    query.caller.clone(),
                    query.target.clone(),
                ];
                for (id, name) in ids.iter_mut().zip(names) {
                    if let Some(name) = name {
                        let known = match self.call_names.id_of(&name) {
                            Some(id) => Some(id),
                            None => known_call_name_id(&self.pool, &name).await?,
                        };
                        match known {
                            Some(known) => *id = Some(known),
                            None => return Ok(None),
                        }
                    }
                }
                let [tenant, caller, target] = ids;
                Ok(Some(CallFilter {
                    tenant,
                    caller,
                    target,
                    status: query
                        .status
                        .map_or((0, 999), |(from, to)| (i64::from(from), i64::from(to))),
                    since: query.since_ms.unwrap_or(0),
                    after: query
                        .after
                        .as_ref()
                        .map(|after| (after.at_ms, after.request_id.clone())),
                }))
            }
        }

        #[async_trait]
        impl AuditStore for $store {
            async fn record_calls(&self, calls: &[CallRecord]) -> StoreResult<()> {
                // Every name gets its id (committed) before a row that uses it is written.
                let encoded = loop {
                    match self.call_names.encode(calls) {
                        Ok(encoded) => break encoded,
                        Err(missing) => {
                            for name in missing {
                                let id = call_name_id(&self.pool, &name.text()).await?;
                                self.call_names.learn(name, id);
                            }
                        }
                    }
                };
                let rows = CallRow::encode(&encoded);
                // One statement, in a transaction: all or none, even where a statement keeps
                // the rows before a failing one (SQLite's FAIL conflict resolution).
                let sql = format!(
                    "INSERT INTO gateway_call_batches (first_at, last_at, calls) VALUES {}",
                    crate::sql::value_rows::<$db>(1, rows.len(), &["$"; 3])
                );
                let mut insert = sqlx::query(&sql);
                for row in rows {
                    insert = insert.bind(row.first_at).bind(row.last_at).bind(row.calls);
                }
                let mut tx = self.pool.begin().await?;
                insert.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn calls(&self, query: &CallQuery) -> StoreResult<Vec<CallRecord>> {
                let Some(filter) = self.call_filter(query).await? else {
                    return Ok(Vec::new());
                };
                let cursor_at = filter.after.as_ref().map_or(i64::MAX, |after| after.0);
                let since = filter.since;
                let mut page = CallPage::new(filter, query.limit as usize);
                // Rows are read by their latest call, descending, ROWS_PER_READ at a time. A
                // full read may end inside the rows of one time: those are read whole, on their
                // own, and the next read starts below that time.
                let mut upper = i64::MAX;
                'read: loop {
                    let rows = self.call_rows(upper, since, cursor_at).await?;
                    let full = rows.len() == ROWS_PER_READ;
                    let boundary = if full { rows[ROWS_PER_READ - 1].0 } else { i64::MIN };
                    for (last_at, calls) in rows.iter().filter(|row| row.0 > boundary) {
                        if !page.wants(*last_at) {
                            break 'read;
                        }
                        page.add(calls)?;
                    }
                    if !full || !page.wants(boundary) {
                        break;
                    }
                    for calls in &self.call_rows_at(boundary, cursor_at).await? {
                        page.add(calls)?;
                    }
                    upper = boundary - 1;
                }
                let calls = page.finish();
                if !self.call_names.knows_all(&calls) {
                    let names: Vec<(i64, String)> =
                        sqlx::query_as("SELECT id, name FROM gateway_call_names")
                            .fetch_all(&self.pool)
                            .await?;
                    for (id, name) in &names {
                        self.call_names.remember(*id, name);
                    }
                }
                self.call_names.records(calls)
            }

            async fn prune_calls(&self, before_ms: i64) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM gateway_call_batches WHERE last_at < $1")
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use audit_store;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn stored(at: i64, tenant: i64, n: usize) -> StoredCall {
        StoredCall {
            at,
            tenant,
            caller: 3,
            target: (n % 2 == 0).then_some(4),
            service: 5,
            method: 6,
            path: format!("/p\"\\{n}"),
            endpoint: None,
            status: 200 + (n as i64 % 3) * 100,
            duration_us: 7,
            request_id: format!("r{n:03}"),
        }
    }

    /// The JSON of `calls` as [`CallRow::encode`] writes it.
    fn json(calls: &[StoredCall]) -> String {
        let records: Vec<crate::CallRecord> = calls
            .iter()
            .map(|call| crate::CallRecord {
                tenant_id: TenantId::new_random(),
                at_ms: call.at,
                caller: "c".into(),
                target: None,
                service: "s".into(),
                method: "m".into(),
                path: call.path.clone(),
                endpoint: None,
                status: u16::try_from(call.status).unwrap(),
                duration_us: call.duration_us,
                request_id: call.request_id.clone(),
            })
            .collect();
        let encoded: Vec<EncodedCall<'_>> = calls
            .iter()
            .zip(&records)
            .map(|(call, record)| EncodedCall {
                call: record,
                tenant: call.tenant,
                caller: call.caller,
                target: call.target,
                service: call.service,
                method: call.method,
                endpoint: call.endpoint,
            })
            .collect();
        let rows = CallRow::encode(&encoded);
        assert_eq!(rows.len(), 1);
        let first = calls.iter().map(|call| call.at).min().unwrap();
        let last = calls.iter().map(|call| call.at).max().unwrap();
        assert_eq!((rows[0].first_at, rows[0].last_at), (first, last));
        rows.into_iter().next().unwrap().calls
    }

    #[test]
    fn a_row_decodes_to_the_calls_it_encodes() {
        let calls: Vec<StoredCall> = (0..5).map(|n| stored(100 - n as i64, 1, n)).collect();
        let mut page = CallPage::new(
            CallFilter {
                status: (0, 999),
                ..CallFilter::default()
            },
            10,
        );
        page.add(&json(&calls)).unwrap();
        let mut expected = calls;
        expected.sort_by(StoredCall::listed_before);
        assert_eq!(page.finish(), expected);
    }

    proptest! {
        /// Any path and request id come back from a row as they went in.
        #[test]
        fn any_text_comes_back_from_a_row(
            // Mostly the characters JSON escapes, and some that it does not.
            path in "[a/\"\\\\\\x00-\\x1f\\x7f\\u{e9}\\u{1f600}]{0,12}",
            request_id in any::<String>(),
        ) {
            let call = StoredCall { path, request_id, ..stored(1, 1, 0) };
            let mut page = CallPage::new(
                CallFilter { status: (0, 999), ..CallFilter::default() },
                1,
            );
            page.add(&json(std::slice::from_ref(&call))).unwrap();
            prop_assert_eq!(page.finish(), vec![call]);
        }

        /// Reading rows by their latest call, descending, until the page no longer wants one
        /// lists what filtering and sorting every call lists.
        #[test]
        fn a_page_lists_what_sorting_every_call_lists(
            times in prop::collection::vec((0i64..40, 1i64..3), 1..120),
            cuts in prop::collection::vec(1usize..9, 1..40),
            limit in 0usize..30,
            tenant in prop::option::of(1i64..3),
            since in 0i64..20,
            after in prop::option::of((0i64..40, 0usize..120)),
        ) {
            let calls: Vec<StoredCall> = times
                .iter()
                .enumerate()
                .map(|(n, (at, tenant))| stored(*at, *tenant, n))
                .collect();
            let mut rows: Vec<(i64, String)> = Vec::new();
            let mut rest = calls.as_slice();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (row, left) = rest.split_at((*cut).min(rest.len()));
                rows.push((row.iter().map(|call| call.at).max().unwrap(), json(row)));
                rest = left;
            }
            rows.sort_by_key(|row| std::cmp::Reverse(row.0));
            let filter = CallFilter {
                tenant,
                status: (200, 300),
                since,
                after: after.map(|(at, n)| (at, format!("r{n:03}"))),
                ..CallFilter::default()
            };
            let mut expected: Vec<StoredCall> =
                calls.iter().filter(|call| filter.keeps(call)).cloned().collect();
            expected.sort_by(StoredCall::listed_before);
            expected.truncate(limit);

            let mut page = CallPage::new(filter, limit);
            for (last_at, row) in &rows {
                if !page.wants(*last_at) {
                    break;
                }
                page.add(row).unwrap();
            }
            prop_assert_eq!(page.finish(), expected);
        }
    }
}
