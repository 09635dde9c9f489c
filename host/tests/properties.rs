//! Property tests on SQLite and PostgreSQL: random plans over seeded data.
//!
//! - delete then restore leaves every platform table identical;
//! - after erase no text column of any table holds the user's email, name
//!   or phone;
//! - a refused plan or a policy fault changes nothing at all.

mod common;

use common::*;
use lethe::contract::{Action, CategoryPlan, Disposition, Request, TransferTarget};
use lethe::db::Backend;
use lethe::executor::{ExecError, PolicyFault};
use lethe::seed::EPOCH;
use proptest::prelude::*;

#[test]
fn delete_then_restore_leaves_every_table_identical() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for backend in BACKENDS {
        let (t, ex) = rt.block_on(seeded(backend, 2, 10, 5, 23));
        let now = std::cell::Cell::new(EPOCH);
        runner(16)
            .run(&(plan_strategy(1u32..60), 3u32..=10), |(plan, u)| {
                now.set(now.get() + 10);
                let now = now.get();
                let user = format!("t1-u{u}");
                rt.block_on(async {
                    let before = platform_dump(&t.db).await;
                    let d = with_plan(plan.clone());
                    let r = ex
                        .act(&d, &input("t1", &user, Action::Delete, now))
                        .await
                        .unwrap();
                    prop_assert_eq!(r.to_state, Some(lethe::contract::LifecycleState::Deleted));
                    ex.act(&d, &input("t1", &user, Action::Restore, now + 1))
                        .await
                        .unwrap();
                    let after = platform_dump(&t.db).await;
                    prop_assert!(
                        before == after,
                        "{:?}: {} not restored exactly under {:?}",
                        backend,
                        user,
                        plan
                    );
                    Ok(())
                })
            })
            .unwrap();
        rt.block_on(t.drop_db());
    }
}

#[test]
fn after_erase_no_text_column_names_the_user() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for backend in BACKENDS {
        let (t, ex) = rt.block_on(seeded(backend, 1, 30, 3, 29));
        let next = std::cell::Cell::new(3u32);
        runner(10)
            .run(
                &(plan_strategy(1u32..60), any::<bool>()),
                |(plan, final_at_once)| {
                    let user = format!("t1-u{}", next.get());
                    next.set(next.get() + 1);
                    rt.block_on(async {
                        let who = identity(&t.db, &user).await;
                        let mut plan = plan.clone();
                        if final_at_once {
                            plan.restore_window_days = 0;
                        }
                        let d = with_plan(plan);
                        ex.act(&d, &input("t1", &user, Action::Delete, EPOCH))
                            .await
                            .unwrap();
                        if !final_at_once {
                            ex.act(&d, &input("t1", &user, Action::Erase, EPOCH + 5))
                                .await
                                .unwrap();
                        }
                        for (table, rows) in full_dump(&t.db).await {
                            for v in rows.iter().flatten().flatten() {
                                for s in &who {
                                    prop_assert!(
                                        !v.contains(s.as_str()),
                                        "{:?}: {} holds `{}`",
                                        backend,
                                        table,
                                        s
                                    );
                                }
                            }
                        }
                        Ok(())
                    })
                },
            )
            .unwrap();
        rt.block_on(t.drop_db());
    }
}

/// One way to make a valid plan unacceptable.
#[derive(Debug, Clone)]
enum Breakage {
    CascadeBilling,
    UnknownCategory,
    TargetIsSubject,
    TargetInactive,
    TargetOtherTenant,
    Fault,
}

#[test]
fn a_refused_plan_or_fault_changes_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let breakage = prop_oneof![
        Just(Breakage::CascadeBilling),
        Just(Breakage::UnknownCategory),
        Just(Breakage::TargetIsSubject),
        Just(Breakage::TargetInactive),
        Just(Breakage::TargetOtherTenant),
        Just(Breakage::Fault),
    ];
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (t, ex) = rt.block_on(seeded(backend, 2, 10, 3, 31));
        let before = rt.block_on(full_dump(&t.db));
        runner(16)
            .run(
                &(plan_strategy(1u32..60), breakage.clone(), 5u32..=9),
                |(plan, how, u)| {
                    let user = format!("t1-u{u}");
                    let mut plan = plan.clone();
                    // Make sure something is transferred so the target matters.
                    plan.categories[3].disposition = Disposition::Transfer;
                    let fault = matches!(how, Breakage::Fault);
                    match how {
                        Breakage::CascadeBilling => plan.categories.push(CategoryPlan {
                            category: "billing".into(),
                            disposition: Disposition::Cascade,
                            only_open: false,
                        }),
                        Breakage::UnknownCategory => plan.categories.push(CategoryPlan {
                            category: "payroll".into(),
                            disposition: Disposition::Anonymise,
                            only_open: false,
                        }),
                        Breakage::TargetIsSubject => {
                            plan.transfer_target = Some(TransferTarget::User(user.clone()))
                        }
                        Breakage::TargetInactive => {
                            plan.transfer_target = Some(TransferTarget::User("t1-u3".into()))
                        }
                        Breakage::TargetOtherTenant => {
                            plan.transfer_target = Some(TransferTarget::User("t2-u1".into()))
                        }
                        Breakage::Fault => {}
                    }
                    rt.block_on(async {
                        let err = if fault {
                            let d = FnDecider(|_r: &Request| {
                                Err(PolicyFault::Trap("unreachable".into()))
                            });
                            ex.act(&d, &input("t1", &user, Action::Delete, EPOCH))
                                .await
                                .unwrap_err()
                        } else {
                            ex.act(&with_plan(plan), &input("t1", &user, Action::Delete, EPOCH))
                                .await
                                .unwrap_err()
                        };
                        prop_assert!(
                            matches!(err, ExecError::PlanRefused(_) | ExecError::Policy(_)),
                            "unexpected error {}",
                            err
                        );
                        prop_assert!(
                            full_dump(&t.db).await == before,
                            "{:?}: state changed",
                            backend
                        );
                        Ok(())
                    })
                },
            )
            .unwrap();
        rt.block_on(t.drop_db());
    }
}
