//! Preview a selection, and turn a confirmed preview into a job.
//!
//! Both run the same evaluation: resolve the selection to the tenant's
//! users, read their contexts set-based, decide them in one policy session
//! and count outcomes, reasons and effects. Execute evaluates again, so a
//! job is only created for exactly what the admin saw and confirmed.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::status::OutcomeKind;
use super::{
    unix_now, Bulk, BulkError, EffectEstimate, ExecuteRequest, Job, OutcomeCounts, Preview,
    PreviewRequest, ReasonCount, SampleUser,
};
use crate::contract::{Disposition, Outcome};
use crate::directory::UserSummary;
use crate::error_code::ErrorCode;
use crate::executor::{ActorRef, Ask, Decider, Refusal};
use crate::plan;

/// Matched users shown in a preview.
const SAMPLE: usize = 20;
/// Requests decided per policy session during an evaluation.
const DECIDE_CHUNK: usize = 500;

/// A selection resolved and decided.
struct Evaluation {
    /// Matched users in key order.
    users: Vec<String>,
    unknown: Vec<String>,
    digest: String,
    outcomes: OutcomeCounts,
    reasons: Vec<ReasonCount>,
    effects: Vec<EffectEstimate>,
    sample: Vec<SampleUser>,
}

/// What the policy (or the host, before it) said about one user.
#[derive(Debug, Clone)]
struct Said {
    outcome: OutcomeKind,
    /// The deny code, the escalation queue, or the host's error code.
    code: Option<String>,
    message: Option<String>,
}

impl Said {
    fn new(outcome: OutcomeKind, code: Option<String>, message: Option<String>) -> Said {
        Said {
            outcome,
            code,
            message,
        }
    }

    /// The host refused or failed with one of its own codes.
    fn host(outcome: OutcomeKind, code: ErrorCode, message: Option<String>) -> Said {
        Said::new(outcome, Some(code.as_str().to_owned()), message)
    }
}

impl Bulk {
    /// What `req` would do to the tenant's users; stored so it can be
    /// executed by id until it expires. No user changes.
    #[tracing::instrument(name = "bulk.preview", skip_all, fields(tenant, action = %req.action))]
    pub async fn preview<D: Decider>(
        &self,
        decider: &D,
        tenant: &str,
        req: &PreviewRequest,
    ) -> Result<Preview, BulkError> {
        let now = unix_now();
        let eval = self.evaluate(decider, tenant, req, now).await?;
        let preview = self.store_preview(tenant, req, &eval, now).await?;
        tracing::info!(preview = %preview.preview_id, matched = preview.matched, allow = preview.outcomes.allow, "bulk preview");
        Ok(preview)
    }

    /// A stored preview of the tenant, as it was answered (the console
    /// shows it again after a wrong typed count).
    pub async fn stored_preview(
        &self,
        tenant: &str,
        preview_id: &str,
    ) -> Result<Preview, BulkError> {
        Ok(self.store().preview(tenant, preview_id).await?.preview)
    }

    /// Execute a preview: check the typed count, re-evaluate the selection
    /// (refusing when it changed), then queue the job with one pending item
    /// per matched user.
    #[tracing::instrument(name = "bulk.execute", skip_all, fields(tenant, preview = %preview_id))]
    pub async fn execute<D: Decider>(
        &self,
        decider: &D,
        tenant: &str,
        preview_id: &str,
        body: &ExecuteRequest,
    ) -> Result<Job, BulkError> {
        let now = unix_now();
        let stored = self.store().preview(tenant, preview_id).await?;
        let (digest, expires_at, old) = (stored.digest, stored.expires_at, stored.preview);
        if let Some(job_id) = stored.job_id {
            return Err(BulkError::Used { job_id });
        }
        if now > expires_at {
            return Err(BulkError::Expired { expires_at });
        }
        let expected = stored.confirm_count;
        if body.confirm_count != expected {
            return Err(BulkError::Mismatch {
                expected,
                got: body.confirm_count,
            });
        }
        let req = stored.request;
        let eval = self.evaluate(decider, tenant, &req, now).await?;
        if eval.digest != digest
            || eval.outcomes != old.outcomes
            || eval.reasons != old.reasons
            || eval.unknown != old.unknown_user_ids
        {
            let fresh = self.store_preview(tenant, &req, &eval, now).await?;
            tracing::info!(stale = %preview_id, fresh = %fresh.preview_id, "bulk preview is stale");
            return Err(BulkError::Stale(Box::new(fresh)));
        }
        let job_id = self
            .store()
            .create_job(tenant, preview_id, &req, &eval.users, now)
            .await?;
        tracing::info!(job = %job_id, %tenant, total = eval.users.len(), "bulk job queued");
        let job = self.job(tenant, &job_id).await?;
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Resolve, read and decide a selection.
    async fn evaluate<D: Decider>(
        &self,
        decider: &D,
        tenant: &str,
        req: &PreviewRequest,
        now: i64,
    ) -> Result<Evaluation, BulkError> {
        if req.actor_id.trim().is_empty() {
            return Err(BulkError::InvalidSelection("`actor_id` is required".into()));
        }
        let max = self.settings().max_users;
        let (summaries, unknown) = match (&req.filter, &req.user_ids) {
            (Some(f), None) => {
                let f = PreviewRequest::user_filter(f)?;
                (self.inner.directory.matching(tenant, &f).await?, Vec::new())
            }
            (None, Some(ids)) => {
                if ids.is_empty() {
                    return Err(BulkError::InvalidSelection("`user_ids` is empty".into()));
                }
                if ids.len() > max {
                    return Err(BulkError::InvalidSelection(format!(
                        "{} user ids given; at most {max}",
                        ids.len()
                    )));
                }
                let wanted: Vec<String> = ids
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let found = self.inner.directory.some(tenant, &wanted).await?;
                let known: BTreeSet<&str> = found.iter().map(|u| u.id.as_str()).collect();
                let unknown = wanted
                    .iter()
                    .filter(|id| !known.contains(id.as_str()))
                    .cloned()
                    .collect();
                (found, unknown)
            }
            _ => {
                return Err(BulkError::InvalidSelection(
                    "give exactly one of `filter` and `user_ids`".into(),
                ))
            }
        };
        if summaries.len() > max {
            return Err(BulkError::InvalidSelection(format!(
                "the selection matches {} users; at most {max} per job",
                summaries.len()
            )));
        }
        let users: Vec<String> = summaries.iter().map(|u| u.id.clone()).collect();
        let ask = Ask {
            tenant: tenant.to_owned(),
            action: req.action,
            actor: ActorRef::TenantUser(req.actor_id.clone()),
            transfer_to: req.transfer_to.clone(),
            reason: req.reason.clone(),
            now,
        };
        let map = self.executor().map();
        let mut outcomes = OutcomeCounts::default();
        let mut reasons: BTreeMap<(OutcomeKind, String), u64> = BTreeMap::new();
        let mut effects: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        let mut said: Vec<Said> = Vec::with_capacity(users.len());
        for chunk in users.chunks(DECIDE_CHUNK) {
            let prepared = self.executor().contexts(&ask, chunk).await?;
            let requests: Vec<_> = prepared
                .iter()
                .filter_map(|p| p.request.as_ref().ok().cloned())
                .collect();
            let mut verdicts = decider.decide_batch(tenant, &requests).await.into_iter();
            for p in &prepared {
                let one: Said = match &p.request {
                    Err(Refusal { code, message }) => {
                        Said::host(OutcomeKind::Deny, *code, Some(message.clone()))
                    }
                    Ok(request) => match verdicts.next() {
                        None => Said::host(OutcomeKind::Fault, ErrorCode::PolicyFault, None),
                        Some(Err(fault)) => Said::host(
                            OutcomeKind::Fault,
                            ErrorCode::PolicyFault,
                            Some(format!("{}: {fault}", fault.code())),
                        ),
                        Some(Ok(v)) => match &v.decision.outcome {
                            Outcome::Allow { plan } => match plan::check(map, req.action, plan) {
                                Err(e) => Said::host(
                                    OutcomeKind::Fault,
                                    ErrorCode::PlanRefused,
                                    Some(e.to_string()),
                                ),
                                Ok(()) => {
                                    for h in &request.holdings {
                                        let cp = plan
                                            .categories
                                            .iter()
                                            .find(|c| c.category == h.category);
                                        let disp = cp.map_or(Disposition::Keep, |c| c.disposition);
                                        let only_open = cp.is_some_and(|c| c.only_open);
                                        let rows = if disp == Disposition::Transfer && only_open {
                                            h.open
                                        } else {
                                            h.total
                                        };
                                        if rows > 0 {
                                            *effects
                                                .entry((h.category.clone(), disposition_name(disp)))
                                                .or_default() += rows;
                                        }
                                    }
                                    Said::new(OutcomeKind::Allow, None, None)
                                }
                            },
                            Outcome::Escalate { queue, reason } => Said::new(
                                OutcomeKind::Escalate,
                                Some(queue.clone()),
                                Some(reason.clone()),
                            ),
                            Outcome::Deny { code, message } => Said::new(
                                OutcomeKind::Deny,
                                Some(code.clone()),
                                Some(message.clone()),
                            ),
                        },
                    },
                };
                match one.outcome {
                    OutcomeKind::Allow => outcomes.allow += 1,
                    OutcomeKind::Escalate => outcomes.escalate += 1,
                    OutcomeKind::Deny => outcomes.deny += 1,
                    OutcomeKind::Fault => outcomes.fault += 1,
                }
                if let Some(code) = &one.code {
                    *reasons.entry((one.outcome, code.clone())).or_default() += 1;
                }
                said.push(one);
            }
        }
        let sample = summaries
            .iter()
            .zip(&said)
            .take(SAMPLE)
            .map(|(u, s)| sample_user(u, s))
            .collect();
        let mut h = Sha256::new();
        let mut sorted = users.clone();
        sorted.sort();
        for id in &sorted {
            h.update(id.as_bytes());
            h.update([0u8]);
        }
        Ok(Evaluation {
            users,
            unknown,
            digest: hex::encode(h.finalize()),
            outcomes,
            reasons: reasons
                .into_iter()
                .map(|((outcome, code), count)| ReasonCount {
                    outcome,
                    code,
                    count,
                })
                .collect(),
            effects: effects
                .into_iter()
                .map(|((category, d), rows)| EffectEstimate {
                    category,
                    disposition: d.to_owned(),
                    rows,
                })
                .collect(),
            sample,
        })
    }

    async fn store_preview(
        &self,
        tenant: &str,
        req: &PreviewRequest,
        eval: &Evaluation,
        now: i64,
    ) -> Result<Preview, BulkError> {
        let preview = Preview {
            preview_id: format!("bp-{}", hex::encode(rand::random::<[u8; 12]>())),
            tenant: tenant.to_owned(),
            action: req.action,
            actor_id: req.actor_id.clone(),
            matched: eval.users.len() as u64,
            confirm_count: eval.outcomes.allow,
            outcomes: eval.outcomes.clone(),
            reasons: eval.reasons.clone(),
            effects: eval.effects.clone(),
            unknown_user_ids: eval.unknown.clone(),
            sample: eval.sample.clone(),
            created_at: now,
            expires_at: now + self.settings().preview_ttl_secs,
        };
        self.store()
            .save_preview(&preview, req, &eval.digest)
            .await?;
        Ok(preview)
    }
}

fn sample_user(u: &UserSummary, s: &Said) -> SampleUser {
    SampleUser {
        user_id: u.id.clone(),
        display_name: u.display_name.clone(),
        state: u.state,
        roles: u.roles.clone(),
        last_login_at: u.last_login_at,
        outcome: s.outcome,
        code: s.code.clone(),
        message: s.message.clone(),
    }
}

fn disposition_name(d: Disposition) -> &'static str {
    match d {
        Disposition::Keep => "keep",
        Disposition::Cascade => "cascade",
        Disposition::Anonymise => "anonymise",
        Disposition::Transfer => "transfer",
    }
}
