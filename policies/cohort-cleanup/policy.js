// Lethe seed policy `cohort-cleanup` (seed article 003), in JavaScript.
//
// Admins remove mentors and mentees, one by one or in bulk, for good. A user
// linked to more than one platform cannot be removed by the tenant: the
// article sends those to the Customer Success team, so the policy escalates
// them to the `customer-success` queue, and the team's support agents (who
// approve escalations as a support actor) may then remove them.
//
// The rules, with the ids every decision cites, are listed in README.md.
// build.mjs turns this module into a component with componentize-js, with
// every engine feature disabled so the component imports nothing but
// `lethe:policy/host@0.1.0`.
//
// Binding shapes (componentize-js): enums are kebab-case strings, variants
// are `{ tag, val }`, options are the value or `undefined`, u64 are BigInt.

import { log } from "lethe:policy/host@0.1.0";

const NAME = "cohort-cleanup";
const VERSION = "0.1.0";

// The display name a removed user's profile is scrubbed to.
const DELETED_NAME = "(deleted user)";

// "User deletion is irreversible."
const RESTORE_WINDOW_DAYS = 0;

const ESCALATION_QUEUE = "customer-success";

// Roles whose holders this tool removes ("mentors and mentees").
const DELETABLE_ROLES = ["mentor", "mentee"];

function deny(code, message, rules) {
  return { outcome: { tag: "deny", val: { code, message } }, rules };
}

function escalate(reason, rules) {
  return {
    outcome: { tag: "escalate", val: { queue: ESCALATION_QUEUE, reason } },
    rules,
  };
}

function attribute(attributes, key) {
  const found = attributes.find((a) => a.key === key);
  return found === undefined ? undefined : found.value;
}

// How many platforms the subject is linked to. A missing attribute means the
// platform records none besides this one; anything that is not a plain
// non-negative integer is reported as unreadable rather than guessed.
function platformCount(subject) {
  const raw = attribute(subject.attributes, "platform_count");
  if (raw === undefined) {
    return { count: 1 };
  }
  const text = raw.trim();
  if (!/^[0-9]+$/.test(text)) {
    return { unreadable: raw };
  }
  return { count: Number(text) };
}

function decideDelete(req) {
  const { actor, subject } = req;
  const rules = [];

  if (actor.kind === "support") {
    // Approving a customer-success escalation re-runs the decision as a
    // support actor: the team removes multi-platform users by hand.
    rules.push("delete.support-removal");
  } else if (actor.kind === "tenant-user" && actor.roles.includes("admin")) {
    rules.push("delete.requires-admin");
  } else {
    return deny(
      "not-admin",
      "only platform admins can delete users",
      ["delete.requires-admin"],
    );
  }

  if (subject.roles.includes("admin")) {
    return deny(
      "subject-is-admin",
      "admins cannot be removed with user deletion; remove their admin role first",
      ["delete.mentors-and-mentees-only"],
    );
  }
  if (!DELETABLE_ROLES.some((role) => subject.roles.includes(role))) {
    return deny(
      "subject-not-mentor-or-mentee",
      "only mentors and mentees can be deleted",
      ["delete.mentors-and-mentees-only"],
    );
  }
  rules.push("delete.mentors-and-mentees-only");

  if (actor.kind !== "support") {
    const platforms = platformCount(subject);
    if (platforms.unreadable !== undefined) {
      return escalate(
        `cannot tell how many platforms the user is linked to (platform_count is "${platforms.unreadable}"); ` +
          "the Customer Success team must check and remove the user",
        ["delete.platform-count-unreadable"],
      );
    }
    if (platforms.count > 1) {
      return escalate(
        `the user is linked to ${platforms.count} platforms and must be removed manually ` +
          "by the Customer Success team",
        ["delete.multi-platform-escalates"],
      );
    }
  }

  // One entry per category: the host refuses plans naming a category twice.
  const categories = [...new Set(req.holdings.map((h) => h.category))].map((category) => ({
    category,
    disposition: "cascade",
    onlyOpen: false,
  }));
  rules.push("delete.cascade-all", "delete.scrub-profile", "delete.irreversible");
  return {
    outcome: {
      tag: "allow",
      val: {
        categories,
        transferTarget: undefined,
        profile: { tag: "scrub", val: DELETED_NAME },
        restoreWindowDays: RESTORE_WINDOW_DAYS,
        // Irreversible: the user ends erased at once, so references in
        // activity logs are pseudonymised now.
        references: "pseudonymise",
        notify: [],
      },
    },
    rules,
  };
}

function decide(req) {
  let decision;
  if (req.action === "delete") {
    decision = decideDelete(req);
  } else if (req.action === "restore") {
    decision = deny(
      "deletion-irreversible",
      "user deletion is irreversible; deleted users cannot be restored",
      ["restore.irreversible"],
    );
  } else {
    decision = deny(
      "action-not-supported",
      `this platform only deletes users; ${req.action} is not offered`,
      ["action.delete-only"],
    );
  }
  const o = decision.outcome;
  const summary =
    o.tag === "deny" ? `deny ${o.val.code}` : o.tag === "escalate" ? `escalate ${o.val.queue}` : "allow";
  log(
    "debug",
    `${NAME}: ${req.action}${req.bulk ? " (bulk)" : ""} of ${req.subject.id} by ${req.actor.id}: ` +
      `${summary} [${decision.rules.join(", ")}]`,
  );
  return decision;
}

function describe() {
  return {
    name: NAME,
    version: VERSION,
    description:
      "Admins delete mentors and mentees, individually or in bulk, irreversibly: everything " +
      "they own is removed and the profile scrubbed. Users linked to more than one platform " +
      "are escalated to Customer Success.",
    // The actions this policy may allow; every other one is denied.
    actions: ["delete"],
  };
}

export const policy = { decide, describe };
