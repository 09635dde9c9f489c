//! Hostile policy: `decide` returns a decision that is well typed (the
//! canonical ABI lifts it without complaint) but that no sane policy
//! returns, to reach the host's shape checks.
//!
//! The defect is picked by the subject attribute `defect`, so one component
//! covers each check:
//!
//! - `duplicate-category` (default): an allow plan naming `deals` twice, with
//!   contradicting dispositions;
//! - `empty-code`: a denial with an empty code;
//! - `control-rule`: a rule id with an ANSI escape and a newline in it (log
//!   and terminal injection);
//! - `long-window`: a restore window of `u32::MAX` days;
//! - `long-message`: a denial message of 64 KiB (under the output cap,
//!   over any sane message length).
//!
//! The host must report each as a malformed-output fault and apply nothing.

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use exports::lethe::policy::policy::{
    Action, CategoryPlan, Decision, Denial, Disposition, Guest, Outcome, Plan, PolicyInfo,
    ProfilePlan, References, Request,
};

fn plan(categories: Vec<CategoryPlan>, restore_window_days: u32) -> Plan {
    Plan {
        categories,
        transfer_target: None,
        profile: ProfilePlan::Keep,
        restore_window_days,
        references: References::Keep,
        notify: Vec::new(),
    }
}

fn category(name: &str, disposition: Disposition) -> CategoryPlan {
    CategoryPlan {
        category: name.into(),
        disposition,
        only_open: false,
    }
}

fn deny(code: &str, message: String) -> Outcome {
    Outcome::Deny(Denial {
        code: code.into(),
        message,
    })
}

struct HostileMalformed;

impl Guest for HostileMalformed {
    fn decide(req: Request) -> Decision {
        let defect = req
            .subject
            .attributes
            .iter()
            .find(|a| a.key == "defect")
            .map(|a| a.value.as_str())
            .unwrap_or("duplicate-category");
        let rule = "hostile-malformed".to_string();
        let (outcome, rules) = match defect {
            "empty-code" => (deny("", "no code".into()), vec![rule]),
            "control-rule" => (
                deny("malformed", "see the rule id".into()),
                vec!["ok\n\u{1b}[2Jforged log line".into()],
            ),
            "long-window" => (
                Outcome::Allow(plan(vec![category("deals", Disposition::Keep)], u32::MAX)),
                vec![rule],
            ),
            "long-message" => (deny("malformed", "m".repeat(64 << 10)), vec![rule]),
            _ => (
                Outcome::Allow(plan(
                    vec![
                        category("deals", Disposition::Keep),
                        category("deals", Disposition::Cascade),
                    ],
                    30,
                )),
                vec![rule],
            ),
        };
        Decision { outcome, rules }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-malformed".into(),
            version: "0.1.0".into(),
            description:
                "decide() returns well-typed nonsense; the host must report malformed output".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileMalformed);
