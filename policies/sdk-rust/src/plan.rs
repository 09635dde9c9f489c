//! A builder for [`Plan`]: start from "change nothing" and name what differs.
//!
//! Starting from [`Plan::keep_all`] means a category a rule forgets is kept,
//! never destroyed: the safe default for data that cannot come back.

use crate::{CategoryPlan, Disposition, Holding, Plan, ProfilePlan, References, TransferTarget};

impl Plan {
    /// Every category kept, profile kept, references kept, not restorable
    /// (window 0), no transfer target, no notifications.
    pub fn keep_all() -> Self {
        Plan {
            categories: Vec::new(),
            transfer_target: None,
            profile: ProfilePlan::Keep,
            restore_window_days: 0,
            references: References::Keep,
            notify: Vec::new(),
        }
    }

    /// Give `category` a disposition, replacing any earlier one for it, so
    /// a plan never names a category twice.
    pub fn set(mut self, category: &str, disposition: Disposition, only_open: bool) -> Self {
        let entry = CategoryPlan {
            category: category.to_owned(),
            disposition,
            only_open,
        };
        match self.categories.iter_mut().find(|c| c.category == category) {
            Some(existing) => *existing = entry,
            None => self.categories.push(entry),
        }
        self
    }

    /// Keep `category` explicitly (useful to document intent in a plan).
    pub fn keep(self, category: &str) -> Self {
        self.set(category, Disposition::Keep, false)
    }

    /// Remove the rows of `category` and their deep children.
    pub fn cascade(self, category: &str) -> Self {
        self.set(category, Disposition::Cascade, false)
    }

    /// Cascade every category the subject holds rows in.
    pub fn cascade_holdings(self, holdings: &[Holding]) -> Self {
        holdings
            .iter()
            .fold(self, |plan, h| plan.cascade(&h.category))
    }

    /// Keep the rows of `category` but scrub their personal columns.
    pub fn anonymise(self, category: &str) -> Self {
        self.set(category, Disposition::Anonymise, false)
    }

    /// Reassign every row of `category` to the plan's transfer target.
    pub fn transfer_all(self, category: &str) -> Self {
        self.set(category, Disposition::Transfer, false)
    }

    /// Reassign only the rows the data map counts as open (open deals,
    /// undone activities...) to the plan's transfer target.
    pub fn transfer_open(self, category: &str) -> Self {
        self.set(category, Disposition::Transfer, true)
    }

    /// Who receives transferred rows.
    pub fn transfer_to(mut self, target: TransferTarget) -> Self {
        self.transfer_target = Some(target);
        self
    }

    /// Transferred rows go to the named user of the same tenant.
    pub fn transfer_to_user(self, user_id: &str) -> Self {
        self.transfer_to(TransferTarget::User(user_id.to_owned()))
    }

    /// Transferred rows go to the actor who asked for the action.
    pub fn transfer_to_actor(self) -> Self {
        self.transfer_to(TransferTarget::Actor)
    }

    /// Transferred rows go to the first active user holding `role`.
    pub fn transfer_to_role(self, role: &str) -> Self {
        self.transfer_to(TransferTarget::Role(role.to_owned()))
    }

    /// Scrub the profile's personal columns; `display_name` replaces the
    /// name, e.g. `"(deleted user)"`.
    pub fn scrub_profile(mut self, display_name: &str) -> Self {
        self.profile = ProfilePlan::Scrub(display_name.to_owned());
        self
    }

    /// Days a delete stays restorable; 0 makes it final at once.
    pub fn restore_window_days(mut self, days: u32) -> Self {
        self.restore_window_days = days;
        self
    }

    /// On erase, replace the user's id and name in references (admin
    /// activity logs) with a stable per-person pseudonym.
    pub fn pseudonymise_references(mut self) -> Self {
        self.references = References::Pseudonymise;
        self
    }

    /// Add a hint for the platform's mailer, e.g. `"welcome"`.
    pub fn notify(mut self, hint: &str) -> Self {
        if !self.notify.iter().any(|n| n == hint) {
            self.notify.push(hint.to_owned());
        }
        self
    }

    /// The disposition the plan gives `category`; unnamed categories are kept.
    pub fn disposition(&self, category: &str) -> Disposition {
        self.categories
            .iter()
            .find(|c| c.category == category)
            .map_or(Disposition::Keep, |c| c.disposition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(category: &str) -> Holding {
        Holding {
            category: category.to_owned(),
            total: 1,
            open: 0,
        }
    }

    #[test]
    fn keep_all_changes_nothing() {
        let plan = Plan::keep_all();
        assert!(plan.categories.is_empty());
        assert!(plan.transfer_target.is_none());
        assert!(matches!(plan.profile, ProfilePlan::Keep));
        assert_eq!(plan.restore_window_days, 0);
        assert!(matches!(plan.references, References::Keep));
        assert!(plan.notify.is_empty());
        assert_eq!(plan.disposition("deals"), Disposition::Keep);
    }

    #[test]
    fn a_later_disposition_replaces_an_earlier_one_in_place() {
        let plan = Plan::keep_all()
            .cascade("contacts")
            .cascade("deals")
            .transfer_open("contacts");
        assert_eq!(plan.categories.len(), 2);
        assert_eq!(plan.categories[0].category, "contacts");
        assert_eq!(plan.categories[0].disposition, Disposition::Transfer);
        assert!(plan.categories[0].only_open);
        assert_eq!(plan.disposition("deals"), Disposition::Cascade);
    }

    #[test]
    fn cascade_holdings_names_every_held_category_in_order() {
        let plan = Plan::keep_all()
            .anonymise("messages")
            .cascade_holdings(&[holding("deals"), holding("messages")]);
        let names: Vec<&str> = plan
            .categories
            .iter()
            .map(|c| c.category.as_str())
            .collect();
        assert_eq!(names, ["messages", "deals"]);
        assert_eq!(plan.disposition("messages"), Disposition::Cascade);
    }

    #[test]
    fn builder_sets_profile_window_references_target_and_hints() {
        let plan = Plan::keep_all()
            .transfer_all("leads")
            .transfer_to_role("admin")
            .scrub_profile("(deleted user)")
            .restore_window_days(30)
            .pseudonymise_references()
            .notify("welcome")
            .notify("welcome");
        assert!(!plan.categories[0].only_open);
        assert!(matches!(plan.transfer_target, Some(TransferTarget::Role(ref r)) if r == "admin"));
        assert!(matches!(plan.profile, ProfilePlan::Scrub(ref n) if n == "(deleted user)"));
        assert_eq!(plan.restore_window_days, 30);
        assert!(matches!(plan.references, References::Pseudonymise));
        assert_eq!(plan.notify, ["welcome"]);
    }
}
