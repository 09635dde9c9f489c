"""Lethe seed policy `transfer-and-scrub` (seed article 002), in Python.

Deactivated users may be deleted for good by someone with account-settings
access. The deletion removes the person, not the work: the profile is
scrubbed to "(deleted user)" and every item stays in the account. When the
caller names a new owner, the open items (open deals, contacts, products,
leads and undone activities) move to that owner, on deactivate as on delete.

The rules, with the ids every decision cites, are listed in README.md. The
module is built into a component by `build.sh` with componentize-py; the
`wit_world` bindings are generated at build time from `wit/` and never
committed.
"""

from typing import List, Optional

from wit_world import exports
from wit_world.exports import policy as p
from wit_world.imports import host

NAME = "transfer-and-scrub"
VERSION = "0.1.0"

# The permission the seed article calls "account settings access" (the right
# to use user management). Every tenant-user action here needs it.
ACCOUNT_SETTINGS = "account_settings"

# The display name a deleted user's profile is scrubbed to, as in the article.
DELETED_NAME = "(deleted user)"

# "open deals, contacts, products, leads, undone activities": the categories
# whose open rows move to the new owner. Which rows are "open" is the data
# map's business (undone activities are the open rows of `activities`).
TRANSFERABLE = ("deals", "contacts", "products", "leads", "activities")

# Deletion in the article is permanent: no restore window.
RESTORE_WINDOW_DAYS = 0

# The actions this policy may allow (restore is always refused).
ACTIONS = [
    p.Action.LOCK,
    p.Action.UNLOCK,
    p.Action.DEACTIVATE,
    p.Action.REACTIVATE,
    p.Action.DELETE,
    p.Action.ERASE,
]

# Actions where the actor acting on themselves would lock them out of their
# own account; refused so an admin cannot strand the tenant by accident.
SELF_HARMING = (p.Action.LOCK, p.Action.DEACTIVATE, p.Action.DELETE)


def _deny(code: str, message: str, rules: List[str]) -> p.Decision:
    return p.Decision(p.Outcome_Deny(p.Denial(code, message)), rules)


def _allow(plan: p.Plan, rules: List[str]) -> p.Decision:
    return p.Decision(p.Outcome_Allow(plan), rules)


def _plan(
    categories: List[p.CategoryPlan],
    transfer_target: Optional[p.TransferTarget],
    profile: p.ProfilePlan,
    references: p.References,
    notify: List[str],
) -> p.Plan:
    return p.Plan(
        categories=categories,
        transfer_target=transfer_target,
        profile=profile,
        restore_window_days=RESTORE_WINDOW_DAYS,
        references=references,
        notify=notify,
    )


def _categories(req: p.Request, transfer: bool) -> List[p.CategoryPlan]:
    """One entry per category the subject holds, so the plan states every
    disposition explicitly: open rows of the transferable categories move
    when `transfer` is set, everything else stays where it is. A category
    repeated in the holdings is planned once: the host refuses plans naming
    a category twice."""
    out = []
    seen = set()
    for holding in req.holdings:
        if holding.category in seen:
            continue
        seen.add(holding.category)
        if transfer and holding.category in TRANSFERABLE:
            out.append(p.CategoryPlan(holding.category, p.Disposition.TRANSFER, True))
        else:
            out.append(p.CategoryPlan(holding.category, p.Disposition.KEEP, False))
    return out


def _has_account_settings(actor: p.Actor) -> bool:
    """Account settings access is a tenant user's permission; support and
    system actors carry no tenant permissions, whatever their lists say."""
    return actor.kind == p.ActorKind.TENANT_USER and ACCOUNT_SETTINGS in actor.permissions


def _transfer_problem(req: p.Request) -> Optional[str]:
    """Why the requested new owner cannot receive items, if it cannot.

    Whether the target is an active user of the tenant is checked by the host
    against the database; the policy refuses what it can see is wrong."""
    target = req.transfer_to
    if target is None:
        return None
    if target.strip() == "":
        return "the new owner for transferred items is empty"
    if target == req.subject.id:
        return "items cannot be transferred to the user being removed"
    return None


def _decide(req: p.Request) -> p.Decision:
    action = req.action
    actor = req.actor

    if action == p.Action.RESTORE:
        return _deny(
            "deletion-permanent",
            "deleted users cannot be restored: deletion is permanent",
            ["restore.permanent"],
        )

    if action == p.Action.ERASE:
        # Erase only removes what personal data is left; the system sweep may
        # do it as well as someone with account settings access.
        if actor.kind != p.ActorKind.SYSTEM and not _has_account_settings(actor):
            return _deny(
                "missing-permission",
                "erasing a user needs the account_settings permission",
                ["actor.requires-account-settings"],
            )
        plan = _plan(
            _categories(req, transfer=False),
            None,
            p.ProfilePlan_Scrub(DELETED_NAME),
            p.References.PSEUDONYMISE,
            [],
        )
        return _allow(plan, ["erase.scrub-leftovers"])

    if not _has_account_settings(actor):
        return _deny(
            "missing-permission",
            f"{action.name.lower()} needs a tenant user with the account_settings permission",
            ["actor.requires-account-settings"],
        )
    rules = ["actor.requires-account-settings"]

    if action in SELF_HARMING and actor.id == req.subject.id:
        return _deny(
            "self-action",
            f"you cannot {action.name.lower()} your own account",
            ["actor.not-self"],
        )

    if action == p.Action.LOCK:
        plan = _plan([], None, p.ProfilePlan_Keep(), p.References.KEEP, [])
        return _allow(plan, rules + ["lock.keep-data"])

    if action == p.Action.UNLOCK:
        plan = _plan([], None, p.ProfilePlan_Keep(), p.References.KEEP, [])
        return _allow(plan, rules + ["unlock.keep-data"])

    if action == p.Action.REACTIVATE:
        # Someone who never logged in has no password to reset yet.
        if req.subject.last_login_at is None:
            notify, rule = ["welcome"], "reactivate.notify-welcome"
        else:
            notify, rule = ["password-reset"], "reactivate.notify-password-reset"
        plan = _plan([], None, p.ProfilePlan_Keep(), p.References.KEEP, notify)
        return _allow(plan, rules + [rule])

    if action == p.Action.DELETE:
        if req.subject.state != p.LifecycleState.DEACTIVATED:
            return _deny(
                "user-not-deactivated",
                "only deactivated users can be deleted; deactivate the user first"
                f" (the user is {req.subject.state.name.lower()})",
                ["delete.requires-deactivated"],
            )
        rules += ["delete.requires-deactivated", "delete.scrub-profile", "delete.keep-items"]
        profile: p.ProfilePlan = p.ProfilePlan_Scrub(DELETED_NAME)
        # A permanent delete ends erased at once, so activity-log references
        # are pseudonymised now: there is no later erase step to do it.
        references = p.References.PSEUDONYMISE
        tail = ["delete.permanent"]
    else:
        # Deactivate: every other action has returned above.
        rules += ["deactivate.keep-profile"]
        profile = p.ProfilePlan_Keep()
        references = p.References.KEEP
        tail = []

    problem = _transfer_problem(req)
    if problem is not None:
        return _deny("invalid-transfer-target", problem, ["transfer.target-valid"])

    transfer = req.transfer_to is not None
    target: Optional[p.TransferTarget] = None
    if transfer:
        target = p.TransferTarget_User(req.transfer_to)
        rules.append("transfer.open-items")
    plan = _plan(_categories(req, transfer), target, profile, references, [])
    return _allow(plan, rules + tail)


def _outcome_summary(decision: p.Decision) -> str:
    outcome = decision.outcome
    if isinstance(outcome, p.Outcome_Allow):
        return "allow"
    if isinstance(outcome, p.Outcome_Deny):
        return f"deny {outcome.value.code}"
    return f"escalate {outcome.value.queue}"


class Policy(exports.Policy):
    def decide(self, req: p.Request) -> p.Decision:
        decision = _decide(req)
        host.log(
            host.LogLevel.DEBUG,
            f"{NAME}: {req.action.name.lower()} of {req.subject.id} by {req.actor.id}:"
            f" {_outcome_summary(decision)} [{', '.join(decision.rules)}]",
        )
        return decision

    def describe(self) -> p.PolicyInfo:
        return p.PolicyInfo(
            name=NAME,
            version=VERSION,
            description=(
                "Deactivated users may be deleted permanently by users with account settings "
                "access; the profile is scrubbed to \"(deleted user)\", items stay, and open "
                "items move to a named new owner on deactivate or delete."
            ),
            actions=list(ACTIONS),
        )
