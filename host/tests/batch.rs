//! The batch path (`Executor::act_batch`) on SQLite and PostgreSQL: a bulk
//! batch's users in one transaction, with set-based statements.
//!
//! - for random plans it changes exactly what one transaction per user
//!   changes: the same platform rows, the same effects per user in the
//!   audit, the same restore-log rows per user, and each user restores
//!   from their own log to exactly what they were;
//! - users refused before any write (denied by the state machine, a policy
//!   fault, a refused plan) are left out and the rest applied;
//! - a batch that fails once writing has begun writes nothing at all;
//! - another action on a user of the batch waits for the batch and then
//!   sees its result: the two never interleave.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lethe::contract::{Action, Disposition, LifecycleState, Outcome, Plan, Request};
use lethe::executor::{
    ActionReport, ActorRef, Ask, BatchEpilogue, Batched, Decider, ExecError, PolicyFault, Verdict,
};
use lethe::seed::EPOCH;
use proptest::prelude::*;
use sqlx::AnyConnection;

/// No epilogue; or one that fails after everything else was written.
struct Epilogue {
    fail: bool,
}

impl BatchEpilogue for Epilogue {
    async fn write(
        &self,
        _conn: &mut AnyConnection,
        _reports: &[ActionReport],
        _refused: &[(String, ExecError)],
    ) -> Result<(), ExecError> {
        if self.fail {
            return Err(ExecError::Superseded(
                "the epilogue failed on purpose".into(),
            ));
        }
        Ok(())
    }
}

const OK: Epilogue = Epilogue { fail: false };

fn ask(tenant: &str, action: Action, now: i64) -> Ask {
    Ask {
        tenant: tenant.into(),
        action,
        actor: ActorRef::TenantUser(format!("{tenant}-u1")),
        transfer_to: None,
        reason: None,
        now,
    }
}

/// (subject, outcome, effects) of every audit row, and restore-log rows per
/// user: what must not depend on the path.
async fn evidence(db: &lethe::db::Db) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT subject_id, action, outcome, effects_json FROM lethe_audit ORDER BY subject_id, at, action",
        "SELECT user_id, CAST(COUNT(*) AS TEXT), CAST(MAX(step) AS TEXT) FROM lethe_restore_log GROUP BY user_id ORDER BY user_id",
        "SELECT user_id, from_state, to_state FROM lethe_lifecycle_history ORDER BY user_id, at",
        "SELECT subject_id, rules FROM lethe_decisions ORDER BY subject_id, at",
        "SELECT user_id, event_type, CAST(stream_seq AS TEXT) FROM lethe_events ORDER BY user_id, stream_seq",
        "SELECT user_id, previous_state, CAST(deleted_at AS TEXT), CAST(restore_until AS TEXT) FROM lethe_user_lifecycle ORDER BY user_id",
    ] {
        for row in sqlx::query(sql).fetch_all(db.pool()).await.unwrap() {
            use sqlx::Row;
            let n = row.len();
            out.push((0..n).map(|i| row.try_get::<Option<String>, _>(i).unwrap()).collect());
        }
    }
    out
}

#[test]
fn a_batch_changes_what_one_transaction_per_user_changes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for backend in BACKENDS {
        runner(
            std::env::var("BATCH_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(12),
        )
        .run(
            &(
                plan_strategy(prop_oneof![Just(0u32), 1u32..60, 1u32..60, 1u32..60]),
                3u32..=6,
            ),
            |(plan, first)| {
                rt.block_on(async {
                    // Two identical platforms: one user at a time on one,
                    // one batch on the other.
                    let (one, ex_one) = seeded(backend, 2, 14, 4, 41).await;
                    let (many, ex_many) = seeded(backend, 2, 14, 4, 41).await;
                    let original = platform_dump(&many.db).await;
                    let mut users: Vec<String> = (first..=14).map(|u| format!("t1-u{u}")).collect();
                    users.sort();
                    let d = with_plan(plan.clone());
                    let mut refused_one = Vec::new();
                    for u in &users {
                        let mut i = input("t1", u, Action::Delete, EPOCH);
                        i.bulk = true;
                        if let Err(e) = ex_one.act(&d, &i).await {
                            refused_one.push((u.clone(), e.code()));
                        }
                    }
                    let done = ex_many
                        .act_batch(&d, &ask("t1", Action::Delete, EPOCH), &users, &OK)
                        .await
                        .unwrap();
                    let Batched::Done { reports, refused } = done else {
                        return Err(TestCaseError::fail(format!("not batched: {done:?}")));
                    };
                    let refused_many: Vec<_> =
                        refused.iter().map(|(u, e)| (u.clone(), e.code())).collect();
                    prop_assert_eq!(refused_one, refused_many);
                    prop_assert_eq!(reports.len() + refused.len(), users.len());
                    prop_assert!(
                        platform_dump(&one.db).await == platform_dump(&many.db).await,
                        "{:?}: the platforms differ under {:?}",
                        backend,
                        plan
                    );
                    prop_assert_eq!(evidence(&one.db).await, evidence(&many.db).await);
                    // Every user restores from their own log (the last
                    // deleted first, as shared rows were logged in order).
                    if plan.restore_window_days > 0 {
                        for r in reports.iter().rev() {
                            ex_many
                                .act(&d, &input("t1", &r.subject, Action::Restore, EPOCH + 1))
                                .await
                                .unwrap();
                        }
                        prop_assert!(
                            platform_dump(&many.db).await == original,
                            "{:?}: not restored exactly under {:?}",
                            backend,
                            plan
                        );
                    }
                    one.drop_db().await;
                    many.drop_db().await;
                    Ok(())
                })
            },
        )
        .unwrap();
    }
}

#[tokio::test]
async fn refused_users_are_left_out_and_the_rest_applied() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 2, 12, 3, 43).await;
        let users: Vec<String> = (4..=9).map(|u| format!("t1-u{u}")).collect();
        // t1-u4 is deleted already (the state machine refuses erasing a
        // live user, and deleting a deleted one).
        ex.act(&allow_all(), &input("t1", "t1-u4", Action::Delete, EPOCH))
            .await
            .unwrap();
        let d = FnDecider(|r: &Request| match r.subject.id.as_str() {
            "t1-u5" => Err(PolicyFault::Trap("boom".into())),
            "t1-u6" => Ok(Outcome::Deny {
                code: "not-today".into(),
                message: "no".into(),
            }),
            "t1-u7" => Ok(Outcome::Allow {
                plan: Plan {
                    categories: vec![cat("payroll", Disposition::Cascade, false)],
                    ..delete_plan(None, 30)
                },
            }),
            _ => Ok(Outcome::Allow {
                plan: delete_plan(None, 30),
            }),
        });
        let before = platform_dump(&t.db).await;
        let Batched::Done { reports, refused } = ex
            .act_batch(&d, &ask("t1", Action::Delete, EPOCH + 1), &users, &OK)
            .await
            .unwrap()
        else {
            panic!("not batched");
        };
        let codes: Vec<(&str, &str)> = refused
            .iter()
            .map(|(u, e)| (u.as_str(), e.code().as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("t1-u4", "invalid-transition"),
                ("t1-u5", "policy-fault"),
                ("t1-u7", "plan-refused")
            ],
            "{backend:?}"
        );
        let decided: Vec<(&str, Option<LifecycleState>)> = reports
            .iter()
            .map(|r| (r.subject.as_str(), r.to_state))
            .collect();
        assert_eq!(
            decided,
            [
                ("t1-u6", None),
                ("t1-u8", Some(LifecycleState::Deleted)),
                ("t1-u9", Some(LifecycleState::Deleted))
            ],
            "{backend:?}"
        );
        assert_ne!(platform_dump(&t.db).await, before);
        for (user, state) in [
            ("t1-u5", LifecycleState::Active),
            ("t1-u6", LifecycleState::Active),
            ("t1-u7", LifecycleState::Active),
        ] {
            let s = text(
                &t.db,
                &format!("SELECT status FROM users WHERE id = '{user}'"),
            )
            .await;
            assert_ne!(
                s.as_deref(),
                Some("deleted"),
                "{backend:?} {user} {state:?}"
            );
        }
        // Evidence: one decision record per decided user, none for refusals.
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM lethe_decisions WHERE subject_id IN ('t1-u5', 't1-u7')"
            )
            .await,
            0
        );
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM lethe_decisions WHERE subject_id IN ('t1-u6', 't1-u8', 't1-u9')"
            )
            .await,
            3
        );
        t.drop_db().await;
    }
}

#[tokio::test]
async fn a_batch_that_fails_after_writing_writes_nothing() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 2, 10, 3, 47).await;
        let users: Vec<String> = (3..=9).map(|u| format!("t1-u{u}")).collect();
        let before = full_dump(&t.db).await;
        let err = ex
            .act_batch(
                &allow_all(),
                &ask("t1", Action::Delete, EPOCH),
                &users,
                &Epilogue { fail: true },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Superseded(_)), "{err}");
        assert!(
            full_dump(&t.db).await == before,
            "{backend:?}: state changed"
        );
        t.drop_db().await;
    }
}

/// A decider that holds the batch (and so its locks) until released.
struct Held {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Decider for Held {
    async fn decide(&self, tenant: &str, request: &Request) -> Result<Verdict, PolicyFault> {
        allow_all().decide(tenant, request).await
    }

    async fn decide_batch(
        &self,
        tenant: &str,
        requests: &[Request],
    ) -> Vec<Result<Verdict, PolicyFault>> {
        self.entered.notify_one();
        self.release.notified().await;
        let mut out = Vec::new();
        for r in requests {
            out.push(allow_all().decide(tenant, r).await);
        }
        out
    }
}

#[tokio::test]
async fn another_action_on_a_batch_user_waits_and_never_interleaves() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 2, 10, 3, 53).await;
        let users: Vec<String> = (3..=9).map(|u| format!("t1-u{u}")).collect();
        let held = Held {
            entered: Arc::new(tokio::sync::Notify::new()),
            release: Arc::new(tokio::sync::Notify::new()),
        };
        let (entered, release) = (held.entered.clone(), held.release.clone());
        let batch = {
            let ex = ex.clone();
            tokio::spawn(async move {
                ex.act_batch(&held, &ask("t1", Action::Delete, EPOCH), &users, &OK)
                    .await
            })
        };
        tokio::time::timeout(Duration::from_secs(10), entered.notified())
            .await
            .expect("the batch reached its decisions");
        // The batch holds t1-u5 locked: a lock of it must wait.
        let single = {
            let ex = ex.clone();
            tokio::spawn(async move {
                ex.act(&allow_all(), &input("t1", "t1-u5", Action::Lock, EPOCH))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!single.is_finished(), "{backend:?}: the lock did not wait");
        release.notify_one();
        let done = tokio::time::timeout(Duration::from_secs(10), batch)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(done, Batched::Done { .. }));
        let after = tokio::time::timeout(Duration::from_secs(10), single)
            .await
            .unwrap()
            .unwrap();
        // It ran after the batch, on the batch's result: a deleted user
        // cannot be locked.
        let err = after.unwrap_err();
        assert_eq!(
            err.code().as_str(),
            "invalid-transition",
            "{backend:?}: {err}"
        );
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM lethe_lifecycle_history WHERE user_id = 't1-u5'"
            )
            .await,
            1
        );
        t.drop_db().await;
    }
}
