//! Who may call: one extractor per role, so a handler states its role in
//! its signature and cannot forget the check.
//!
//! | extractor        | who                                   | otherwise |
//! |------------------|---------------------------------------|-----------|
//! | [`TenantReader`] | the tenant of `{t}`, or support       | 404 |
//! | [`TenantActor`]  | the tenant of `{t}` only              | 404, or 403 `tenant-key-required` for support |
//! | [`SupportAgent`] | support                               | 403 `support-key-required` |
//! | [`Operator`]     | an operator key                       | 404 for a tenant key, 403 `operator-key-required` for support |
//!
//! All of them authenticate first (401 `unauthorized` without a valid
//! bearer key). Another tenant's `{t}` answers the same 404 as a tenant
//! that does not exist, so a key cannot probe which tenants there are.
//!
//! They are `FromRequestParts` extractors: axum runs those before the one
//! body extractor ([`super::Body`], which must stay the last argument), so
//! who may call is decided before a byte of the body is read.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::header;
use axum::http::request::Parts;

use super::{AppState, Problem};
use crate::apikeys::{self, Principal};
use crate::error_code::ErrorCode;

/// The authenticated caller, whatever their role. Handlers take one of the
/// role extractors below instead; this is what they are built on.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("missing bearer API key"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Problem::unauthorized("expected `Authorization: Bearer <key>`"))?;
        match apikeys::authenticate(state.db(), &state.inner.keys, secret).await? {
            Some(p) => Ok(Caller(p)),
            None => Err(Problem::unauthorized("unknown or revoked API key")),
        }
    }
}

/// The `{t}` segment of the path. A route without one has no business
/// with a tenant extractor: that is our bug, a 500.
async fn tenant_segment(parts: &mut Parts, state: &AppState) -> Result<String, Problem> {
    let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|r| Problem::coded(ErrorCode::BadRequest, r.body_text()))?;
    params
        .remove("t")
        .ok_or_else(|| Problem::internal("a tenant extractor on a route without `{t}`"))
}

/// May `p` read tenant `t`? The tenant itself, or support for a tenant
/// that exists; anyone else gets the 404 of a missing tenant.
fn may_read(p: &Principal, t: &str, exists: impl Fn(&str) -> bool) -> Result<(), Problem> {
    match p {
        Principal::Tenant(own) if own == t => Ok(()),
        Principal::Support if exists(t) => Ok(()),
        Principal::Tenant(_) | Principal::Support | Principal::Operator(_) => {
            Err(Problem::not_found())
        }
    }
}

/// May `p` act on tenant `t`'s users? Only the tenant itself: support acts
/// through escalations, as a support actor.
fn may_act(p: &Principal, t: &str, exists: impl Fn(&str) -> bool) -> Result<(), Problem> {
    may_read(p, t, exists)?;
    match p {
        Principal::Tenant(_) => Ok(()),
        Principal::Support | Principal::Operator(_) => Err(Problem::coded(
            ErrorCode::TenantKeyRequired,
            "actions are asked by the tenant; support approves escalations",
        )),
    }
}

fn may_support(p: &Principal) -> Result<(), Problem> {
    match p {
        Principal::Support => Ok(()),
        Principal::Tenant(_) | Principal::Operator(_) => Err(Problem::coded(
            ErrorCode::SupportKeyRequired,
            "this endpoint is for support keys",
        )),
    }
}

/// Only operators manage tenants and policies. A tenant key is not told
/// the operator API exists (404, like any path it may not see); support
/// staff are (403).
fn may_operate(p: &Principal) -> Result<String, Problem> {
    match p {
        Principal::Operator(who) => Ok(who.clone()),
        Principal::Support => Err(Problem::coded(
            ErrorCode::OperatorKeyRequired,
            "this endpoint is for operator keys",
        )),
        Principal::Tenant(_) => Err(Problem::not_found()),
    }
}

/// A caller who may read tenant `{t}` (its own key, or support); holds the
/// tenant id.
#[derive(Debug, Clone)]
pub struct TenantReader(pub String);

impl FromRequestParts<AppState> for TenantReader {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        let t = tenant_segment(parts, state).await?;
        may_read(&p, &t, |t| state.inner.policies.knows(t))?;
        Ok(TenantReader(t))
    }
}

/// A caller who may act on tenant `{t}`'s users (that tenant's key only);
/// holds the tenant id.
#[derive(Debug, Clone)]
pub struct TenantActor(pub String);

impl FromRequestParts<AppState> for TenantActor {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        let t = tenant_segment(parts, state).await?;
        may_act(&p, &t, |t| state.inner.policies.knows(t))?;
        Ok(TenantActor(t))
    }
}

/// A support key: works the escalation queue of every tenant.
#[derive(Debug, Clone, Copy)]
pub struct SupportAgent(());

impl FromRequestParts<AppState> for SupportAgent {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        may_support(&p)?;
        Ok(SupportAgent(()))
    }
}

/// An operator key: manages tenants, policy versions and activation (and,
/// later, webhook endpoints and SCIM tokens; `../shared/design.md`,
/// "Roles"). Holds the key's id, which deployment records name.
#[derive(Debug, Clone)]
pub struct Operator(pub String);

impl FromRequestParts<AppState> for Operator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        Ok(Operator(may_operate(&p)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn code(r: Result<(), Problem>) -> Option<(StatusCode, ErrorCode)> {
        r.err()
            .map(|p| (StatusCode::from_u16(p.status()).unwrap(), p.0.code))
    }

    #[test]
    fn a_tenant_reads_and_acts_on_itself_only() {
        let me = Principal::Tenant("t1".into());
        let exists = |t: &str| t == "t1" || t == "t2";
        assert_eq!(code(may_read(&me, "t1", exists)), None);
        assert_eq!(code(may_act(&me, "t1", exists)), None);
        let not_found = Some((StatusCode::NOT_FOUND, ErrorCode::NotFound));
        assert_eq!(code(may_read(&me, "t2", exists)), not_found);
        assert_eq!(code(may_act(&me, "t2", exists)), not_found);
        assert_eq!(code(may_read(&me, "nope", exists)), not_found);
        assert_eq!(
            code(may_support(&me)),
            Some((StatusCode::FORBIDDEN, ErrorCode::SupportKeyRequired))
        );
    }

    #[test]
    fn support_reads_existing_tenants_and_never_acts() {
        let exists = |t: &str| t == "t1";
        let s = Principal::Support;
        assert_eq!(code(may_read(&s, "t1", exists)), None);
        assert_eq!(code(may_support(&s)), None);
        assert_eq!(
            code(may_act(&s, "t1", exists)),
            Some((StatusCode::FORBIDDEN, ErrorCode::TenantKeyRequired))
        );
        // A tenant that does not exist is a 404 before it is a 403.
        assert_eq!(
            code(may_act(&s, "nope", exists)),
            Some((StatusCode::NOT_FOUND, ErrorCode::NotFound))
        );
    }

    #[test]
    fn only_operators_operate_and_they_read_no_tenant() {
        let op = Principal::Operator("key-1".into());
        assert_eq!(may_operate(&op).ok().as_deref(), Some("key-1"));
        assert_eq!(
            code(may_operate(&Principal::Support).map(drop)),
            Some((StatusCode::FORBIDDEN, ErrorCode::OperatorKeyRequired))
        );
        assert_eq!(
            code(may_operate(&Principal::Tenant("t1".into())).map(drop)),
            Some((StatusCode::NOT_FOUND, ErrorCode::NotFound))
        );
        let exists = |t: &str| t == "t1";
        let not_found = Some((StatusCode::NOT_FOUND, ErrorCode::NotFound));
        assert_eq!(code(may_read(&op, "t1", exists)), not_found);
        assert_eq!(
            code(may_support(&op)),
            Some((StatusCode::FORBIDDEN, ErrorCode::SupportKeyRequired))
        );
    }
}
