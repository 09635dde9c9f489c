//! The lifecycle state machine (see `shared/design.md`, Lifecycle).
//!
//! The host enforces it *before* asking the policy: a policy can narrow what
//! is possible (refuse deleting active users) but never widen it (nothing
//! happens to an erased user, restore only inside the window), so a buggy
//! or hostile policy cannot resurrect erased data.

use crate::contract::{Action, LifecycleState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot {action} a user who is {state}")]
    NotAllowed {
        action: Action,
        state: LifecycleState,
    },
    #[error("the restore window closed at {restore_until} (now {now})")]
    WindowClosed { restore_until: i64, now: i64 },
}

/// Where the user's lifecycle stands, as far as the state machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub state: LifecycleState,
    /// Set while deleted: the last moment a restore is possible.
    pub restore_until: Option<i64>,
    /// Set while deleted: the state a restore returns to.
    pub previous_state: Option<LifecycleState>,
}

/// Check that `action` is possible from `standing` at `now`, and return the
/// state it ends in. A delete ends in `deleted` here; the executor makes it
/// `erased` when the plan's window is 0.
pub fn check(
    action: Action,
    standing: Standing,
    now: i64,
) -> Result<LifecycleState, LifecycleError> {
    use LifecycleState::*;
    let state = standing.state;
    let refuse = || LifecycleError::NotAllowed { action, state };
    match (action, state) {
        (_, Erased) => Err(refuse()),
        (Action::Lock, Active) => Ok(Locked),
        (Action::Unlock, Locked) => Ok(Active),
        (Action::Deactivate, Active | Locked) => Ok(Deactivated),
        (Action::Reactivate, Deactivated) => Ok(Active),
        (Action::Delete, Active | Locked | Deactivated) => Ok(Deleted),
        (Action::Restore, Deleted) => {
            let until = standing.restore_until.ok_or_else(refuse)?;
            if now > until {
                return Err(LifecycleError::WindowClosed {
                    restore_until: until,
                    now,
                });
            }
            standing.previous_state.ok_or_else(refuse)
        }
        (Action::Erase, Deleted) => Ok(Erased),
        _ => Err(refuse()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleState::*;

    fn at(state: LifecycleState) -> Standing {
        Standing {
            state,
            restore_until: None,
            previous_state: None,
        }
    }

    #[test]
    fn the_design_table() {
        let ok = [
            (Action::Lock, Active, Locked),
            (Action::Unlock, Locked, Active),
            (Action::Deactivate, Active, Deactivated),
            (Action::Deactivate, Locked, Deactivated),
            (Action::Reactivate, Deactivated, Active),
            (Action::Delete, Active, Deleted),
            (Action::Delete, Locked, Deleted),
            (Action::Delete, Deactivated, Deleted),
            (Action::Erase, Deleted, Erased),
        ];
        for action in Action::ALL {
            for state in LifecycleState::ALL {
                let got = check(action, at(state), 0).ok();
                let want = ok
                    .iter()
                    .find(|(a, s, _)| *a == action && *s == state)
                    .map(|t| t.2);
                if action != Action::Restore {
                    assert_eq!(got, want, "{action} from {state}");
                }
            }
        }
    }

    #[test]
    fn restore_only_inside_the_window() {
        let deleted = Standing {
            state: Deleted,
            restore_until: Some(100),
            previous_state: Some(Deactivated),
        };
        assert_eq!(check(Action::Restore, deleted, 100), Ok(Deactivated));
        assert_eq!(
            check(Action::Restore, deleted, 101),
            Err(LifecycleError::WindowClosed {
                restore_until: 100,
                now: 101
            })
        );
        // Erased by a window-0 delete: never restorable.
        assert!(check(Action::Restore, at(Deleted), 0).is_err());
        assert!(check(Action::Restore, at(Erased), 0).is_err());
    }

    #[test]
    fn nothing_happens_to_an_erased_user() {
        for action in Action::ALL {
            assert!(check(action, at(Erased), 0).is_err());
        }
    }
}
