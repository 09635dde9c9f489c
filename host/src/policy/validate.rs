//! Shape checks on what a policy returned, before anyone acts on it.
//!
//! Typed bindings already guarantee the structure; these checks catch values
//! no sane policy returns (empty codes, duplicate categories, control
//! characters in rule ids), which are reported as a malformed-output fault.
//! Whether a plan fits the data map is the executor's plan validation.

use std::collections::HashSet;

use crate::contract::Outcome;

const MAX_NAME: usize = 128;
const MAX_TEXT: usize = 4096;
/// A hundred years: anything longer is a unit mistake, not a policy.
const MAX_RESTORE_WINDOW_DAYS: u32 = 36_500;

pub fn decision(outcome: &Outcome, rules: &[String]) -> Result<(), String> {
    for rule in rules {
        name("rule id", rule)?;
    }
    match outcome {
        Outcome::Allow { plan } => {
            let mut seen = HashSet::new();
            for c in &plan.categories {
                name("category", &c.category)?;
                if !seen.insert(c.category.as_str()) {
                    return Err(format!(
                        "category `{}` appears twice in the plan",
                        c.category
                    ));
                }
            }
            for hint in &plan.notify {
                name("notify hint", hint)?;
            }
            if let crate::contract::ProfilePlan::Scrub(placeholder) = &plan.profile {
                text("scrub placeholder", placeholder)?;
            }
            if plan.restore_window_days > MAX_RESTORE_WINDOW_DAYS {
                return Err(format!(
                    "restore window of {} days exceeds {MAX_RESTORE_WINDOW_DAYS}",
                    plan.restore_window_days
                ));
            }
        }
        Outcome::Escalate { queue, reason } => {
            name("queue", queue)?;
            text("escalation reason", reason)?;
        }
        Outcome::Deny { code, message } => {
            name("deny code", code)?;
            text("deny message", message)?;
        }
    }
    Ok(())
}

/// Identifiers: non-empty, short, printable, no spaces.
fn name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_NAME {
        return Err(format!(
            "{what} must be 1 to {MAX_NAME} bytes, got {}",
            s.len()
        ));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{what} `{}` contains whitespace or control characters",
            s.escape_debug()
        ));
    }
    Ok(())
}

fn text(what: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_TEXT {
        return Err(format!("{what} exceeds {MAX_TEXT} bytes"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(format!("{what} contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{CategoryPlan, Disposition, Plan, ProfilePlan, References};

    fn plan(categories: &[&str]) -> Outcome {
        Outcome::Allow {
            plan: Plan {
                categories: categories
                    .iter()
                    .map(|c| CategoryPlan {
                        category: c.to_string(),
                        disposition: Disposition::Cascade,
                        only_open: false,
                    })
                    .collect(),
                transfer_target: None,
                profile: ProfilePlan::Keep,
                restore_window_days: 30,
                references: References::Keep,
                notify: vec![],
            },
        }
    }

    #[test]
    fn sane_decisions_pass() {
        assert!(decision(&plan(&["deals", "contacts"]), &["r.1".into()]).is_ok());
    }

    #[test]
    fn duplicate_categories_and_bad_ids_fail() {
        assert!(decision(&plan(&["deals", "deals"]), &[])
            .unwrap_err()
            .contains("twice"));
        assert!(decision(&plan(&[]), &["has space".into()]).is_err());
        assert!(decision(&plan(&[]), &["".into()]).is_err());
        let deny = Outcome::Deny {
            code: String::new(),
            message: "x".into(),
        };
        assert!(decision(&deny, &[]).is_err());
    }
}
