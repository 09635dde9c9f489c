//! The HTTP API of `lethe serve`: tenants act on their users, support works
//! the escalation queue, operators deploy tenants' policies ([`admin`]).
//!
//! Handlers only translate: HTTP in, a call to the [`Executor`], the
//! [`Directory`], the escalation queue or the evidence, HTTP out. The
//! policy runtime knows nothing of HTTP, and nothing here knows of
//! WebAssembly beyond the [`TenantPolicies`] handle it passes on.
//!
//! Authentication is a bearer API key ([`crate::apikeys`]). A tenant key
//! reaches its own tenant only: every other tenant's path answers 404,
//! exactly like a tenant that does not exist. Every handler names the role
//! it serves with an extractor of [`auth`] (`TenantReader`, `TenantActor`,
//! `SupportAgent`, `Operator`), checked before the body is read.

mod admin;
pub mod auth;
pub(crate) mod bulk;
mod events;
mod handlers;
pub mod openapi;
pub mod problem;
mod scim;

use crate::clock::{unix_millis, unix_now};
use crate::error_code::ErrorCode;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use crate::apikeys::StaticKeys;
use crate::bulk::{Bulk, BulkSettings};
use crate::console::{ConsoleSettings, Sessions};
use crate::deploy::Deployments;
use crate::directory::Directory;
use crate::events::{Events, WebhookSettings};
use crate::executor::Executor;
use crate::lease::{Lease, Leases};
use crate::scim::Scim;
use crate::tenancy::TenantPolicies;

pub use auth::{Caller, Operator, SupportAgent, TenantActor, TenantReader};
pub use openapi::ApiDoc;
pub use problem::Problem;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Executor,
    policies: TenantPolicies,
    directory: Directory,
    bulk: Bulk,
    events: Events,
    scim: Scim,
    sessions: Sessions,
    deployments: Deployments,
    keys: StaticKeys,
    /// Tenants the configuration declares; `/readyz` checks each has a
    /// policy loaded.
    tenants: Vec<String>,
}

/// The settings of the capabilities `AppState` holds (`[bulk]`,
/// `[webhooks]`, `[console]`).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub bulk: BulkSettings,
    pub webhooks: WebhookSettings,
    pub console: ConsoleSettings,
}

/// Server settings that are not state.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub body_limit_bytes: usize,
    /// `None`: no sweep inside the server.
    pub sweep_interval: Option<Duration>,
    /// Run a bulk-job worker inside the server (every host can; jobs are
    /// leased, so several workers never apply one user twice).
    pub bulk_worker: bool,
    /// Largest policy component an operator may upload.
    pub upload_limit_bytes: usize,
}

impl AppState {
    pub fn new(
        executor: Executor,
        policies: TenantPolicies,
        deployments: Deployments,
        keys: StaticKeys,
        tenants: Vec<String>,
        settings: Settings,
    ) -> AppState {
        let directory = Directory::new(executor.platform().clone());
        let bulk = Bulk::new(executor.clone(), settings.bulk);
        let events = Events::new(executor.db().clone(), settings.webhooks);
        let scim = Scim::new(executor.clone());
        let sessions = Sessions::new(executor.db().clone(), keys.clone(), settings.console);
        AppState {
            inner: Arc::new(Inner {
                executor,
                policies,
                directory,
                bulk,
                events,
                scim,
                sessions,
                deployments,
                keys,
                tenants,
            }),
        }
    }

    pub(crate) fn executor(&self) -> &Executor {
        &self.inner.executor
    }
    pub(crate) fn db(&self) -> &crate::db::Db {
        self.inner.executor.db()
    }
    pub(crate) fn bulk(&self) -> &Bulk {
        &self.inner.bulk
    }
    pub(crate) fn events(&self) -> &Events {
        &self.inner.events
    }
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }
    pub(crate) fn scim(&self) -> &Scim {
        &self.inner.scim
    }
    pub(crate) fn policies(&self) -> &TenantPolicies {
        &self.inner.policies
    }
    pub(crate) fn directory(&self) -> &Directory {
        &self.inner.directory
    }
    pub(crate) fn deployments(&self) -> &Deployments {
        &self.inner.deployments
    }

    /// After an operator changed tenants or activations through this
    /// replica: serve the change here before answering (the others follow
    /// within `tenancy::sync::POLL`).
    pub(crate) async fn follow_activations(&self) {
        if let Err(e) = crate::tenancy::sync::sync(&self.inner.policies).await {
            tracing::warn!(error = %e, "cannot re-read the active policy versions");
        }
    }
}

/// `Json` whose rejections are problem details (malformed JSON 400, wrong
/// shape 422, over the body limit 413, not JSON 415), for a body that must
/// be a JSON object.
///
/// Every request body of this API is an object, but serde also reads a
/// struct from an array of its fields in declaration order: without the
/// check `[null]` was a valid redelivery request (Schemathesis, ST201).
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let axum::Json(raw) =
            axum::Json::<Box<serde_json::value::RawValue>>::from_request(req, state).await?;
        if !raw.get().trim_start().starts_with('{') {
            return Err(Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidInput,
                "the request body must be a JSON object",
            ));
        }
        let axum::Json(v) = axum::Json::<T>::from_bytes(raw.get().as_bytes())?;
        Ok(Body(v))
    }
}

/// `Query` whose rejections are problem details.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Params(v))
    }
}

/// The whole API.
pub fn router(state: AppState, options: &ServeOptions) -> Router {
    use handlers::*;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics))
        .route("/v1/tenants/{t}/users", get(list_users))
        .route("/v1/tenants/{t}/users/{id}", get(user_detail))
        .route("/v1/tenants/{t}/users/{id}/actions", post(act))
        .route("/v1/tenants/{t}/escalations", get(tenant_escalations))
        .route("/v1/tenants/{t}/audit", get(audit))
        .route("/v1/tenants/{t}/decisions/{id}", get(decision))
        .route("/v1/tenants/{t}/bulk/preview", post(bulk::preview))
        .route(
            "/v1/tenants/{t}/bulk/{preview}/execute",
            post(bulk::execute),
        )
        .route("/v1/tenants/{t}/jobs", get(bulk::jobs))
        .route("/v1/tenants/{t}/jobs/{id}", get(bulk::job))
        .route("/v1/tenants/{t}/jobs/{id}/items", get(bulk::items))
        .route("/v1/tenants/{t}/jobs/{id}/events", get(bulk::events))
        .route("/v1/tenants/{t}/jobs/{id}/cancel", post(bulk::cancel))
        .route("/v1/tenants/{t}/events", get(events::list_events))
        .route("/v1/tenants/{t}/events/{id}", get(events::event))
        .route(
            "/v1/tenants/{t}/events/{id}/redeliver",
            post(events::redeliver),
        )
        .route("/v1/tenants/{t}/scim/requests", get(scim::requests))
        .route("/v1/escalations", get(support_escalations))
        .route("/v1/escalations/{id}", get(escalation))
        .route("/v1/escalations/{id}/approve", post(approve))
        .route("/v1/escalations/{id}/reject", post(reject))
        .route(
            "/v1/admin/tenants",
            get(admin::tenants).post(admin::create_tenant),
        )
        .route(
            "/v1/admin/tenants/{t}/versions",
            get(admin::versions)
                .post(admin::upload)
                .layer(DefaultBodyLimit::max(options.upload_limit_bytes)),
        )
        .route("/v1/admin/tenants/{t}/versions/{n}", get(admin::version))
        .route("/v1/admin/tenants/{t}/activate", post(admin::activate))
        .route("/v1/admin/tenants/{t}/rollback", post(admin::rollback))
        .route("/v1/admin/tenants/{t}/policy", get(admin::policy_status))
        .route(
            "/v1/admin/tenants/{t}/versions/{n}/replay",
            post(admin::replay),
        )
        .route("/v1/admin/tenants/{t}/replays", get(admin::replays))
        .route(
            "/v1/admin/tenants/{t}/shadow",
            get(admin::shadow_status)
                .put(admin::start_shadow)
                .delete(admin::stop_shadow),
        )
        .route(
            "/v1/admin/tenants/{t}/replays/{id}",
            get(admin::replay_report),
        )
        .route(
            "/v1/admin/tenants/{t}/webhooks",
            get(events::webhooks).post(events::create_webhook),
        )
        .route(
            "/v1/admin/tenants/{t}/webhooks/{id}",
            get(events::webhook).patch(events::update_webhook),
        )
        .route(
            "/v1/admin/tenants/{t}/webhooks/{id}/rotate-secret",
            post(events::rotate_webhook_secret),
        )
        .route(
            "/v1/admin/tenants/{t}/webhooks/{id}/ping",
            post(events::ping_webhook),
        )
        .route(
            "/v1/admin/tenants/{t}/scim",
            get(scim::settings).put(scim::set_settings),
        )
        .route(
            "/v1/admin/tenants/{t}/scim/tokens",
            get(scim::tokens).post(scim::create_token),
        )
        .route(
            "/v1/admin/tenants/{t}/scim/tokens/{id}",
            axum::routing::delete(scim::revoke_token),
        )
        .nest("/scim/v2/{t}", scim::router())
        .nest(
            "/console",
            crate::console::router(options.upload_limit_bytes),
        )
        .fallback(|| async { Problem::not_found() })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "method not allowed on this path",
            )
        })
        .layer(DefaultBodyLimit::max(options.body_limit_bytes))
        .layer(axum::middleware::from_fn(
            crate::telemetry::request::middleware,
        ))
        .with_state(state)
}

/// Serve on `listener` until `shutdown` resolves, running the window-expiry
/// sweep every `options.sweep_interval` (once per interval across every
/// replica on the database: see [`sweep_loop`]). In-flight requests finish before
/// this returns (graceful shutdown), and the sweep stops between users.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Recording starts with the server, so /metrics counts from the start.
    let _ = crate::telemetry::prometheus();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let upkeep = tokio::spawn(crate::telemetry::upkeep(stop_rx.clone()));
    let sweeper = options
        .sweep_interval
        .map(|every| tokio::spawn(sweep_loop(state.clone(), every, stop_rx.clone())));
    let follower = tokio::spawn(crate::tenancy::sync::follow(
        state.inner.policies.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(crate::tenancy::sync::warm_up(state.inner.policies.clone()));
    let deliverer = state.events().settings().deliver.then(|| {
        tokio::spawn(crate::events::delivery::run(
            state.events().clone(),
            stop_rx.clone(),
        ))
    });
    let worker = options.bulk_worker.then(|| {
        tokio::spawn(crate::bulk::run_worker(
            state.bulk().clone(),
            state.inner.policies.clone(),
            stop_rx,
        ))
    });
    let app = router(state, &options);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_tx.send(true);
    if let Some(handle) = sweeper {
        let _ = handle.await;
    }
    if let Some(handle) = worker {
        let _ = handle.await;
    }
    if let Some(handle) = deliverer {
        let _ = handle.await;
    }
    let _ = follower.await;
    let _ = upkeep.await;
    result
}

/// Erase deleted users whose window has passed, every `every`, until told
/// to stop. Each run goes through every tenant's policy as the system actor.
///
/// Every replica runs this loop, but the cluster sweeps once per interval:
/// at each tick a replica takes the [`Lease::Sweep`] lease for one interval
/// and sweeps only if it won; the others skip that tick. The winner takes
/// it again at its next tick (a holder may), so the sweep stays on one
/// replica while it lives and moves to another within an interval of its
/// death. A sweep longer than the interval renews the lease as it goes, so
/// a second replica does not start on the same users. Sweeping twice would
/// be harmless (an erased user cannot be erased again) but would run every
/// due user's erase, and its policy decision, once per replica.
async fn sweep_loop(
    state: AppState,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let leases = Leases::new(state.db().clone());
    let me = state.inner.policies.replica().map_or_else(
        || {
            format!(
                "sweeper-{}-{}",
                std::process::id(),
                hex::encode(rand::random::<[u8; 4]>())
            )
        },
        str::to_owned,
    );
    crate::telemetry::sweep_loop_started();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match leases.take(Lease::Sweep, &me, unix_millis(), every).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::trace!("window-expiry sweep: another replica holds this interval");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "window-expiry sweep: cannot take the sweep lease");
                continue;
            }
        }
        crate::telemetry::sweep_ran();
        let sweep = state.executor().sweep(&state.inner.policies, unix_now());
        tokio::pin!(sweep);
        let half = (every / 2).max(Duration::from_millis(100));
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
        let result = loop {
            tokio::select! {
                result = &mut sweep => break result,
                _ = renew.tick() => {
                    match leases.renew(Lease::Sweep, &me, unix_millis(), every).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(
                            "window-expiry sweep: the lease passed to another replica mid-sweep"
                        ),
                        Err(e) => tracing::warn!(error = %e, "window-expiry sweep: cannot renew the lease"),
                    }
                }
            }
        };
        match result {
            Ok(items) if !items.is_empty() => {
                let erased = items.iter().filter(|i| i.result.is_ok()).count();
                tracing::info!(due = items.len(), erased, "window-expiry sweep");
            }
            Ok(_) => tracing::debug!("window-expiry sweep: nothing due"),
            Err(e) => tracing::warn!(error = %e, "window-expiry sweep failed"),
        }
    }
}
