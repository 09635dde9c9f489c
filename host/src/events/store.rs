//! Every statement on `lethe_events`, `lethe_event_streams` and the
//! `lethe_webhook_*` tables: the events capability owns them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::signature::Secret;
use super::{Event, EventError, EventType, Events};
use crate::clock::unix_millis;
use crate::db::DbError;
use crate::page::Limit;

/// Where one event stands for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet sent, or sent and due again (`attempts` > 0).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Retried until the horizon passed, or the endpoint is gone (410):
    /// visible here until redelivered, never dropped silently.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Result<DeliveryStatus, EventError> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| EventError::Corrupt(format!("delivery status `{s}`")))
    }
}

/// An event as stored, with where its deliveries stand.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// `evt-…`: the `webhook-id` of every attempt.
    pub id: String,
    pub tenant: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub user: Option<String>,
    /// The user's event sequence number (1, 2, 3…).
    pub seq: Option<i64>,
    pub at: i64,
    /// The payload: `UserChanged`, `EscalationChanged`, `BulkJobFinished`
    /// or `PolicyActivated`, by type.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub deliveries: Vec<Delivery>,
}

/// One event for one endpoint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub endpoint_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// Unix ms of the next attempt, when pending.
    pub next_attempt_ms: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub delivered_ms: Option<i64>,
    /// Every attempt, oldest first (only when one event is read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<Attempt>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempt: i64,
    pub started_ms: i64,
    pub latency_ms: i64,
    /// The receiver's status; none when it did not answer.
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub worker: String,
}

/// Filters of the event list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<EventType>,
    pub user: Option<String>,
    /// Events with a delivery in this status.
    pub status: Option<DeliveryStatus>,
    /// Default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<Limit<1000>>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}-[0-9]{1,18}-.+$")]
    pub cursor: Option<String>,
}

/// A page of events, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    pub next_cursor: Option<String>,
}

/// Deliveries of one endpoint per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliveryCounts {
    /// Waiting for their first attempt.
    pub pending: i64,
    /// Failed at least once and due again.
    pub failing: i64,
    pub delivered: i64,
    pub dead: i64,
}

/// A webhook endpoint of a tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub description: Option<String>,
    /// The types it receives; empty: every type.
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    /// `operator`, or `gone` (it answered 410).
    pub disabled_reason: Option<String>,
    /// Only in the answer that created or rotated it: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Until when the previous secret also signs (unix seconds).
    pub previous_secret_until: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub counts: DeliveryCounts,
}

/// What an operator gives to create an endpoint.
#[derive(Debug, Clone)]
pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub event_types: &'a [EventType],
    /// A `whsec_…` secret to use; a new one is generated when none.
    pub secret: Option<Secret>,
}

pub(super) async fn record(conn: &mut AnyConnection, event: &Event) -> Result<String, sqlx::Error> {
    let id = format!("evt-{}", hex::encode(rand::random::<[u8; 16]>()));
    let created_ms = unix_millis();
    let seq: Option<i64> = match &event.user {
        Some(user) => Some(
            sqlx::query_scalar(
                "INSERT INTO lethe_event_streams (tenant_id, user_id, last_seq) VALUES ($1, $2, 1) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET last_seq = lethe_event_streams.last_seq + 1 \
                 RETURNING last_seq",
            )
            .bind(&event.tenant)
            .bind(user)
            .fetch_one(&mut *conn)
            .await?,
        ),
        None => None,
    };
    sqlx::query(
        "INSERT INTO lethe_events (id, tenant_id, event_type, user_id, stream_seq, payload_json, at, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&event.tenant)
    .bind(event.event_type.as_str())
    .bind(event.user.clone())
    .bind(seq)
    .bind(event.data.to_string())
    .bind(event.at)
    .bind(created_ms)
    .execute(&mut *conn)
    .await?;
    // The fan-out: one delivery per enabled endpoint that wants the type.
    let endpoints = sqlx::query(
        "SELECT id, event_types_json FROM lethe_webhook_endpoints WHERE tenant_id = $1 AND enabled = 1",
    )
    .bind(&event.tenant)
    .fetch_all(&mut *conn)
    .await?;
    for row in endpoints {
        let endpoint: String = row.try_get(0)?;
        let types: Vec<EventType> =
            serde_json::from_str(&row.try_get::<String, _>(1)?).unwrap_or_default();
        if !types.is_empty() && !types.contains(&event.event_type) {
            continue;
        }
        sqlx::query(
            "INSERT INTO lethe_webhook_deliveries (event_id, endpoint_id, tenant_id, user_id, stream_seq, \
             status, attempts, next_attempt_ms, created_ms) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
        )
        .bind(&id)
        .bind(&endpoint)
        .bind(&event.tenant)
        .bind(event.user.clone())
        .bind(seq)
        .bind(DeliveryStatus::Pending.as_str())
        .bind(created_ms)
        .execute(&mut *conn)
        .await?;
    }
    tracing::debug!(event = %id, tenant = %event.tenant, r#type = %event.event_type, "event recorded");
    Ok(id)
}

/// Events per multi-row statement of [`record_many`].
const EVENTS_PER_INSERT: usize = 200;

/// [`record`] for the events of a bulk batch, all of one tenant and each
/// about a different user: the users' stream sequences advanced in one
/// statement, the events inserted in one, the deliveries fanned out in one
/// (per [`EVENTS_PER_INSERT`]). Falls back to [`record`] one by one when two
/// events are about the same user (one statement cannot advance a stream
/// twice). Returns the event ids in order.
pub(super) async fn record_many(
    conn: &mut AnyConnection,
    events: &[Event],
) -> Result<Vec<String>, sqlx::Error> {
    use crate::platform::Sql;
    let mut users: Vec<&str> = events.iter().filter_map(|e| e.user.as_deref()).collect();
    let about_users = users.len();
    users.sort_unstable();
    users.dedup();
    let one_tenant = events.windows(2).all(|w| w[0].tenant == w[1].tenant);
    if users.len() != about_users || about_users != events.len() || !one_tenant {
        let mut ids = Vec::with_capacity(events.len());
        for e in events {
            ids.push(record(conn, e).await?);
        }
        return Ok(ids);
    }
    let Some(first) = events.first() else {
        return Ok(Vec::new());
    };
    let tenant = first.tenant.as_str();
    let endpoints: Vec<(String, Vec<EventType>)> = sqlx::query(
        "SELECT id, event_types_json FROM lethe_webhook_endpoints WHERE tenant_id = $1 AND enabled = 1",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        let types: Vec<EventType> =
            serde_json::from_str(&row.try_get::<String, _>(1)?).unwrap_or_default();
        Ok((row.try_get(0)?, types))
    })
    .collect::<Result<_, sqlx::Error>>()?;
    let created_ms = unix_millis();
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(EVENTS_PER_INSERT) {
        let mut q = Sql::new();
        let rows: Vec<String> = chunk
            .iter()
            .map(|e| {
                format!(
                    "({}, {}, 1)",
                    q.text(tenant),
                    q.text(e.user.as_deref().unwrap_or_default())
                )
            })
            .collect();
        q.push(&format!(
            "INSERT INTO lethe_event_streams (tenant_id, user_id, last_seq) VALUES {} \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET last_seq = lethe_event_streams.last_seq + 1 \
             RETURNING user_id, last_seq",
            rows.join(", ")
        ));
        let mut seqs: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
        for row in q.fetch_all(&mut *conn).await? {
            seqs.insert(row.try_get(0)?, row.try_get(1)?);
        }
        let mut q = Sql::new();
        let mut rows = Vec::with_capacity(chunk.len());
        let mut fan_out = Vec::new();
        for e in chunk {
            let id = format!("evt-{}", hex::encode(rand::random::<[u8; 16]>()));
            let user = e.user.as_deref().unwrap_or_default();
            let Some(seq) = seqs.get(user).copied() else {
                return Err(sqlx::Error::Protocol(format!(
                    "no stream sequence returned for user {user}"
                )));
            };
            rows.push(format!(
                "({}, {}, {}, {}, {}, {}, {}, {})",
                q.text(id.as_str()),
                q.text(tenant),
                q.text(e.event_type.as_str()),
                q.text(user),
                q.int(seq),
                q.text(e.data.to_string()),
                q.int(e.at),
                q.int(created_ms),
            ));
            for (endpoint, types) in &endpoints {
                if types.is_empty() || types.contains(&e.event_type) {
                    fan_out.push((id.clone(), endpoint.as_str(), user, seq));
                }
            }
            ids.push(id);
        }
        q.push(&format!(
            "INSERT INTO lethe_events (id, tenant_id, event_type, user_id, stream_seq, payload_json, at, created_ms) \
             VALUES {}",
            rows.join(", ")
        ));
        q.execute(&mut *conn).await?;
        if !fan_out.is_empty() {
            let mut q = Sql::new();
            let rows: Vec<String> = fan_out
                .iter()
                .map(|(event, endpoint, user, seq)| {
                    format!(
                        "({}, {}, {}, {}, {}, {}, 0, {ms}, {ms})",
                        q.text(event.as_str()),
                        q.text(*endpoint),
                        q.text(tenant),
                        q.text(*user),
                        q.int(*seq),
                        q.text(DeliveryStatus::Pending.as_str()),
                        ms = q.int(created_ms),
                    )
                })
                .collect();
            q.push(&format!(
                "INSERT INTO lethe_webhook_deliveries (event_id, endpoint_id, tenant_id, user_id, stream_seq, \
                 status, attempts, next_attempt_ms, created_ms) VALUES {}",
                rows.join(", ")
            ));
            q.execute(&mut *conn).await?;
        }
    }
    tracing::debug!(events = ids.len(), %tenant, "events recorded");
    Ok(ids)
}

const EVENT_COLUMNS: &str =
    "id, tenant_id, event_type, user_id, stream_seq, payload_json, at, created_ms";

fn event_from_row(r: &AnyRow) -> Result<StoredEvent, EventError> {
    let t: String = r.try_get(2)?;
    let payload: String = r.try_get(5)?;
    Ok(StoredEvent {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        event_type: t.parse()?,
        user: r.try_get(3)?,
        seq: r.try_get(4)?,
        at: r.try_get(6)?,
        data: serde_json::from_str(&payload).map_err(|e| EventError::Corrupt(e.to_string()))?,
        deliveries: Vec::new(),
    })
}

const DELIVERY_COLUMNS: &str =
    "event_id, endpoint_id, status, attempts, next_attempt_ms, last_status, \
     last_error, last_latency_ms, delivered_ms";

fn delivery_from_row(r: &AnyRow) -> Result<(String, Delivery), EventError> {
    let status = DeliveryStatus::parse(&r.try_get::<String, _>(2)?)?;
    let next: i64 = r.try_get(4)?;
    Ok((
        r.try_get(0)?,
        Delivery {
            endpoint_id: r.try_get(1)?,
            status,
            attempts: r.try_get(3)?,
            next_attempt_ms: (status == DeliveryStatus::Pending).then_some(next),
            last_status: r.try_get(5)?,
            last_error: r.try_get(6)?,
            last_latency_ms: r.try_get(7)?,
            delivered_ms: r.try_get(8)?,
            log: Vec::new(),
        },
    ))
}

/// An events cursor: `<created_ms>-<stream seq>-<event id>` of the last
/// event of a page (the seq is 0 for events about no user).
fn decode_cursor(c: &str) -> Result<(i64, i64, String), EventError> {
    let (ms, rest) = c.split_once('-').ok_or(EventError::BadCursor)?;
    let (seq, id) = rest.split_once('-').ok_or(EventError::BadCursor)?;
    Ok((
        ms.parse().map_err(|_| EventError::BadCursor)?,
        seq.parse().map_err(|_| EventError::BadCursor)?,
        id.to_owned(),
    ))
}

impl Events {
    /// The tenant's events, newest first. Events of one millisecond come
    /// in their user's order (one transaction can record several: an
    /// approval's `escalation.approved`, then its `user.deleted`), then by id.
    pub async fn list(&self, tenant: &str, f: &EventFilter) -> Result<EventPage, EventError> {
        let limit = i64::from(Limit::or(f.limit, 100));
        let (before_ms, before_seq, before_id) = match &f.cursor {
            Some(c) => decode_cursor(c)?,
            None => (i64::MAX, 0, String::new()),
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM lethe_events e WHERE tenant_id = $1 \
             AND (created_ms < $2 OR (created_ms = $2 AND (COALESCE(stream_seq, 0) < $3 \
                  OR (COALESCE(stream_seq, 0) = $3 AND id < $4)))) \
             AND ($5 IS NULL OR event_type = $5) AND ($6 IS NULL OR user_id = $6) \
             AND ($7 IS NULL OR EXISTS (SELECT 1 FROM lethe_webhook_deliveries d \
                  WHERE d.event_id = e.id AND d.status = $7)) \
             ORDER BY created_ms DESC, COALESCE(stream_seq, 0) DESC, id DESC LIMIT $8"
        ))
        .bind(tenant)
        .bind(before_ms)
        .bind(before_seq)
        .bind(&before_id)
        .bind(f.event_type.map(|t| t.as_str().to_owned()))
        .bind(f.user.clone())
        .bind(f.status.map(|s| s.as_str().to_owned()))
        .bind(limit + 1)
        .fetch_all(self.db.pool())
        .await?;
        let more = rows.len() as i64 > limit;
        let mut events = Vec::with_capacity(rows.len());
        let mut last_ms = 0;
        for row in rows.iter().take(limit as usize) {
            last_ms = row.try_get::<i64, _>(7)?;
            events.push(event_from_row(row)?);
        }
        self.attach_deliveries(&mut events, Log::Without).await?;
        let next_cursor = match events.last() {
            Some(e) if more => Some(format!("{last_ms}-{}-{}", e.seq.unwrap_or(0), e.id)),
            _ => None,
        };
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    /// One event of the tenant with every delivery and its attempts.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<StoredEvent, EventError> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM lethe_events WHERE id = $1 AND tenant_id = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(EventError::NotFound)?;
        let mut events = vec![event_from_row(&row)?];
        self.attach_deliveries(&mut events, Log::With).await?;
        events.pop().ok_or(EventError::NotFound)
    }

    async fn attach_deliveries(
        &self,
        events: &mut [StoredEvent],
        log: Log,
    ) -> Result<(), EventError> {
        if events.is_empty() {
            return Ok(());
        }
        // One read for the whole page.
        let params: Vec<String> = (1..=events.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM lethe_webhook_deliveries WHERE event_id IN ({}) \
             ORDER BY event_id, endpoint_id",
            params.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for event in events.iter() {
            q = q.bind(event.id.clone());
        }
        let mut by_event: HashMap<String, Vec<Delivery>> = HashMap::new();
        for row in &q.fetch_all(self.db.pool()).await? {
            let (event, d) = delivery_from_row(row)?;
            by_event.entry(event).or_default().push(d);
        }
        for event in events.iter_mut() {
            let mut deliveries = by_event.remove(&event.id).unwrap_or_default();
            if log == Log::With {
                for d in &mut deliveries {
                    d.log = self.attempts(&event.id, &d.endpoint_id).await?;
                }
            }
            event.deliveries = deliveries;
        }
        Ok(())
    }

    async fn attempts(&self, event: &str, endpoint: &str) -> Result<Vec<Attempt>, EventError> {
        let rows = sqlx::query(
            "SELECT attempt, started_ms, latency_ms, http_status, error, worker FROM lethe_webhook_attempts \
             WHERE event_id = $1 AND endpoint_id = $2 ORDER BY attempt",
        )
        .bind(event)
        .bind(endpoint)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    attempt: r.try_get(0)?,
                    started_ms: r.try_get(1)?,
                    latency_ms: r.try_get(2)?,
                    http_status: r.try_get(3)?,
                    error: r.try_get(4)?,
                    worker: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Sends the event again to every endpoint (or one): its deliveries
    /// become pending and due now, with a fresh horizon; the log is kept.
    pub async fn redeliver(
        &self,
        tenant: &str,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<StoredEvent, EventError> {
        let n = sqlx::query(
            "UPDATE lethe_webhook_deliveries SET status = $4, next_attempt_ms = $5, first_attempt_ms = NULL \
             WHERE event_id = $1 AND tenant_id = $2 AND ($3 IS NULL OR endpoint_id = $3) \
             AND lease_owner IS NULL",
        )
        .bind(id)
        .bind(tenant)
        .bind(endpoint.map(str::to_owned))
        .bind(DeliveryStatus::Pending.as_str())
        .bind(unix_millis())
        .execute(self.db.pool())
        .await?
        .rows_affected();
        let event = self.get(tenant, id).await?;
        if n == 0 && endpoint.is_some() {
            return Err(EventError::NotFound);
        }
        Ok(event)
    }

    /// Creates an endpoint; the answer carries its secret, once.
    pub async fn create_endpoint(
        &self,
        tenant: &str,
        new: NewEndpoint<'_>,
        created_by: &str,
        now: i64,
    ) -> Result<Endpoint, EventError> {
        check_url(new.url)?;
        let id = format!("whep-{}", hex::encode(rand::random::<[u8; 12]>()));
        let secret = new.secret.unwrap_or_else(Secret::generate);
        let types = serde_json::to_string(new.event_types)
            .map_err(|e| EventError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO lethe_webhook_endpoints (id, tenant_id, url, description, event_types_json, enabled, \
             secret, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $8)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(new.url)
        .bind(new.description.map(str::to_owned))
        .bind(types)
        .bind(secret.expose())
        .bind(created_by)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        let mut endpoint = self.endpoint(tenant, &id).await?;
        endpoint.secret = Some(secret.expose());
        Ok(endpoint)
    }

    /// Turns an endpoint on or off. Turning it on again sends what was held.
    pub async fn set_enabled(
        &self,
        tenant: &str,
        id: &str,
        enabled: bool,
        now: i64,
    ) -> Result<Endpoint, EventError> {
        let n = sqlx::query(
            "UPDATE lethe_webhook_endpoints SET enabled = $3, disabled_reason = $4, updated_at = $5 \
             WHERE id = $1 AND tenant_id = $2",
        )
        .bind(id)
        .bind(tenant)
        .bind(i64::from(enabled))
        .bind((!enabled).then(|| "operator".to_owned()))
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(EventError::NotFound);
        }
        self.endpoint(tenant, id).await
    }

    /// A new secret; the previous one keeps signing for `overlap_secs`, so
    /// receivers can switch without missing an event.
    pub async fn rotate_secret(
        &self,
        tenant: &str,
        id: &str,
        overlap_secs: i64,
        now: i64,
    ) -> Result<Endpoint, EventError> {
        let secret = Secret::generate();
        let n = sqlx::query(
            "UPDATE lethe_webhook_endpoints SET secret_previous = secret, secret = $3, previous_until = $4, \
             updated_at = $5 WHERE id = $1 AND tenant_id = $2",
        )
        .bind(id)
        .bind(tenant)
        .bind(secret.expose())
        .bind(now + overlap_secs)
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(EventError::NotFound);
        }
        let mut endpoint = self.endpoint(tenant, id).await?;
        endpoint.secret = Some(secret.expose());
        Ok(endpoint)
    }

    pub async fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, EventError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM lethe_webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut e = endpoint_from_row(row)?;
            e.counts = self.counts(&e.id).await?;
            out.push(e);
        }
        Ok(out)
    }

    pub async fn endpoint(&self, tenant: &str, id: &str) -> Result<Endpoint, EventError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM lethe_webhook_endpoints WHERE id = $1 AND tenant_id = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(EventError::NotFound)?;
        let mut e = endpoint_from_row(&row)?;
        e.counts = self.counts(&e.id).await?;
        Ok(e)
    }

    async fn counts(&self, endpoint: &str) -> Result<DeliveryCounts, EventError> {
        let rows = self.grouped_counts(Some(endpoint)).await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|(_, _, c)| c)
            .unwrap_or_default())
    }

    /// Deliveries per tenant and endpoint, every status counted (zeros
    /// included, so a gauge falls back to 0), for the metrics.
    pub async fn counts_by_endpoint(
        &self,
    ) -> Result<Vec<(String, String, DeliveryCounts)>, EventError> {
        self.grouped_counts(None).await
    }

    async fn grouped_counts(
        &self,
        endpoint: Option<&str>,
    ) -> Result<Vec<(String, String, DeliveryCounts)>, EventError> {
        let rows = sqlx::query(
            "SELECT tenant_id, endpoint_id, \
             CAST(SUM(CASE WHEN status = $2 AND attempts = 0 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = $2 AND attempts > 0 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = $3 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = $4 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM lethe_webhook_deliveries WHERE ($1 IS NULL OR endpoint_id = $1) \
             GROUP BY tenant_id, endpoint_id ORDER BY tenant_id, endpoint_id",
        )
        .bind(endpoint.map(str::to_owned))
        .bind(DeliveryStatus::Pending.as_str())
        .bind(DeliveryStatus::Delivered.as_str())
        .bind(DeliveryStatus::Dead.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let counts = DeliveryCounts {
                    pending: r.try_get(2)?,
                    failing: r.try_get(3)?,
                    delivered: r.try_get(4)?,
                    dead: r.try_get(5)?,
                };
                Ok((r.try_get(0)?, r.try_get(1)?, counts))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Log {
    With,
    Without,
}

const ENDPOINT_COLUMNS: &str =
    "id, tenant_id, url, description, event_types_json, enabled, disabled_reason, \
     previous_until, created_by, created_at, updated_at";

fn endpoint_from_row(r: &AnyRow) -> Result<Endpoint, EventError> {
    let types: String = r.try_get(4)?;
    Ok(Endpoint {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        url: r.try_get(2)?,
        description: r.try_get(3)?,
        event_types: serde_json::from_str(&types)
            .map_err(|e| EventError::Corrupt(e.to_string()))?,
        enabled: r.try_get::<i64, _>(5)? != 0,
        disabled_reason: r.try_get(6)?,
        secret: None,
        previous_secret_until: r.try_get(7)?,
        created_by: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
        counts: DeliveryCounts::default(),
    })
}

/// An endpoint URL: absolute http or https with a host.
fn check_url(url: &str) -> Result<(), EventError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| EventError::InvalidEndpoint(format!("`url` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(EventError::InvalidEndpoint(
            "`url` must be an http or https URL with a host".into(),
        ));
    }
    Ok(())
}

/// A delivery a worker holds under its lease: everything one attempt needs.
#[derive(Debug, Clone)]
pub(super) struct Claimed {
    pub event_id: String,
    pub endpoint_id: String,
    pub tenant: String,
    pub url: String,
    pub secrets: Vec<Secret>,
    pub event_type: EventType,
    pub at: i64,
    pub payload: String,
    pub attempt: i64,
    pub first_attempt_ms: i64,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub started_ms: i64,
    pub latency_ms: i64,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

/// What becomes of the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Delivered,
    RetryAt(i64),
    Dead,
    /// 410: dead, and the endpoint is disabled.
    Gone,
}

impl Next {
    /// The metrics label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Next::Delivered => "delivered",
            Next::RetryAt(_) => "retry",
            Next::Dead => "dead",
            Next::Gone => "gone",
        }
    }
}

impl Events {
    /// Claims up to `n` due deliveries for `worker`: only the oldest
    /// undelivered event of each user's stream per endpoint is due, so a
    /// user's events arrive in order. The conditional UPDATE is the claim.
    pub(super) async fn claim(
        &self,
        worker: &str,
        n: i64,
        lease_ms: i64,
    ) -> Result<Vec<Claimed>, EventError> {
        let now = unix_millis();
        // Candidates with everything an attempt needs, in one read.
        let candidates = sqlx::query(
            "SELECT d.event_id, d.endpoint_id, ev.tenant_id, ev.event_type, ev.at, ev.payload_json, e.url, \
             e.secret, e.secret_previous, e.previous_until FROM lethe_webhook_deliveries d \
             JOIN lethe_webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1 \
             JOIN lethe_events ev ON ev.id = d.event_id \
             WHERE d.status = $1 AND d.next_attempt_ms <= $2 \
             AND (d.lease_until IS NULL OR d.lease_until < $2) \
             AND (d.user_id IS NULL OR NOT EXISTS (SELECT 1 FROM lethe_webhook_deliveries p \
                  WHERE p.endpoint_id = d.endpoint_id AND p.tenant_id = d.tenant_id \
                  AND p.user_id = d.user_id AND p.stream_seq < d.stream_seq AND p.status = $1)) \
             ORDER BY d.next_attempt_ms, d.created_ms LIMIT $3",
        )
        .bind(DeliveryStatus::Pending.as_str())
        .bind(now)
        .bind(n)
        .fetch_all(self.db.pool())
        .await?;
        let mut claimed = Vec::new();
        for c in candidates {
            let event_id: String = c.try_get(0)?;
            let endpoint_id: String = c.try_get(1)?;
            // The conditional UPDATE is the claim.
            let row = sqlx::query(
                "UPDATE lethe_webhook_deliveries SET lease_owner = $3, lease_until = $4, attempts = attempts + 1, \
                 first_attempt_ms = COALESCE(first_attempt_ms, $5) \
                 WHERE event_id = $1 AND endpoint_id = $2 AND status = $6 \
                 AND (lease_until IS NULL OR lease_until < $5) RETURNING attempts, first_attempt_ms",
            )
            .bind(&event_id)
            .bind(&endpoint_id)
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now)
            .bind(DeliveryStatus::Pending.as_str())
            .fetch_optional(self.db.pool())
            .await?;
            // None: another worker was faster.
            let Some(row) = row else { continue };
            let mut secrets = vec![parse_secret(&c.try_get::<String, _>(7)?)?];
            let previous: Option<String> = c.try_get(8)?;
            let until: Option<i64> = c.try_get(9)?;
            if let (Some(p), Some(until)) = (previous, until) {
                if until * 1000 > now {
                    secrets.push(parse_secret(&p)?);
                }
            }
            claimed.push(Claimed {
                event_id,
                endpoint_id,
                tenant: c.try_get(2)?,
                event_type: c.try_get::<String, _>(3)?.parse()?,
                at: c.try_get(4)?,
                payload: c.try_get(5)?,
                url: c.try_get(6)?,
                secrets,
                attempt: row.try_get(0)?,
                first_attempt_ms: row.try_get(1)?,
            });
        }
        Ok(claimed)
    }

    /// Writes an attempt's result and lets the lease go, in one
    /// transaction; a worker that lost its lease writes nothing.
    pub(super) async fn finish(
        &self,
        worker: &str,
        c: &Claimed,
        outcome: &Outcome,
        next: Next,
    ) -> Result<bool, EventError> {
        let mut tx = self.db.begin_write().await?;
        let (status, next_ms, delivered) = match next {
            Next::Delivered => (DeliveryStatus::Delivered, 0, Some(unix_millis())),
            Next::RetryAt(ms) => (DeliveryStatus::Pending, ms, None),
            Next::Dead | Next::Gone => (DeliveryStatus::Dead, 0, None),
        };
        let error = outcome.error.as_deref().map(truncate);
        let n = sqlx::query(
            "UPDATE lethe_webhook_deliveries SET status = $4, next_attempt_ms = $5, last_status = $6, \
             last_error = $7, last_latency_ms = $8, delivered_ms = $9, lease_owner = NULL, lease_until = NULL \
             WHERE event_id = $1 AND endpoint_id = $2 AND lease_owner = $3",
        )
        .bind(&c.event_id)
        .bind(&c.endpoint_id)
        .bind(worker)
        .bind(status.as_str())
        .bind(next_ms)
        .bind(outcome.http_status.map(i64::from))
        .bind(error.clone())
        .bind(outcome.latency_ms)
        .bind(delivered)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO lethe_webhook_attempts (event_id, endpoint_id, attempt, started_ms, latency_ms, \
             http_status, error, worker) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.event_id)
        .bind(&c.endpoint_id)
        .bind(c.attempt)
        .bind(outcome.started_ms)
        .bind(outcome.latency_ms)
        .bind(outcome.http_status.map(i64::from))
        .bind(error)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if next == Next::Gone {
            sqlx::query(
                "UPDATE lethe_webhook_endpoints SET enabled = 0, disabled_reason = 'gone', updated_at = $2 \
                 WHERE id = $1",
            )
            .bind(&c.endpoint_id)
            .bind(unix_millis() / 1000)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(true)
    }

    /// Lets unstarted claims go at shutdown, so another host takes them
    /// at once instead of after the lease.
    pub(super) async fn release(&self, worker: &str, c: &Claimed) -> Result<(), EventError> {
        sqlx::query(
            "UPDATE lethe_webhook_deliveries SET lease_owner = NULL, lease_until = NULL, attempts = attempts - 1 \
             WHERE event_id = $1 AND endpoint_id = $2 AND lease_owner = $3",
        )
        .bind(&c.event_id)
        .bind(&c.endpoint_id)
        .bind(worker)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// An endpoint's URL and secrets, for a test ping.
    pub(super) async fn target(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(String, Vec<Secret>), EventError> {
        let row = sqlx::query(
            "SELECT url, secret FROM lethe_webhook_endpoints WHERE id = $1 AND tenant_id = $2",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(EventError::NotFound)?;
        Ok((
            row.try_get(0)?,
            vec![parse_secret(&row.try_get::<String, _>(1)?)?],
        ))
    }
}

fn parse_secret(s: &str) -> Result<Secret, EventError> {
    Secret::parse(s).map_err(|_| EventError::Corrupt("endpoint secret".into()))
}

/// Errors are kept short in the log.
fn truncate(s: &str) -> String {
    const MAX: usize = 512;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
