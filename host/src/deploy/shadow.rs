//! Shadow evaluation, the operator's side: which version shadows a tenant's
//! active one, and what the replicas found. The evaluation itself runs in
//! each replica (`tenancy::shadow`), off the request path.

use serde::{Deserialize, Serialize};

use super::{store, DeployError, Deployments, VersionStatus};
use crate::db::DbError;

/// Live decisions a shadow saw, per outcome of the comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShadowCounts {
    /// Compared with the live decision (agreed + disagreed + faults).
    pub evaluated: i64,
    pub agreed: i64,
    pub disagreed: i64,
    /// The shadow could not decide.
    pub faults: i64,
    /// Not evaluated: the shadow's queue was full (a real decision never
    /// waits for the shadow).
    pub dropped: i64,
}

/// One live decision the shadow decided differently.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Disagreement {
    pub id: String,
    pub tenant: String,
    /// The shadow version.
    pub version: i64,
    /// The version that decided live.
    pub live_version: Option<i64>,
    pub subject: String,
    #[schema(value_type = crate::contract::Action)]
    pub action: String,
    #[schema(value_type = crate::contract::Request)]
    pub request: serde_json::Value,
    /// The live decision.
    #[schema(value_type = crate::contract::Decision)]
    pub live: serde_json::Value,
    #[schema(value_type = ShadowAnswer)]
    pub shadow: serde_json::Value,
    pub at: i64,
}

/// What the shadow version answered: a decision, or the fault that kept
/// it from deciding.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ShadowAnswer {
    Decided(crate::contract::Decision),
    Fault {
        /// The fault's code, e.g. `fuel-exhausted`.
        fault: String,
        message: String,
    },
}

/// A tenant's shadow and what every replica counted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShadowStatus {
    pub tenant: String,
    pub version: i64,
    pub started_at: i64,
    pub started_by: String,
    #[serde(flatten)]
    pub counts: ShadowCounts,
    /// The latest 20.
    pub disagreements: Vec<Disagreement>,
}

impl Deployments {
    /// Makes `version` the tenant's shadow (replacing any), or stops
    /// shadowing (`None`). Every replica follows like an activation.
    #[tracing::instrument(name = "deploy.shadow", skip(self, by))]
    pub async fn set_shadow(
        &self,
        tenant: &str,
        version: Option<i64>,
        by: &str,
        now: i64,
    ) -> Result<(), DeployError> {
        let mut tx = self.db.begin_write().await?;
        store::tenant(&mut tx, &self.db, tenant, crate::db::RowLock::Update)
            .await?
            .ok_or(DeployError::NoTenant)?;
        if let Some(v) = version {
            let found = store::version(&mut tx, tenant, v)
                .await?
                .ok_or(DeployError::NoVersion(v))?;
            if found.status == VersionStatus::Rejected {
                return Err(DeployError::VersionRejected(v));
            }
        }
        store::set_shadow(&mut tx, tenant, version, by, now).await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    pub async fn shadow_status(&self, tenant: &str) -> Result<ShadowStatus, DeployError> {
        self.tenant(tenant).await?;
        let (version, started_at, started_by) = store::shadow(&self.db, tenant)
            .await?
            .ok_or(DeployError::NoShadow)?;
        Ok(ShadowStatus {
            tenant: tenant.to_owned(),
            version,
            started_at,
            started_by,
            counts: store::shadow_counts(&self.db, tenant, version).await?,
            disagreements: store::disagreements(&self.db, tenant, version, 20).await?,
        })
    }
}
