//! Plan validation: what the host checks in a policy's plan before writing.
//!
//! A policy is tenant code; the data map's guards are the operator's. A plan
//! naming an unknown category, breaking a guard, touching data on an action
//! that must leave data alone, or transferring to an invalid user is refused
//! here, before any write, so the policy cannot override the operator.

use std::collections::BTreeSet;

use crate::contract::{Action, Disposition, LifecycleState, Plan};
use crate::datamap::{cascade_order, DataMap, EdgeKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan names unknown category `{0}`")]
    UnknownCategory(String),
    #[error("the plan names category `{0}` twice")]
    DuplicateCategory(String),
    #[error("guard: `{table}` is keep-only, so category `{category}` cannot be {disposition:?}")]
    GuardViolated {
        category: String,
        table: String,
        disposition: Disposition,
    },
    #[error("{action} leaves data untouched, but the plan gives `{category}` disposition {disposition:?}")]
    DataChangeNotAllowed {
        action: Action,
        category: String,
        disposition: Disposition,
    },
    #[error("category `{0}` is transferred but the plan names no transfer target")]
    MissingTransferTarget(String),
    #[error("transfer target `{0}` is not a user of this tenant")]
    TargetUnknown(String),
    #[error("transfer target `{user}` is {state}, not active")]
    TargetNotActive { user: String, state: LifecycleState },
    #[error("transfer target is the subject `{0}`")]
    TargetIsSubject(String),
    #[error("transfer target is the actor, but the actor is not a user of this tenant")]
    ActorNotAUser,
    #[error("no active user holds role `{0}`")]
    NoUserWithRole(String),
}

impl PlanError {
    /// The plan is fine but its transfer target is not a valid one: the
    /// caller's mistake (`invalid-transfer-target`), not the policy's.
    pub fn is_target_error(&self) -> bool {
        matches!(
            self,
            PlanError::TargetUnknown(_)
                | PlanError::TargetNotActive { .. }
                | PlanError::TargetIsSubject(_)
                | PlanError::ActorNotAUser
                | PlanError::NoUserWithRole(_)
        )
    }
}

/// Check everything in `plan` that needs no database: categories, guards and
/// which actions may change data at all.
pub fn check(map: &DataMap, action: Action, plan: &Plan) -> Result<(), PlanError> {
    let mut seen = BTreeSet::new();
    let data_action = matches!(action, Action::Deactivate | Action::Delete | Action::Erase);
    for cp in &plan.categories {
        let Some(category) = map.category(&cp.category) else {
            return Err(PlanError::UnknownCategory(cp.category.clone()));
        };
        if !seen.insert(cp.category.as_str()) {
            return Err(PlanError::DuplicateCategory(cp.category.clone()));
        }
        if cp.disposition == Disposition::Keep {
            continue;
        }
        if !data_action {
            return Err(PlanError::DataChangeNotAllowed {
                action,
                category: cp.category.clone(),
                disposition: cp.disposition,
            });
        }
        // The tables this disposition writes to.
        let mut touched = vec![category.table.as_str()];
        if cp.disposition == Disposition::Cascade {
            for path in cascade_order(category) {
                if let Some(edge) = path.last() {
                    touched.push(edge.table.as_str());
                    debug_assert!(edge.edge == EdgeKind::Deep || edge.children.is_empty());
                }
            }
        }
        if let Some(table) = touched.into_iter().find(|t| map.is_kept(t)) {
            return Err(PlanError::GuardViolated {
                category: cp.category.clone(),
                table: table.to_owned(),
                disposition: cp.disposition,
            });
        }
        if cp.disposition == Disposition::Transfer && plan.transfer_target.is_none() {
            return Err(PlanError::MissingTransferTarget(cp.category.clone()));
        }
    }
    Ok(())
}

/// Whether the plan transfers anything (and so needs a resolved target).
pub fn transfers(plan: &Plan) -> bool {
    plan.categories
        .iter()
        .any(|c| c.disposition == Disposition::Transfer)
}

/// What the database says about a resolved transfer target.
#[derive(Debug, Clone)]
pub struct TargetFacts {
    pub id: String,
    /// `None` when no user of the subject's tenant has this id.
    pub state: Option<LifecycleState>,
}

/// A transfer target must be an active user of the same tenant, not the
/// subject (the facts are looked up in the subject's tenant only).
pub fn check_target(target: &TargetFacts, subject: &str) -> Result<(), PlanError> {
    if target.id == subject {
        return Err(PlanError::TargetIsSubject(target.id.clone()));
    }
    match target.state {
        None => Err(PlanError::TargetUnknown(target.id.clone())),
        Some(LifecycleState::Active) => Ok(()),
        Some(state) => Err(PlanError::TargetNotActive {
            user: target.id.clone(),
            state,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{CategoryPlan, ProfilePlan, References, TransferTarget};

    const DEMO: &str = include_str!("../../examples/demo/datamap.toml");

    fn plan(cats: &[(&str, Disposition)], target: Option<TransferTarget>) -> Plan {
        Plan {
            categories: cats
                .iter()
                .map(|(c, d)| CategoryPlan {
                    category: (*c).into(),
                    disposition: *d,
                    only_open: false,
                })
                .collect(),
            transfer_target: target,
            profile: ProfilePlan::Keep,
            restore_window_days: 30,
            references: References::Keep,
            notify: vec![],
        }
    }

    #[test]
    fn refusals() {
        let map = DataMap::parse(DEMO).unwrap();
        use Disposition::*;
        assert_eq!(
            check(&map, Action::Delete, &plan(&[("dealz", Cascade)], None)),
            Err(PlanError::UnknownCategory("dealz".into()))
        );
        // The demo map keeps billing as a guard only; an operator who also
        // exposes it as a category still cannot let a plan change it.
        let billing_map = DataMap::parse(&format!(
            "{DEMO}\n[[category]]\nname = \"billing\"\ntable = \"billing_seats\"\nowner = \"user_id\"\n"
        ))
        .unwrap();
        assert!(matches!(
            check(
                &billing_map,
                Action::Delete,
                &plan(&[("billing", Cascade)], None)
            ),
            Err(PlanError::GuardViolated { .. })
        ));
        // Keeping billing is fine.
        assert_eq!(
            check(
                &billing_map,
                Action::Delete,
                &plan(&[("billing", Keep)], None)
            ),
            Ok(())
        );
        assert!(matches!(
            check(&map, Action::Lock, &plan(&[("deals", Cascade)], None)),
            Err(PlanError::DataChangeNotAllowed { .. })
        ));
        assert_eq!(
            check(&map, Action::Delete, &plan(&[("deals", Transfer)], None)),
            Err(PlanError::MissingTransferTarget("deals".into()))
        );
        assert!(matches!(
            check(
                &map,
                Action::Delete,
                &plan(&[("deals", Keep), ("deals", Keep)], None)
            ),
            Err(PlanError::DuplicateCategory(_))
        ));
        let ok = plan(
            &[
                ("deals", Transfer),
                ("campaigns", Cascade),
                ("messages", Anonymise),
            ],
            Some(TransferTarget::User("t1-u2".into())),
        );
        assert_eq!(check(&map, Action::Delete, &ok), Ok(()));
    }

    #[test]
    fn cascading_into_a_kept_table_is_refused() {
        let map = DataMap::parse(&DEMO.replace(
            "[[guard]]\ntable = \"billing_seats\"",
            "[[guard]]\ntable = \"campaign_recipients\"\ncolumn = \"campaign_id\"\nrule = \"keep\"\n\n[[guard]]\ntable = \"billing_seats\"",
        ))
        .unwrap();
        let p = plan(&[("campaigns", Disposition::Cascade)], None);
        assert_eq!(
            check(&map, Action::Delete, &p),
            Err(PlanError::GuardViolated {
                category: "campaigns".into(),
                table: "campaign_recipients".into(),
                disposition: Disposition::Cascade
            })
        );
    }

    #[test]
    fn targets() {
        let active = TargetFacts {
            id: "u2".into(),
            state: Some(LifecycleState::Active),
        };
        assert_eq!(check_target(&active, "u1"), Ok(()));
        assert!(matches!(
            check_target(&active, "u2"),
            Err(PlanError::TargetIsSubject(_))
        ));
        let locked = TargetFacts {
            state: Some(LifecycleState::Locked),
            ..active.clone()
        };
        assert!(matches!(
            check_target(&locked, "u1"),
            Err(PlanError::TargetNotActive { .. })
        ));
        let missing = TargetFacts {
            state: None,
            ..active
        };
        assert!(matches!(
            check_target(&missing, "u1"),
            Err(PlanError::TargetUnknown(_))
        ));
    }
}
