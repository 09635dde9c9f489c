//! Events out: the platform's other systems (a mailer, a search index, a
//! ticketing system) hear of every lifecycle change.
//!
//! An event is written to the outbox (`lethe_events`) by [`record`], on the
//! connection of the transaction that makes the change it reports: an
//! action that rolls back, is refused or is a dry run leaves no event, and
//! a committed one cannot lose its event to a crash. For each of the
//! tenant's enabled webhook endpoints that wants its type, the same
//! statement set queues a delivery; [`delivery`] sends it later, signed
//! the Standard Webhooks way ([`signature`]), until the receiver answers
//! 2xx or the retry horizon passes.
//!
//! Payloads carry ids, states and counts, never a name, an email or free
//! text: an event outlives the erase of the user it names.

pub mod delivery;
pub mod signature;
mod store;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::contract::{Action, ActorKind, LifecycleState};
use crate::db::{Db, DbError};
use crate::executor::{ActionReport, Effects};

pub use store::{
    Attempt, Delivery, DeliveryCounts, DeliveryStatus, Endpoint, EventFilter, EventPage,
    NewEndpoint, StoredEvent,
};

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// What an event reports; its wire form is the dotted name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            /// Every type, in declaration order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The wire form, e.g. `user.deleted`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( EventType::$variant => $name, )*
                }
            }
        }
    };
}

event_types! {
    UserLocked => "user.locked",
    UserUnlocked => "user.unlocked",
    UserDeactivated => "user.deactivated",
    UserReactivated => "user.reactivated",
    UserDeleted => "user.deleted",
    UserRestored => "user.restored",
    /// Also a delete whose restore window was 0: the user ends erased.
    UserErased => "user.erased",
    EscalationCreated => "escalation.created",
    EscalationApproved => "escalation.approved",
    EscalationRejected => "escalation.rejected",
    BulkJobCompleted => "bulk.job.completed",
    BulkJobCancelled => "bulk.job.cancelled",
    PolicyActivated => "policy.activated",
    /// Sent by an endpoint's test ping only; never stored.
    WebhookPing => "webhook.ping",
}

impl EventType {
    /// The event an applied action reports: named after the state the user
    /// reached, so a delete that erased at once (window 0) is `user.erased`.
    pub fn of_action(action: Action, to: LifecycleState) -> EventType {
        match (action, to) {
            (_, LifecycleState::Erased) => EventType::UserErased,
            (Action::Lock, _) => EventType::UserLocked,
            (Action::Unlock, _) => EventType::UserUnlocked,
            (Action::Deactivate, _) => EventType::UserDeactivated,
            (Action::Reactivate, _) => EventType::UserReactivated,
            (Action::Delete, _) => EventType::UserDeleted,
            (Action::Restore, _) => EventType::UserRestored,
            (Action::Erase, _) => EventType::UserErased,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<EventType, UnknownEventType> {
        EventType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EventType, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for EventType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(EventType::ALL.iter().map(|t| t.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for EventType {}

/// Who made a change, by id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventActor {
    pub kind: ActorKind,
    pub id: String,
}

/// `user.*`: an applied lifecycle action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserChanged {
    pub action_id: String,
    pub user: String,
    pub action: Action,
    pub from_state: LifecycleState,
    pub to_state: LifecycleState,
    pub actor: EventActor,
    /// The plan's hints to the platform, e.g. `welcome`, `password_reset`.
    pub notify: Vec<String>,
    /// Rows per category and what became of them; ids and counts only.
    pub effects: Effects,
    /// Until when a restore is possible (a delete with a window).
    pub restore_until: Option<i64>,
    pub policy_version: Option<i64>,
    /// Applied by a bulk job.
    pub bulk: bool,
}

/// `escalation.*`: an action queued for support, or its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EscalationChanged {
    pub escalation: String,
    pub user: String,
    pub action: Action,
    /// The team the policy named.
    pub queue: String,
    /// The decision that escalated.
    pub action_id: String,
    /// Who asked (created) or who decided (approved, rejected).
    pub actor: EventActor,
    /// The action that applied an approval.
    pub applied_action_id: Option<String>,
}

/// `bulk.job.completed`, `bulk.job.cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkJobFinished {
    pub job_id: String,
    pub action: Action,
    pub actor_id: String,
    pub total: u64,
    pub applied: u64,
    pub escalated: u64,
    pub denied: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// `policy.activated`: a tenant's active policy version changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyActivated {
    pub activation_id: String,
    pub from_version: Option<i64>,
    pub to_version: i64,
    /// activate, rollback or bootstrap.
    pub kind: crate::deploy::ActivationKind,
    /// The operator key id (or `lethe.toml`).
    pub activated_by: String,
    pub sha256: String,
}

/// One event, before it is written.
#[derive(Debug, Clone)]
pub struct Event {
    pub tenant: String,
    pub event_type: EventType,
    /// The user it is about: its events are delivered in order.
    pub user: Option<String>,
    /// Unix seconds: the change's own time.
    pub at: i64,
    pub data: serde_json::Value,
}

impl Event {
    fn new<T: Serialize>(
        tenant: &str,
        event_type: EventType,
        user: Option<&str>,
        at: i64,
        data: &T,
    ) -> Result<Event, sqlx::Error> {
        Ok(Event {
            tenant: tenant.to_owned(),
            event_type,
            user: user.map(str::to_owned),
            at,
            data: serde_json::to_value(data).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
        })
    }

    /// The event of an applied action; `None` for anything that changed no
    /// state (a denial, an escalation, a dry run).
    pub fn applied(
        report: &ActionReport,
        actor: EventActor,
        bulk: bool,
        at: i64,
    ) -> Result<Option<Event>, sqlx::Error> {
        let Some(to) = report.to_state else {
            return Ok(None);
        };
        if report.dry_run {
            return Ok(None);
        }
        let data = UserChanged {
            action_id: report.action_id.clone(),
            user: report.subject.clone(),
            action: report.action,
            from_state: report.from_state,
            to_state: to,
            actor,
            notify: report.notify.clone(),
            effects: report.effects.clone(),
            restore_until: report.restore_until,
            policy_version: report.policy_version,
            bulk,
        };
        let event_type = EventType::of_action(report.action, to);
        Event::new(&report.tenant, event_type, Some(&report.subject), at, &data).map(Some)
    }

    pub fn escalation(
        tenant: &str,
        event_type: EventType,
        data: &EscalationChanged,
        at: i64,
    ) -> Result<Event, sqlx::Error> {
        Event::new(tenant, event_type, Some(&data.user), at, data)
    }

    pub fn bulk_job(
        tenant: &str,
        event_type: EventType,
        data: &BulkJobFinished,
        at: i64,
    ) -> Result<Event, sqlx::Error> {
        Event::new(tenant, event_type, None, at, data)
    }

    pub fn policy_activated(
        activation: &crate::deploy::Activation,
        sha256: &str,
    ) -> Result<Event, sqlx::Error> {
        let data = PolicyActivated {
            activation_id: activation.id.clone(),
            from_version: activation.from_version,
            to_version: activation.to_version,
            kind: activation.kind,
            activated_by: activation.activated_by.clone(),
            sha256: sha256.to_owned(),
        };
        Event::new(
            &activation.tenant,
            EventType::PolicyActivated,
            None,
            activation.at,
            &data,
        )
    }
}

/// Writes `event` to the outbox and queues a delivery to each of its
/// tenant's endpoints that wants it, on `conn`: call it inside the
/// transaction of the change it reports. Returns the event id.
pub async fn record(conn: &mut AnyConnection, event: &Event) -> Result<String, sqlx::Error> {
    store::record(conn, event).await
}

/// [`record`] for the events of a bulk batch (one tenant, each about a
/// different user), in a few multi-row statements; inside the batch's
/// transaction. Returns the event ids in order.
pub async fn record_many(
    conn: &mut AnyConnection,
    events: &[Event],
) -> Result<Vec<String>, sqlx::Error> {
    store::record_many(conn, events).await
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    InvalidEndpoint(String),
    #[error(transparent)]
    UnknownType(#[from] UnknownEventType),
    #[error("invalid cursor")]
    BadCursor,
    #[error("stored event record is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for EventError {
    fn from(e: sqlx::Error) -> Self {
        EventError::Db(DbError::Sql(e))
    }
}

/// Delivery settings (`[webhooks]` of `lethe.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Run a delivery worker in `lethe serve`.
    pub deliver: bool,
    /// One attempt's time limit.
    pub timeout_secs: u64,
    /// A claimed delivery's lease (longer than an attempt).
    pub lease_secs: u64,
    /// How often an idle worker looks for due deliveries.
    pub poll_ms: u64,
    /// The first retry's delay; each next one doubles, up to `backoff_max_secs`.
    pub backoff_base_secs: u64,
    pub backoff_max_secs: u64,
    /// After this long since the first attempt, a failing delivery is dead.
    pub horizon_secs: u64,
    /// Attempts in flight at once per worker.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            deliver: true,
            timeout_secs: 15,
            lease_secs: 60,
            poll_ms: 500,
            backoff_base_secs: 5,
            backoff_max_secs: 3600,
            horizon_secs: 3 * 24 * 3600,
            concurrency: 8,
        }
    }
}

/// The events capability: the outbox's reads, the endpoints, deliveries.
#[derive(Debug, Clone)]
pub struct Events {
    db: Db,
    settings: WebhookSettings,
}

impl Events {
    pub fn new(db: Db, settings: WebhookSettings) -> Events {
        Events { db, settings }
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }
}
