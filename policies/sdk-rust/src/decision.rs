//! Constructors for the three outcomes and the rule trail.

use crate::{Decision, Denial, Escalation, Outcome, Plan};

impl Decision {
    /// The action may proceed self-service; `plan` says what happens to the
    /// subject's data.
    pub fn allow(plan: Plan) -> Self {
        Decision {
            outcome: Outcome::Allow(plan),
            rules: Vec::new(),
        }
    }

    /// A human on `queue` must decide; `reason` is what they will read, so it
    /// should say what the action would do and why it was not self-service.
    pub fn escalate(queue: impl Into<String>, reason: impl Into<String>) -> Self {
        Decision {
            outcome: Outcome::Escalate(Escalation {
                queue: queue.into(),
                reason: reason.into(),
            }),
            rules: Vec::new(),
        }
    }

    /// The action is refused. `code` is stable and machine-readable (callers
    /// branch on it, e.g. `user-active`); `message` is for people.
    pub fn deny(code: impl Into<String>, message: impl Into<String>) -> Self {
        Decision {
            outcome: Outcome::Deny(Denial {
                code: code.into(),
                message: message.into(),
            }),
            rules: Vec::new(),
        }
    }

    /// Record that rule `id` contributed to this decision. Call it once per
    /// rule, in the order the rules applied.
    pub fn rule(mut self, id: impl Into<String>) -> Self {
        self.rules.push(id.into());
        self
    }

    /// The plan, when the decision allows the action.
    pub fn plan(&self) -> Option<&Plan> {
        match &self.outcome {
            Outcome::Allow(plan) => Some(plan),
            _ => None,
        }
    }

    /// True when the decision allows the action.
    pub fn is_allow(&self) -> bool {
        matches!(self.outcome, Outcome::Allow(_))
    }

    /// True when the decision sends the action to a human queue.
    pub fn is_escalate(&self) -> bool {
        matches!(self.outcome, Outcome::Escalate(_))
    }

    /// True when the decision refuses the action.
    pub fn is_deny(&self) -> bool {
        matches!(self.outcome, Outcome::Deny(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accumulate_in_order() {
        let d = Decision::allow(Plan::keep_all()).rule("a").rule("b");
        assert!(d.is_allow());
        assert_eq!(d.rules, ["a", "b"]);
        assert!(d.plan().is_some());
    }

    #[test]
    fn escalate_and_deny_carry_their_fields() {
        let e = Decision::escalate("support", "why");
        assert!(e.is_escalate() && e.plan().is_none());
        assert!(
            matches!(e.outcome, Outcome::Escalate(ref x) if x.queue == "support" && x.reason == "why")
        );
        let d = Decision::deny("user-active", "deactivate first");
        assert!(d.is_deny());
        assert!(matches!(d.outcome, Outcome::Deny(ref x) if x.code == "user-active"));
    }
}
