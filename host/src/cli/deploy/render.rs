//! What the operator commands show people (stdout; `--json` prints the
//! server's documents instead): versions and their gate reports,
//! activations, a tenant's deployment status, tenants, replay reports.
//! Times are UTC.

use std::fmt::Write as _;

use super::super::http::{sh, span, table, utc};
use super::wire::{Activation, Replay, Replica, Status, Tenant, Version};

/// A version, its gate report (every check; the cases that ran) and, when
/// it was accepted, the command that activates it.
pub(super) fn render_version(v: &Version, tenant: &str, activate_hint: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Version {} of tenant {tenant}: {} (sha256 {}, {})",
        v.version,
        v.status,
        short_sha(&v.sha256),
        size(v.size_bytes)
    );
    if let Some(p) = &v.policy {
        let _ = write!(out, "  policy {}", policy_name(Some(p)));
        if let Some(c) = &v.contract_version {
            let _ = write!(out, ", contract {c}");
        }
        out.push('\n');
    }
    if let Some(m) = v.message.as_deref().filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "  message: {}", one_line(m, usize::MAX));
    }
    if !v.report.checks.is_empty() {
        out.push_str("\nChecks:\n");
        let rows: Vec<Vec<String>> = v
            .report
            .checks
            .iter()
            .map(|c| {
                vec![
                    c.check.clone(),
                    c.status.clone(),
                    c.detail
                        .as_deref()
                        .map_or_else(String::new, |d| one_line(d, usize::MAX)),
                ]
            })
            .collect();
        out.push_str(&table(None, &rows));
    }
    if !v.report.cases.is_empty() {
        out.push_str("\nCases:\n");
        for c in &v.report.cases {
            let mark = if c.passed { "ok  " } else { "FAIL" };
            let _ = writeln!(
                out,
                "  {mark}  {} [{}, fuel {}]",
                c.name, c.outcome, c.fuel_used
            );
            for f in &c.failures {
                let _ = writeln!(out, "          {f}");
            }
        }
    }
    if activate_hint && v.status == "accepted" {
        let _ = writeln!(
            out,
            "\nActivate it: lethe policy activate --tenant {} --version {}",
            sh(tenant),
            v.version
        );
    }
    out
}

/// `tenant acme: version 6 → 7 (activate) by op-key-1`, and the reason on
/// a line of its own.
pub(super) fn render_activation(a: &Activation, tenant: &str) -> String {
    let tenant = if a.tenant.is_empty() {
        tenant
    } else {
        &a.tenant
    };
    let mut out = format!(
        "tenant {tenant}: version {} → {} ({}) by {}",
        from(a.from_version),
        a.to_version,
        a.kind,
        a.activated_by
    );
    if let Some(r) = a.reason.as_deref().filter(|r| !r.is_empty()) {
        let _ = write!(out, "\n  reason: {}", one_line(r, usize::MAX));
    }
    out
}

/// The versions, newest first as the server sends them, `*` marking the
/// active one.
pub(super) fn render_versions(versions: &[Version], active: Option<i64>, tenant: &str) -> String {
    if versions.is_empty() {
        return format!(
            "Tenant {tenant} has no versions yet. Upload one: \
             lethe policy deploy --tenant {} component.wasm\n",
            sh(tenant)
        );
    }
    let header = [
        "", "VERSION", "STATUS", "SHA256", "POLICY", "SIZE", "BY", "CREATED", "MESSAGE",
    ];
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                if active == Some(v.version) { "*" } else { "" }.to_owned(),
                v.version.to_string(),
                v.status.clone(),
                short_sha(&v.sha256).to_owned(),
                policy_name(v.policy.as_ref()),
                size(v.size_bytes),
                v.uploaded_by.clone(),
                utc(v.created_at),
                v.message
                    .as_deref()
                    .map_or_else(String::new, |m| one_line(m, 60)),
            ]
        })
        .collect();
    let mut out = table(Some(&header), &rows);
    match active {
        Some(n) => {
            let _ = writeln!(out, "\n* active: version {n}");
        }
        None => out.push_str("\nNo version is active.\n"),
    }
    out
}

/// A tenant's deployment: the active version, the `history` latest
/// activations, and what each replica serves. `now_ms` says how long ago
/// each replica was seen.
pub(super) fn render_status(s: &Status, now_ms: i64, history: usize) -> String {
    let mut out = String::new();
    match &s.active {
        Some(v) => {
            let _ = writeln!(
                out,
                "Tenant {}: version {} active ({}, sha256 {})",
                s.tenant,
                v.version,
                policy_name(v.policy.as_ref()),
                short_sha(&v.sha256)
            );
            let _ = write!(out, "  uploaded {} by {}", utc(v.created_at), v.uploaded_by);
            if let Some(m) = v.message.as_deref().filter(|m| !m.is_empty()) {
                let _ = write!(out, ": {}", one_line(m, 80));
            }
            out.push('\n');
        }
        None => {
            let _ = writeln!(out, "Tenant {}: no active version", s.tenant);
        }
    }

    out.push('\n');
    if s.activations.is_empty() {
        out.push_str("Activations: none\n");
    } else {
        let shown = &s.activations[..s.activations.len().min(history)];
        if shown.len() < s.activations.len() {
            let _ = writeln!(
                out,
                "Activations (latest {} of {}; --json has them all):",
                shown.len(),
                s.activations.len()
            );
        } else {
            out.push_str("Activations (latest first):\n");
        }
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|a| {
                vec![
                    utc(a.at),
                    format!("{} → {}", from(a.from_version), a.to_version),
                    a.kind.clone(),
                    format!("by {}", a.activated_by),
                    a.reason
                        .as_deref()
                        .map_or_else(String::new, |r| one_line(r, 60)),
                ]
            })
            .collect();
        out.push_str(&table(None, &rows));
    }

    out.push('\n');
    out.push_str(&render_replicas(
        &s.replicas,
        s.active.as_ref().map(|v| v.version),
        now_ms,
    ));
    out
}

fn render_replicas(replicas: &[Replica], active: Option<i64>, now_ms: i64) -> String {
    if replicas.is_empty() {
        return "Replicas: none seen recently\n".to_owned();
    }
    let mut out = format!("Replicas ({}):\n", replicas.len());
    let header = ["REPLICA", "SERVING", "WANTED", "ERROR", "SEEN"];
    let rows: Vec<Vec<String>> = replicas
        .iter()
        .map(|r| {
            vec![
                r.replica.clone(),
                r.serving.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                r.wanted.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                r.error
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |e| one_line(e, 60)),
                format!(
                    "{} ago",
                    span(now_ms.saturating_sub(r.seen_at).max(0) / 1000)
                ),
            ]
        })
        .collect();
    out.push_str(&table(Some(&header), &rows));
    if let Some(v) = active {
        let serving = replicas.iter().filter(|r| r.serving == Some(v)).count();
        let failing = replicas.iter().filter(|r| r.error.is_some()).count();
        let _ = write!(
            out,
            "{serving} of {} replicas serve version {v}",
            replicas.len()
        );
        if failing > 0 {
            let _ = write!(out, "; {failing} could not load the version it wanted");
        }
        out.push('\n');
    }
    out
}

pub(super) fn render_tenants(tenants: &[Tenant]) -> String {
    if tenants.is_empty() {
        return "No tenants yet. Create one: lethe policy create-tenant --id ID\n".to_owned();
    }
    let header = ["TENANT", "NAME", "ACTIVE", "CREATED"];
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.active_version
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                utc(t.created_at),
            ]
        })
        .collect();
    table(Some(&header), &rows)
}

pub(super) fn render_created(t: &Tenant) -> String {
    format!(
        "created tenant {} ({})\nDeploy a policy: lethe policy deploy --tenant {} component.wasm",
        t.id,
        t.name,
        sh(&t.id)
    )
}

/// A replay report: the counts on one line, then what changed (outcome
/// transitions, plan changes, rule changes) and examples of it.
pub(super) fn render_replay(r: &Replay) -> String {
    let mut out = format!(
        "replayed {} recorded decisions of {} on version {} in {} ({:.0}/s): \
         {} unchanged, {} changed, {} faults",
        r.requests,
        r.tenant,
        r.version,
        elapsed(r.elapsed_ms),
        r.per_second,
        r.unchanged,
        r.changed,
        r.faults
    );
    if r.unreadable > 0 {
        let _ = write!(
            out,
            "; {} records could not be read and were skipped",
            r.unreadable
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "  report {} by {}, {}; {}",
        r.id,
        r.created_by,
        utc(r.created_at),
        window(r)
    );
    if r.requests == 0 {
        out.push_str("\nNo recorded decision in this window: nothing was compared.\n");
        return out;
    }
    if r.changed == 0 && r.faults == 0 {
        let _ = writeln!(
            out,
            "\nVersion {} decides every one of them as recorded.",
            r.version
        );
        return out;
    }
    if !r.transitions.is_empty() {
        out.push_str("\nTransitions:\n");
        let rows: Vec<Vec<String>> = r
            .transitions
            .iter()
            .map(|t| {
                vec![
                    t.from.clone(),
                    "→".to_owned(),
                    t.to.clone(),
                    t.count.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(None, &rows));
    }
    if !r.plan_changes.is_empty() {
        out.push_str("\nPlan changes (allowed both times):\n");
        let header = ["CATEGORY", "FROM", "TO", "COUNT"];
        let rows: Vec<Vec<String>> = r
            .plan_changes
            .iter()
            .map(|p| {
                vec![
                    p.category.clone(),
                    p.from.clone(),
                    p.to.clone(),
                    p.count.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(Some(&header), &rows));
    }
    let _ = writeln!(
        out,
        "\nRule changes: {} (same outcome; other rules, codes, messages or plan)",
        r.rule_changes
    );
    if !r.examples.is_empty() {
        let _ = writeln!(
            out,
            "\nExamples ({} of {}):",
            r.examples.len(),
            r.changed + r.faults
        );
        let header = ["ACTION ID", "SUBJECT", "ACTION", "OUTCOME", "RULES"];
        let rows: Vec<Vec<String>> = r
            .examples
            .iter()
            .map(|e| {
                let now = match &e.fault {
                    Some(f) => format!("fault: {}", one_line(f, 60)),
                    None => rules(&e.to_rules),
                };
                vec![
                    e.action_id.clone(),
                    e.subject.clone(),
                    e.action.clone(),
                    format!("{} → {}", e.from, e.to),
                    format!("{} → {now}", rules(&e.from_rules)),
                ]
            })
            .collect();
        out.push_str(&table(Some(&header), &rows));
    }
    out
}

/// A tenant's stored replay reports, newest first as the server sends
/// them.
pub(super) fn render_replays(replays: &[Replay], tenant: &str) -> String {
    if replays.is_empty() {
        return format!(
            "Tenant {tenant} has no replays yet. Run one: \
             lethe policy replay --tenant {} --version N\n",
            sh(tenant)
        );
    }
    let header = [
        "ID", "VERSION", "CREATED", "BY", "REQUESTS", "CHANGED", "FAULTS",
    ];
    let rows: Vec<Vec<String>> = replays
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.version.to_string(),
                utc(r.created_at),
                r.created_by.clone(),
                r.requests.to_string(),
                r.changed.to_string(),
                r.faults.to_string(),
            ]
        })
        .collect();
    let mut out = table(Some(&header), &rows);
    let _ = writeln!(
        out,
        "\nShow one: lethe policy replays --tenant {} ID",
        sh(tenant)
    );
    out
}

// ---------------------------------------------------------------------------
// Pieces

/// `name@version`, or `-` when the gate stopped before `describe()`.
fn policy_name(p: Option<&super::wire::PolicyName>) -> String {
    match p {
        Some(p) if p.version.is_empty() => p.name.clone(),
        Some(p) => format!("{}@{}", p.name, p.version),
        None => "-".to_owned(),
    }
}

fn from(v: Option<i64>) -> String {
    v.map_or_else(|| "none".to_owned(), |n| n.to_string())
}

/// `45 ms`, `0.8 s` under a minute, `2m 5s` from there on.
fn elapsed(ms: u64) -> String {
    if ms < 100 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        span(i64::try_from(ms / 1000).unwrap_or(i64::MAX))
    }
}

/// Which records a replay re-ran, as asked.
fn window(r: &Replay) -> String {
    let mut out = match r.last {
        Some(n) => format!("the latest {n} records"),
        None => "every record".to_owned(),
    };
    if let Some(t) = r.since {
        let _ = write!(out, " since {}", utc(t));
    }
    if let Some(t) = r.until {
        let _ = write!(out, " until {}", utc(t));
    }
    out
}

/// Rule ids as one cell; `-` for none.
fn rules(ids: &[String]) -> String {
    if ids.is_empty() {
        "-".to_owned()
    } else {
        ids.join(", ")
    }
}

/// The first 12 hex digits: enough to tell versions apart, and what the
/// server logs.
pub(super) fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// `812 B`, `12.5 KiB`, `1.2 MiB`.
fn size(bytes: i64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes.max(0) as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

/// On one line, at most `max` characters (an ellipsis marking the cut).
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use lethe::deploy::VersionStatus;

    use super::super::wire::fixtures::{activation, json, status, tenant, version, REPLAY};
    use super::super::wire::{Replay, ReplayList, Status, Tenant, Version};
    use super::*;

    fn read<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_json::from_str(text).expect("reads")
    }

    #[test]
    fn an_accepted_version() {
        let v: Version = read(&json(&version(7, VersionStatus::Accepted)));
        let out = render_version(&v, "acme", true);
        assert!(
            out.starts_with(
                "Version 7 of tenant acme: accepted (sha256 3f2a9c1b0d4e, 1.2 MiB)\n\
                 \x20 policy acme-deletion@1.4.0, contract 0.2.0\n\
                 \x20 message: stricter admin rule\n"
            ),
            "{out}"
        );
        assert!(out.contains("\n  component  passed\n"), "{out}");
        assert!(
            out.contains("\n  cases      passed  2 cases passed\n"),
            "{out}"
        );
        assert!(
            out.contains("\n  ok    members go [allow, fuel 900]\n"),
            "{out}"
        );
        assert!(
            out.ends_with("\nActivate it: lethe policy activate --tenant acme --version 7\n"),
            "{out}"
        );
        assert!(!render_version(&v, "acme", false).contains("Activate it"));
    }

    #[test]
    fn a_rejected_version() {
        let v: Version = read(&json(&version(8, VersionStatus::Rejected)));
        let out = render_version(&v, "acme", true);
        assert!(
            out.starts_with("Version 8 of tenant acme: rejected (sha256"),
            "{out}"
        );
        assert!(
            !out.contains("policy "),
            "no describe() for a rejected one: {out}"
        );
        assert!(
            out.contains("\n  cases      failed  1 of 2 cases failed\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "\n  FAIL  members go [deny, fuel 900]\n          \
                 expected allow, got deny (subject-is-admin)\n"
            ),
            "{out}"
        );
        assert!(!out.contains("Activate it"), "{out}");
    }

    #[test]
    fn activations() {
        let a = read(&json(&activation(Some(8), 7)));
        assert_eq!(
            render_activation(&a, "acme"),
            "tenant acme: version 8 → 7 (rollback) by op-key-1\n  reason: v8 escalates too much"
        );
        let mut a = read::<super::super::wire::Activation>(&json(&activation(None, 1)));
        a.reason = None;
        assert_eq!(
            render_activation(&a, "x"),
            "tenant acme: version none → 1 (rollback) by op-key-1"
        );
    }

    #[test]
    fn version_list() {
        let vs: Vec<Version> = vec![
            read(&json(&version(8, VersionStatus::Rejected))),
            read(&json(&version(7, VersionStatus::Accepted))),
        ];
        let out = render_versions(&vs, Some(7), "acme");
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("     VERSION  STATUS    SHA256"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("     8        rejected  3f2a9c1b0d4e  -  "),
            "{out}"
        );
        assert!(
            lines[2].starts_with("  *  7        accepted  3f2a9c1b0d4e  acme-deletion@1.4.0  1.2 MiB  op-key-1  2026-09-21 14:13:20 UTC  stricter admin rule"),
            "{out}"
        );
        assert!(out.ends_with("\n* active: version 7\n"), "{out}");
        assert!(render_versions(&vs, None, "acme").ends_with("\nNo version is active.\n"));
        assert!(render_versions(&[], None, "a b").contains("deploy --tenant 'a b' component"));
    }

    #[test]
    fn a_status() {
        let s: Status = read(&json(&status()));
        let out = render_status(&s, 1_790_000_200_000, 10);
        assert!(
            out.starts_with(
                "Tenant acme: version 7 active (acme-deletion@1.4.0, sha256 3f2a9c1b0d4e)\n\
                 \x20 uploaded 2026-09-21 14:13:20 UTC by op-key-1: stricter admin rule\n\n\
                 Activations (latest first):\n\
                 \x20 2026-09-21 14:15:00 UTC  8 → 7     rollback  by op-key-1  v8 escalates too much\n\
                 \x20 2026-09-21 14:15:00 UTC  none → 8  rollback  by op-key-1  v8 escalates too much\n\n\
                 Replicas (2):\n\
                 \x20 REPLICA          SERVING  WANTED  ERROR          SEEN\n\
                 \x20 web-1:41:a1b2c3  7        7       -              4s ago\n\
                 \x20 web-2:17:d4e5f6  8        7       out of memory  50s ago\n\
                 1 of 2 replicas serve version 7; 1 could not load the version it wanted\n"
            ),
            "{out}"
        );
        let out = render_status(&s, 1_790_000_200_000, 1);
        assert!(
            out.contains("Activations (latest 1 of 2; --json has them all):\n"),
            "{out}"
        );
        let empty = Status {
            active: None,
            activations: vec![],
            replicas: vec![],
            ..s
        };
        assert_eq!(
            render_status(&empty, 0, 10),
            "Tenant acme: no active version\n\nActivations: none\n\nReplicas: none seen recently\n"
        );
    }

    #[test]
    fn tenants() {
        let t: Tenant = read(&json(&tenant()));
        assert_eq!(
            render_tenants(std::slice::from_ref(&t)),
            "  TENANT  NAME       ACTIVE  CREATED\n  acme    Acme Corp  7       2026-05-28 20:26:40 UTC\n"
        );
        assert!(render_created(&t).ends_with("lethe policy deploy --tenant acme component.wasm"));
    }

    #[test]
    fn pieces() {
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(short_sha("0123456789abcdef"), "0123456789ab");
        assert_eq!(size(812), "812 B");
        assert_eq!(size(12_800), "12.5 KiB");
        assert_eq!(size(1_258_291), "1.2 MiB");
        assert_eq!(one_line("a\n  b", 10), "a b");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(sh("t 4"), "'t 4'");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(span(845), "14m 5s");
        assert_eq!(span(90_000), "1d 1h");
    }

    #[test]
    fn a_replay() {
        let r: Replay = read(REPLAY);
        assert_eq!(
            render_replay(&r),
            "replayed 1234 recorded decisions of t2 on version 3 in 0.8 s (1520/s): \
             1000 unchanged, 200 changed, 34 faults\n\
             \x20 report rep-1f3a by key-op1, 2026-09-21 14:13:20 UTC; \
             the latest 1000 records until 2026-09-21 14:13:20 UTC\n\
             \n\
             Transitions:\n\
             \x20 allow     →  deny   12\n\
             \x20 allow     →  fault  34\n\
             \x20 escalate  →  allow  183\n\
             \n\
             Plan changes (allowed both times):\n\
             \x20 CATEGORY          FROM      TO       COUNT\n\
             \x20 deals             transfer  cascade  3\n\
             \x20 (restore window)  30 days   0 days   2\n\
             \n\
             Rule changes: 5 (same outcome; other rules, codes, messages or plan)\n\
             \n\
             Examples (2 of 234):\n\
             \x20 ACTION ID  SUBJECT  ACTION  OUTCOME        RULES\n\
             \x20 act-9      t2-u5    delete  allow → deny   members-go → admins-kept, no-open-deals\n\
             \x20 act-12     t2-u7    lock    allow → fault  members-go → fault: out of fuel (budget 1000000)\n"
        );
    }

    #[test]
    fn replay_edges() {
        let sample: Replay = read(REPLAY);
        // Nothing changed: no tables, one sentence.
        let same = Replay {
            unchanged: 1234,
            changed: 0,
            faults: 0,
            transitions: vec![],
            rule_changes: 0,
            plan_changes: vec![],
            examples: vec![],
            since: Some(1_789_913_600),
            until: None,
            elapsed_ms: 125_400,
            per_second: 9.84,
            ..sample.clone()
        };
        let out = render_replay(&same);
        assert!(
            out.starts_with(
                "replayed 1234 recorded decisions of t2 on version 3 in 2m 5s (10/s): "
            ),
            "{out}"
        );
        assert!(
            out.contains("; the latest 1000 records since 2026-09-20 14:13:20 UTC\n"),
            "{out}"
        );
        assert!(
            out.ends_with("\n\nVersion 3 decides every one of them as recorded.\n"),
            "{out}"
        );
        assert!(!out.contains("Transitions"), "{out}");

        // Nothing recorded in the window.
        let none = Replay {
            requests: 0,
            unchanged: 0,
            last: None,
            unreadable: 2,
            ..same
        };
        let out = render_replay(&none);
        assert!(
            out.contains(
                "0 unchanged, 0 changed, 0 faults; 2 records could not be read and were skipped\n"
            ),
            "{out}"
        );
        assert!(out.contains("; every record since"), "{out}");
        assert!(
            out.ends_with("\n\nNo recorded decision in this window: nothing was compared.\n"),
            "{out}"
        );

        // Only faults, and an example without rules.
        let mut faults = Replay {
            transitions: sample.transitions[1..2].to_vec(),
            plan_changes: vec![],
            examples: sample.examples[1..].to_vec(),
            ..sample
        };
        faults.examples[0].from_rules.clear();
        let out = render_replay(&faults);
        assert!(!out.contains("Plan changes"), "{out}");
        assert!(
            out.contains("\n  act-12     t2-u7    lock    allow → fault  - → fault: out of fuel"),
            "{out}"
        );
    }

    #[test]
    fn replay_list() {
        let l: ReplayList = read(&format!(r#"{{"replays":[{REPLAY}]}}"#));
        assert_eq!(
            render_replays(&l.replays, "t2"),
            "  ID        VERSION  CREATED                  BY       REQUESTS  CHANGED  FAULTS\n\
             \x20 rep-1f3a  3        2026-09-21 14:13:20 UTC  key-op1  1234      200      34\n\
             \n\
             Show one: lethe policy replays --tenant t2 ID\n"
        );
        assert_eq!(
            render_replays(&[], "t 2"),
            "Tenant t 2 has no replays yet. Run one: \
             lethe policy replay --tenant 't 2' --version N\n"
        );
    }

    #[test]
    fn elapsed_times() {
        assert_eq!(elapsed(0), "0 ms");
        assert_eq!(elapsed(99), "99 ms");
        assert_eq!(elapsed(100), "0.1 s");
        assert_eq!(elapsed(812), "0.8 s");
        assert_eq!(elapsed(59_949), "59.9 s");
        assert_eq!(elapsed(60_000), "1m");
        assert_eq!(elapsed(3_725_000), "1h 2m");
    }
}
