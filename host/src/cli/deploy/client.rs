//! The operator API (`/v1/admin/...`) of `lethe serve`, and what its
//! refusals mean for people. The client itself is [`super::super::http`]'s,
//! shared with `lethe bulk`; the advice is this family's own, since it
//! speaks for an operator about any tenant.

use std::fmt::{self, Write as _};

use anyhow::anyhow;
use lethe::error_code::ErrorCode;
use reqwest::StatusCode;

use super::super::http::{sh, Failure, Http};
use super::OperatorServerArgs;

/// A client of the operator API: its URLs start at `/v1/admin`.
pub(super) fn connect(args: &OperatorServerArgs) -> anyhow::Result<Http> {
    Http::new(&args.http, &["v1", "admin"])
}

/// The error of a request the server refused (a 4xx): exits 1, where
/// transport errors, server errors and unreadable answers exit 2.
#[derive(Debug)]
pub(super) struct Refused(pub(super) String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// What the refused request asked, for hints that say what to do next.
pub(super) enum Asked<'a> {
    Tenants,
    CreateTenant {
        id: &'a str,
    },
    Upload {
        tenant: &'a str,
    },
    Versions {
        tenant: &'a str,
    },
    Activate {
        tenant: &'a str,
        version: i64,
    },
    Rollback {
        tenant: &'a str,
        version: Option<i64>,
    },
    Status {
        tenant: &'a str,
    },
    Replay {
        tenant: &'a str,
        version: i64,
    },
    Replays {
        tenant: &'a str,
        id: Option<&'a str>,
    },
}

impl Asked<'_> {
    /// The tenant asked about, if any.
    pub(super) fn tenant(&self) -> Option<&str> {
        match self {
            Asked::Tenants => None,
            Asked::CreateTenant { id: tenant }
            | Asked::Upload { tenant }
            | Asked::Versions { tenant }
            | Asked::Activate { tenant, .. }
            | Asked::Rollback { tenant, .. }
            | Asked::Status { tenant }
            | Asked::Replay { tenant, .. }
            | Asked::Replays { tenant, .. } => Some(tenant),
        }
    }
}

/// The error for a failure; with `--json` the problem document also goes
/// to stdout, so a script can switch on its `code`.
pub(super) fn fail(f: &Failure, asked: &Asked<'_>, json: bool) -> anyhow::Error {
    f.print_if_json(json);
    failure_error(f, explain(f, asked))
}

/// A refusal (4xx) as [`Refused`], anything else as a plain error.
pub(super) fn failure_error(f: &Failure, msg: String) -> anyhow::Error {
    if f.refused() {
        anyhow::Error::new(Refused(msg))
    } else {
        anyhow!(msg)
    }
}

/// One message for a failure: the problem's code and status, the server's
/// detail, and what to do about it.
pub(super) fn explain(f: &Failure, asked: &Asked<'_>) -> String {
    let mut msg = f.headline();
    let Some(p) = &f.problem else {
        if matches!(
            f.status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            msg.push_str(match asked {
                Asked::Replay { .. } | Asked::Replays { .. } => {
                    "\n  the server may predate policy replays; check --server"
                }
                _ => "\n  the server may predate policy deployment (/v1/admin); check --server",
            });
        }
        return msg;
    };
    let hint = p
        .code
        .parse::<ErrorCode>()
        .ok()
        .and_then(|code| hint(code, asked));
    if let Some(hint) = hint {
        let _ = write!(msg, "\n  {hint}");
    }
    msg
}

/// What to do about `code` after `asked`; `None` where there is nothing to
/// add to the server's own detail.
fn hint(code: ErrorCode, asked: &Asked<'_>) -> Option<String> {
    let t = asked.tenant().map(sh).unwrap_or_default();
    let hint = match (code, asked) {
        (ErrorCode::Unauthorized, _) => "the server does not accept the key: check --key / \
             LETHE_KEY (an operator key, from `lethe keys create --operator`)"
            .to_owned(),
        (ErrorCode::OperatorKeyRequired, _) => "this needs an operator key \
             (`lethe keys create --operator`); tenant and support keys cannot deploy"
            .to_owned(),
        (ErrorCode::NotFound, Asked::Activate { version, .. } | Asked::Replay { version, .. })
        | (
            ErrorCode::NotFound,
            Asked::Rollback {
                version: Some(version),
                ..
            },
        ) => format!(
            "no tenant {t}, or it has no version {version}: \
             see `lethe policy versions --tenant {t}`"
        ),
        (ErrorCode::NotFound, Asked::Replays { id: Some(id), .. }) => {
            format!("no replay {id} of tenant {t}: see `lethe policy replays --tenant {t}`")
        }
        (ErrorCode::NotFound, Asked::Tenants | Asked::CreateTenant { .. }) => return None,
        (ErrorCode::NotFound, _) => format!(
            "no tenant {t}: see `lethe policy tenants`, or create it with \
             `lethe policy create-tenant --id {t}`"
        ),
        (ErrorCode::TenantExists, _) => {
            format!("tenant {t} already exists: see `lethe policy tenants`")
        }
        (ErrorCode::VersionRejected, Asked::Replay { version, .. }) => format!(
            "version {version} failed validation, so it is never run, not even on recorded \
             requests; see why in `lethe policy versions --tenant {t}`"
        ),
        (ErrorCode::InvalidInput, Asked::Replay { .. }) => {
            "check --last (at least 1, at most the server's limit) and that --since is not \
             after --until"
                .to_owned()
        }
        (ErrorCode::VersionRejected, _) => format!(
            "a rejected version is kept to show why, never activated; \
             see `lethe policy versions --tenant {t}`"
        ),
        (ErrorCode::AlreadyActive, _) => {
            format!("nothing changed; see `lethe policy status --tenant {t}`")
        }
        (ErrorCode::NothingToRollBack, _) => format!(
            "tenant {t} has no earlier activation to return to; name a version with \
             `lethe policy rollback --tenant {t} --version N` \
             (see `lethe policy versions --tenant {t}`)"
        ),
        (ErrorCode::BodyTooLarge, _) => {
            "the component is larger than the server accepts for an upload".to_owned()
        }
        _ => return None,
    };
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::super::super::http::{failure, ServerArgs};
    use super::*;

    #[test]
    fn urls_are_the_admin_api() {
        let args = OperatorServerArgs {
            http: ServerArgs::at("http://127.0.0.1:8080/lethe/"),
        };
        let api = connect(&args).expect("client");
        let url = api.url(&["tenants", "t 4", "versions"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/lethe/v1/admin/tenants/t%204/versions"
        );
    }

    #[test]
    fn problem_messages() {
        let f = failure(
            409,
            r#"{"status":409,"code":"nothing-to-roll-back","detail":"there is no earlier activation to roll back to"}"#,
        );
        assert!(f.refused());
        let msg = explain(
            &f,
            &Asked::Rollback {
                tenant: "t 4",
                version: None,
            },
        );
        assert!(
            msg.starts_with(
                "nothing-to-roll-back (409): there is no earlier activation to roll back to\n  "
            ),
            "{msg}"
        );
        assert!(
            msg.contains("lethe policy rollback --tenant 't 4' --version N"),
            "{msg}"
        );

        let f = failure(404, r#"{"title":"Not Found","code":"not-found"}"#);
        let msg = explain(
            &f,
            &Asked::Activate {
                tenant: "t4",
                version: 9,
            },
        );
        assert!(msg.starts_with("not-found (404): Not Found\n"), "{msg}");
        assert!(msg.contains("has no version 9"), "{msg}");
        let msg = explain(&f, &Asked::Status { tenant: "t4" });
        assert!(msg.contains("lethe policy create-tenant --id t4"), "{msg}");

        // A code this build does not know is shown as it came, no hint.
        let f = failure(409, r#"{"code":"some-future-code","detail":"d"}"#);
        assert_eq!(explain(&f, &Asked::Tenants), "some-future-code (409): d");

        // Not a problem document: the status and the start of the body.
        let f = failure(404, "<html>nope</html>");
        assert!(f.problem.is_none());
        let msg = explain(&f, &Asked::Tenants);
        assert!(
            msg.starts_with("HTTP 404 Not Found: <html>nope</html>\n"),
            "{msg}"
        );

        // Server errors are failures, not refusals.
        let f = failure(500, r#"{"code":"internal","detail":"see the log"}"#);
        assert!(!f.refused());
        let e = failure_error(&f, explain(&f, &Asked::Tenants));
        assert!(e.downcast_ref::<Refused>().is_none());
        let f = failure(403, r#"{"code":"operator-key-required"}"#);
        let e = failure_error(&f, explain(&f, &Asked::Tenants));
        assert!(e.downcast_ref::<Refused>().is_some());
        assert!(
            format!("{e}").contains("lethe keys create --operator"),
            "{e}"
        );
    }

    #[test]
    fn replay_refusals() {
        let replay = Asked::Replay {
            tenant: "t2",
            version: 3,
        };
        let f = failure(404, r#"{"code":"not-found","detail":"no such version"}"#);
        let msg = explain(&f, &replay);
        assert_eq!(
            msg,
            "not-found (404): no such version\n  no tenant t2, or it has no version 3: \
             see `lethe policy versions --tenant t2`"
        );
        let f = failure(409, r#"{"code":"version-rejected"}"#);
        let e = fail(&f, &replay, false);
        assert!(e.downcast_ref::<Refused>().is_some(), "a refusal exits 1");
        let msg = format!("{e}");
        assert!(
            msg.starts_with("version-rejected (409)\n  version 3 failed validation"),
            "{msg}"
        );
        let f = failure(
            422,
            r#"{"code":"invalid-input","detail":"since is after until"}"#,
        );
        assert!(explain(&f, &replay).contains("--since is not after --until"));
        let one = Asked::Replays {
            tenant: "t 2",
            id: Some("rep-9"),
        };
        let f = failure(404, r#"{"code":"not-found"}"#);
        assert!(explain(&f, &one).ends_with(
            "no replay rep-9 of tenant 't 2': see `lethe policy replays --tenant 't 2'`"
        ));
        // An older server, without the route.
        let f = failure(405, "");
        assert_eq!(
            explain(&f, &replay),
            "HTTP 405 Method Not Allowed\n  the server may predate policy replays; check --server"
        );
    }
}
