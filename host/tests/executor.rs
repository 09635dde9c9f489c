//! The lifecycle executor on SQLite and PostgreSQL.

mod common;

use common::*;
use lethe::contract::{
    Action, Disposition, LifecycleState, Outcome, Plan, Request, TransferTarget,
};
use lethe::executor::{ActorRef, ExecError, PolicyFault, RestoreConflict};
use lethe::lifecycle::LifecycleError;
use lethe::plan::PlanError;
use lethe::seed::EPOCH;
use sqlx::Row;

const NOW: i64 = EPOCH + 1000;

#[tokio::test]
async fn delete_then_restore_is_identity() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 2, 8, 6, 3).await;
        let before = platform_dump(&t.db).await;
        let mut del = input("t1", "t1-u5", Action::Delete, NOW);
        del.transfer_to = Some("t1-u2".into());
        let r = ex.act(&allow_all(), &del).await.unwrap();
        assert_eq!(r.to_state, Some(LifecycleState::Deleted), "{backend:?}");
        assert_eq!(r.restore_until, Some(NOW + 30 * 86_400));
        let deals = r
            .effects
            .categories
            .iter()
            .find(|c| c.category == "deals")
            .unwrap();
        assert!(deals.transferred > 0, "{r:?}");
        let campaigns = r
            .effects
            .categories
            .iter()
            .find(|c| c.category == "campaigns")
            .unwrap();
        assert!(
            campaigns.deleted > 0 && campaigns.detached > 0,
            "{campaigns:?}"
        );
        assert_eq!(r.effects.guards["sessions"], 2);
        assert!(r.effects.profile_scrubbed);
        // The data really changed.
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM campaigns WHERE owner_id = 't1-u5'"
            )
            .await,
            0
        );
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM deals WHERE owner_id = 't1-u5' AND status = 'open'"
            )
            .await,
            0
        );
        assert_eq!(
            text(&t.db, "SELECT name FROM users WHERE id = 't1-u5'")
                .await
                .as_deref(),
            Some("(deleted user)")
        );
        assert_eq!(
            text(&t.db, "SELECT email FROM users WHERE id = 't1-u5'").await,
            None
        );
        assert_ne!(platform_dump(&t.db).await, before);
        // Evidence, in the same transaction.
        assert_eq!(
            scalar(&t.db, "SELECT COUNT(*) FROM lethe_decisions").await,
            1
        );
        assert_eq!(scalar(&t.db, "SELECT COUNT(*) FROM lethe_audit").await, 1);
        assert_eq!(
            scalar(&t.db, "SELECT COUNT(*) FROM lethe_lifecycle_history").await,
            1
        );
        assert_eq!(
            scalar(&t.db, "SELECT fuel_used FROM lethe_decisions").await,
            1234,
            "decision record keeps fuel"
        );

        let r = ex
            .act(
                &allow_all(),
                &input("t1", "t1-u5", Action::Restore, NOW + 86_400),
            )
            .await
            .unwrap();
        assert_eq!(r.to_state, Some(LifecycleState::Active));
        assert_eq!(
            platform_dump(&t.db).await,
            before,
            "{backend:?}: restore is not an exact undo"
        );
        assert_eq!(
            scalar(&t.db, "SELECT COUNT(*) FROM lethe_restore_log").await,
            0
        );
        // Deleting again works after a restore.
        let r = ex
            .act(
                &allow_all(),
                &input("t1", "t1-u5", Action::Delete, NOW + 2 * 86_400),
            )
            .await
            .unwrap();
        assert_eq!(r.to_state, Some(LifecycleState::Deleted));
        t.drop_db().await;
    }
}

/// Every text column of every table, Lethe's own included.
async fn all_text(db: &lethe::db::Db) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (table, rows) in full_dump(db).await {
        for row in rows {
            for v in row.into_iter().flatten() {
                out.push((table.clone(), v));
            }
        }
    }
    out
}

#[tokio::test]
async fn erase_leaves_no_personal_data_and_keeps_billing() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 1, 8, 4, 5).await;
        // u3 is mentioned in admin lines as target and as actor (u % 3 == 0).
        let who = identity(&t.db, "t1-u3").await;
        let billing = scalar(
            &t.db,
            "SELECT COUNT(*) FROM billing_seats WHERE user_id = 't1-u3'",
        )
        .await;
        ex.act(&allow_all(), &input("t1", "t1-u3", Action::Delete, NOW))
            .await
            .unwrap();
        let r = ex
            .act(&allow_all(), &input("t1", "t1-u3", Action::Erase, NOW + 10))
            .await
            .unwrap();
        assert_eq!(r.to_state, Some(LifecycleState::Erased));
        assert!(r.effects.references_pseudonymised >= 2, "{r:?}");
        for (table, v) in all_text(&t.db).await {
            for s in &who {
                assert!(
                    !v.contains(s.as_str()),
                    "{backend:?}: {table} still holds `{s}` in `{v}`"
                );
            }
        }
        assert_eq!(
            scalar(&t.db, "SELECT COUNT(*) FROM lethe_restore_log").await,
            0
        );
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM billing_seats WHERE user_id = 't1-u3'"
            )
            .await,
            billing
        );
        let pseudonym = lethe::executor::pseudonym_for("t1", "t1-u3");
        assert_eq!(
            scalar(
                &t.db,
                &format!("SELECT COUNT(*) FROM admin_activity WHERE target_id = '{pseudonym}'")
            )
            .await,
            1
        );
        let line = text(
            &t.db,
            &format!("SELECT line FROM admin_activity WHERE actor_id = '{pseudonym}'"),
        )
        .await;
        assert_eq!(line, Some(format!("{pseudonym} exported the contact list")));
        // Another user gets a different stand-in.
        ex.act(&allow_all(), &input("t1", "t1-u6", Action::Delete, NOW))
            .await
            .unwrap();
        ex.act(&allow_all(), &input("t1", "t1-u6", Action::Erase, NOW))
            .await
            .unwrap();
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(DISTINCT pseudonym) FROM lethe_pseudonyms"
            )
            .await,
            2
        );
        // Nothing happens to an erased user.
        let err = ex
            .act(
                &allow_all(),
                &input("t1", "t1-u3", Action::Restore, NOW + 20),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, ExecError::Lifecycle(LifecycleError::NotAllowed { .. })),
            "{err}"
        );
        t.drop_db().await;
    }
}

#[tokio::test]
async fn delete_with_window_zero_is_final_at_once() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 1, 8, 4, 9).await;
        let who = identity(&t.db, "t1-u7").await;
        let now_policy = FnDecider(|r: &Request| {
            Ok(Outcome::Allow {
                plan: match r.action {
                    Action::Delete => delete_plan(None, 0),
                    _ => empty_plan(),
                },
            })
        });
        let r = ex
            .act(&now_policy, &input("t1", "t1-u7", Action::Delete, NOW))
            .await
            .unwrap();
        assert_eq!(r.to_state, Some(LifecycleState::Erased), "{backend:?}");
        assert_eq!(r.effects.restore_log_rows, 0);
        assert_eq!(r.restore_until, None);
        assert_eq!(
            scalar(&t.db, "SELECT COUNT(*) FROM lethe_restore_log").await,
            0
        );
        assert_eq!(
            text(&t.db, "SELECT status FROM users WHERE id = 't1-u7'")
                .await
                .as_deref(),
            Some("erased")
        );
        for (table, v) in all_text(&t.db).await {
            for s in &who {
                assert!(!v.contains(s.as_str()), "{table} still holds `{s}`");
            }
        }
        let history = text(
            &t.db,
            "SELECT to_state FROM lethe_lifecycle_history WHERE user_id = 't1-u7'",
        )
        .await;
        assert_eq!(history.as_deref(), Some("erased"));
        t.drop_db().await;
    }
}

#[tokio::test]
async fn refused_plans_and_policy_faults_change_nothing() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 2, 8, 3, 11).await;
        let before = full_dump(&t.db).await;
        let with_plan =
            |plan: Plan| FnDecider(move |_r: &Request| Ok(Outcome::Allow { plan: plan.clone() }));
        let del = input("t1", "t1-u5", Action::Delete, NOW);

        let mut p = delete_plan(None, 30);
        p.categories
            .push(cat("billing", Disposition::Cascade, false));
        p.categories
            .retain(|c| !(c.category == "billing" && c.disposition == Disposition::Keep));
        let err = ex.act(&with_plan(p), &del).await.unwrap_err();
        assert!(
            matches!(err, ExecError::PlanRefused(PlanError::GuardViolated { .. })),
            "{err}"
        );

        let mut p = delete_plan(None, 30);
        p.categories
            .push(cat("invoices", Disposition::Cascade, false));
        let err = ex.act(&with_plan(p), &del).await.unwrap_err();
        assert!(
            matches!(err, ExecError::PlanRefused(PlanError::UnknownCategory(_))),
            "{err}"
        );

        for (target, want) in [
            ("t1-u5", "subject"),    // the subject itself
            ("t1-u3", "not active"), // deactivated
            ("t2-u2", "not a user"), // another tenant
            ("nobody", "not a user"),
        ] {
            let err = ex
                .act(&with_plan(delete_plan(Some(target), 30)), &del)
                .await
                .unwrap_err();
            assert!(err.to_string().contains(want), "{target}: {err}");
        }
        let p = Plan {
            transfer_target: Some(TransferTarget::Role("auditor".into())),
            ..delete_plan(Some("x"), 30)
        };
        let err = ex.act(&with_plan(p), &del).await.unwrap_err();
        assert!(
            matches!(err, ExecError::PlanRefused(PlanError::NoUserWithRole(_))),
            "{err}"
        );

        // Lock leaves data untouched: a lock plan that cascades is refused.
        let mut p = empty_plan();
        p.categories.push(cat("deals", Disposition::Cascade, false));
        let err = ex
            .act(&with_plan(p), &input("t1", "t1-u5", Action::Lock, NOW))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::PlanRefused(PlanError::DataChangeNotAllowed { .. })
            ),
            "{err}"
        );

        let fault = FnDecider(|_r: &Request| Err(PolicyFault::OutOfFuel { budget: 1000 }));
        let err = ex.act(&fault, &del).await.unwrap_err();
        assert!(matches!(err, ExecError::Policy(_)), "{err}");

        // The state machine refuses before asking the policy.
        let err = ex
            .act(&allow_all(), &input("t1", "t1-u5", Action::Erase, NOW))
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Lifecycle(_)), "{err}");

        // Dry run: effects reported, nothing written.
        let mut dry = del.clone();
        dry.dry_run = true;
        dry.transfer_to = Some("t1-u2".into());
        let r = ex.act(&allow_all(), &dry).await.unwrap();
        assert!(
            r.dry_run && r.effects.categories.iter().any(|c| c.transferred > 0),
            "{r:?}"
        );

        assert_eq!(
            full_dump(&t.db).await,
            before,
            "{backend:?}: something was written"
        );
        t.drop_db().await;
    }
}

#[tokio::test]
async fn restore_conflicts_fail_early_and_change_nothing() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 1, 8, 4, 13).await;
        let email = identity(&t.db, "t1-u5").await.remove(0);
        let mut del = input("t1", "t1-u5", Action::Delete, NOW);
        del.transfer_to = Some("t1-u2".into());
        ex.act(&allow_all(), &del).await.unwrap();

        // Someone else now has the email.
        sqlx::query("UPDATE users SET email = $1 WHERE id = 't1-u8'")
            .bind(&email)
            .execute(t.db.pool())
            .await
            .unwrap();
        let before = full_dump(&t.db).await;
        let err = ex
            .act(
                &allow_all(),
                &input("t1", "t1-u5", Action::Restore, NOW + 5),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::Conflict(RestoreConflict::EmailTaken { other }) if other == "t1-u8"),
            "{backend:?}: {err}"
        );
        assert_eq!(full_dump(&t.db).await, before);
        sqlx::query("UPDATE users SET email = 'other@x.example' WHERE id = 't1-u8'")
            .execute(t.db.pool())
            .await
            .unwrap();

        // A transferred deal moved on since.
        let moved: String = sqlx::query(
            "SELECT row_key FROM lethe_restore_log WHERE table_name = 'deals' ORDER BY 1",
        )
        .fetch_one(t.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        sqlx::query("UPDATE deals SET owner_id = 't1-u1' WHERE id = $1")
            .bind(&moved)
            .execute(t.db.pool())
            .await
            .unwrap();
        let before = full_dump(&t.db).await;
        let err = ex
            .act(
                &allow_all(),
                &input("t1", "t1-u5", Action::Restore, NOW + 5),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::Conflict(RestoreConflict::TransferredRowMoved { table, row }) if table == "deals" && row == &moved),
            "{err}"
        );
        assert_eq!(full_dump(&t.db).await, before);

        // Outside the window.
        sqlx::query("UPDATE deals SET owner_id = 't1-u2' WHERE id = $1")
            .bind(&moved)
            .execute(t.db.pool())
            .await
            .unwrap();
        let err = ex
            .act(
                &allow_all(),
                &input("t1", "t1-u5", Action::Restore, NOW + 31 * 86_400),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::Lifecycle(LifecycleError::WindowClosed { .. })
            ),
            "{err}"
        );
        // Inside it, now conflict-free.
        let r = ex
            .act(
                &allow_all(),
                &input("t1", "t1-u5", Action::Restore, NOW + 6),
            )
            .await
            .unwrap();
        assert_eq!(r.to_state, Some(LifecycleState::Active));
        t.drop_db().await;
    }
}

#[tokio::test]
async fn idempotency_denials_and_sweep() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 1, 8, 2, 17).await;
        let mut lock = input("t1", "t1-u7", Action::Lock, NOW);
        lock.idempotency_key = Some("req-1".into());
        let first = ex.act(&allow_all(), &lock).await.unwrap();
        assert_eq!(first.effects.guards["sessions"], 2);
        let again = ex.act(&allow_all(), &lock).await.unwrap();
        assert!(again.replayed);
        assert_eq!(again.action_id, first.action_id);
        assert_eq!(
            scalar(&t.db, "SELECT COUNT(*) FROM lethe_lifecycle_history").await,
            1
        );

        let deny = FnDecider(|_r: &Request| {
            Ok(Outcome::Deny {
                code: "support-only".into(),
                message: "deletion goes through support".into(),
            })
        });
        let r = ex
            .act(&deny, &input("t1", "t1-u8", Action::Delete, NOW))
            .await
            .unwrap();
        assert_eq!(r.to_state, None);
        assert_eq!(
            text(&t.db, "SELECT status FROM users WHERE id = 't1-u8'")
                .await
                .as_deref(),
            Some("active")
        );
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM lethe_decisions WHERE subject_id = 't1-u8'"
            )
            .await,
            1,
            "denials are evidence too"
        );

        // Support deletes with a one-day window; the sweep erases after it.
        let one_day = FnDecider(|r: &Request| {
            Ok(Outcome::Allow {
                plan: match r.action {
                    Action::Delete => delete_plan(None, 1),
                    _ => empty_plan(),
                },
            })
        });
        let mut del = input("t1", "t1-u8", Action::Delete, NOW);
        del.actor = ActorRef::Support("agent-7".into());
        ex.act(&one_day, &del).await.unwrap();
        assert!(ex.sweep(&one_day, NOW + 3600).await.unwrap().is_empty());
        let swept = ex.sweep(&one_day, NOW + 2 * 86_400).await.unwrap();
        assert_eq!(swept.len(), 1);
        let r = swept[0].result.as_ref().unwrap();
        assert_eq!(r.to_state, Some(LifecycleState::Erased), "{backend:?}");
        assert_eq!(
            text(
                &t.db,
                "SELECT actor_kind FROM lethe_audit WHERE action = 'erase'"
            )
            .await
            .as_deref(),
            Some("system")
        );
        t.drop_db().await;
    }
}

#[tokio::test]
async fn concurrent_actions_on_one_user_never_interleave() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 1, 8, 20, 19).await;
        let mut del = input("t1", "t1-u5", Action::Delete, NOW);
        del.transfer_to = Some("t1-u2".into());
        let d = allow_all();
        let (a, b) = tokio::join!(ex.act(&d, &del), ex.act(&d, &del));
        let oks = [a.is_ok(), b.is_ok()].iter().filter(|x| **x).count();
        assert_eq!(oks, 1, "{backend:?}: {a:?} / {b:?}");
        let err = a.err().or(b.err()).unwrap();
        assert!(matches!(err, ExecError::Lifecycle(_)), "{err}");
        assert_eq!(
            scalar(&t.db, "SELECT COUNT(*) FROM lethe_lifecycle_history").await,
            1
        );
        t.drop_db().await;
    }
}

#[tokio::test]
async fn actors_are_read_from_the_database() {
    for backend in BACKENDS {
        let (t, ex) = seeded(backend, 1, 8, 1, 37).await;
        let seen = std::sync::Mutex::new(None);
        let spy = FnDecider(|r: &Request| {
            *seen.lock().unwrap() = Some(r.clone());
            Ok(Outcome::Allow { plan: empty_plan() })
        });
        ex.act(&spy, &input("t1", "t1-u7", Action::Lock, NOW))
            .await
            .unwrap();
        let req = seen.lock().unwrap().clone().unwrap();
        assert_eq!(req.actor.roles, ["admin"], "{backend:?}");
        assert_eq!(
            req.actor.permissions,
            ["account_settings", "erase_deleted_users"]
        );
        assert_eq!(req.actor.attributes["is_domain_contact"], "true");
        assert_eq!(req.subject.attributes["is_domain_contact"], "false");
        assert_eq!(req.subject.state, LifecycleState::Active);
        assert!(req
            .holdings
            .iter()
            .any(|h| h.category == "deals" && h.total == 1));

        // A deactivated user cannot act; an unknown one neither.
        let mut by_inactive = input("t1", "t1-u7", Action::Unlock, NOW);
        by_inactive.actor = ActorRef::TenantUser("t1-u3".into());
        let err = ex.act(&allow_all(), &by_inactive).await.unwrap_err();
        assert!(matches!(err, ExecError::ActorNotActive { .. }), "{err}");
        by_inactive.actor = ActorRef::TenantUser("t2-u1".into());
        let err = ex.act(&allow_all(), &by_inactive).await.unwrap_err();
        assert!(matches!(err, ExecError::UnknownActor(_)), "{err}");
        t.drop_db().await;
    }
}
