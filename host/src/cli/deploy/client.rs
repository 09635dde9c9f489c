//! The HTTP client of the operator API (`/v1/admin/...`) of `lethe serve`,
//! and what its refusals mean for people.
//!
//! Modelled on `lethe bulk`'s client, but kept apart: the bulk client is
//! bound to one tenant's `/v1/tenants/{t}` and explains bulk refusals, this
//! one speaks for an operator about any tenant.

use std::fmt::{self, Write as _};
use std::time::Duration;

use anyhow::{anyhow, Context};
use lethe::error_code::ErrorCode;
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use serde::Deserialize;

use super::render::sh;
use super::ServerArgs;

/// For every request but uploads: reads and activations are quick. An
/// upload gets no overall limit, since the server compiles the component
/// and runs its cases before it answers.
pub(super) const SHORT_REQUEST: Duration = Duration::from_secs(30);

/// A client bound to one server and key.
pub(super) struct Api {
    pub(super) client: Client,
    pub(super) base: Url,
    key: String,
}

/// A non-success answer, kept whole so that the command can explain it in
/// terms of what was asked.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) problem: Option<Problem>,
    pub(super) body: String,
}

/// An RFC 9457 problem document. Local and lenient (as in `lethe bulk`):
/// the code stays a string, so a code this build does not know is still
/// shown as it came.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Problem {
    pub(super) title: String,
    pub(super) code: String,
    pub(super) detail: Option<String>,
    #[serde(flatten)]
    pub(super) extensions: serde_json::Map<String, serde_json::Value>,
}

impl Failure {
    /// Only a document with a `code` is a problem; anything else (a proxy's
    /// HTML page, an empty 404) is reported as it came.
    pub(super) fn new(status: StatusCode, body: String) -> Failure {
        let problem = serde_json::from_str::<Problem>(&body)
            .ok()
            .filter(|p| !p.code.is_empty());
        Failure {
            status,
            problem,
            body,
        }
    }

    /// The server refused what was asked (4xx), as opposed to failing at it
    /// (5xx): the two exit differently.
    pub(super) fn refused(&self) -> bool {
        self.status.is_client_error()
    }
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
}

impl Asked<'_> {
    fn tenant(&self) -> Option<&str> {
        match self {
            Asked::Tenants => None,
            Asked::CreateTenant { id: tenant }
            | Asked::Upload { tenant }
            | Asked::Versions { tenant }
            | Asked::Activate { tenant, .. }
            | Asked::Rollback { tenant, .. }
            | Asked::Status { tenant } => Some(tenant),
        }
    }
}

impl Api {
    pub(super) fn new(args: &ServerArgs) -> anyhow::Result<Api> {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("lethe-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            client,
            base: args.server.clone(),
            key: args.key.clone(),
        })
    }

    /// `{server}/v1/admin/{tail…}`, each segment percent-encoded.
    pub(super) fn url(&self, tail: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| anyhow!("--server {} is not a base URL", self.base))?;
            path.pop_if_empty().extend(["v1", "admin"]).extend(tail);
        }
        Ok(url)
    }

    /// Sends with the key. The outer error is the transport (nothing was
    /// answered); the inner one is the server's refusal.
    pub(super) async fn call(
        &self,
        req: RequestBuilder,
    ) -> anyhow::Result<Result<String, Failure>> {
        let resp =
            req.bearer_auth(&self.key).send().await.with_context(|| {
                format!("no answer from {} (is `lethe serve` running?)", self.base)
            })?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .with_context(|| format!("reading the answer from {}", self.base))?;
        if status.is_success() {
            Ok(Ok(body))
        } else {
            Ok(Err(Failure::new(status, body)))
        }
    }

    /// `GET {server}/v1/admin/{tail…}` with the short timeout.
    pub(super) async fn get(&self, tail: &[&str]) -> anyhow::Result<Result<String, Failure>> {
        let url = self.url(tail)?;
        self.call(self.client.get(url).timeout(SHORT_REQUEST)).await
    }

    /// The error for a failure; with `--json` the problem document also goes
    /// to stdout, so a script can switch on its `code`.
    pub(super) fn fail(&self, f: &Failure, asked: &Asked<'_>, json: bool) -> anyhow::Error {
        if json && f.problem.is_some() {
            println!("{}", f.body.trim_end());
        }
        failure_error(f, explain(f, asked))
    }
}

/// A refusal (4xx) as [`Refused`], anything else as a plain error.
pub(super) fn failure_error(f: &Failure, msg: String) -> anyhow::Error {
    if f.refused() {
        anyhow::Error::new(Refused(msg))
    } else {
        anyhow!(msg)
    }
}

/// Reads one of the server's documents.
pub(super) fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> anyhow::Result<T> {
    serde_json::from_str(text)
        .with_context(|| format!("the server's {what} is not what was expected"))
}

/// One message for a failure: the problem's code and status, the server's
/// detail, and what to do about it.
pub(super) fn explain(f: &Failure, asked: &Asked<'_>) -> String {
    let Some(p) = &f.problem else {
        let body: String = f.body.trim().chars().take(200).collect();
        let mut msg = format!("HTTP {}", f.status);
        if !body.is_empty() {
            let _ = write!(msg, ": {body}");
        }
        if matches!(
            f.status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            msg.push_str(
                "\n  the server may predate policy deployment (/v1/admin); check --server",
            );
        }
        return msg;
    };
    let mut msg = format!("{} ({})", p.code, f.status.as_u16());
    match (p.detail.as_deref(), p.title.as_str()) {
        (Some(d), _) if !d.is_empty() => {
            let _ = write!(msg, ": {d}");
        }
        (_, t) if !t.is_empty() => {
            let _ = write!(msg, ": {t}");
        }
        _ => {}
    }
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
        (ErrorCode::NotFound, Asked::Activate { version, .. })
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
        (ErrorCode::NotFound, Asked::Tenants | Asked::CreateTenant { .. }) => return None,
        (ErrorCode::NotFound, _) => format!(
            "no tenant {t}: see `lethe policy tenants`, or create it with \
             `lethe policy create-tenant --id {t}`"
        ),
        (ErrorCode::TenantExists, _) => {
            format!("tenant {t} already exists: see `lethe policy tenants`")
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
    use super::*;

    fn failure(status: u16, body: &str) -> Failure {
        Failure::new(
            StatusCode::from_u16(status).expect("valid status"),
            body.to_owned(),
        )
    }

    #[test]
    fn urls_are_built_per_segment() {
        let api = Api {
            client: Client::new(),
            base: Url::parse("http://127.0.0.1:8080/lethe/").expect("url"),
            key: "k".into(),
        };
        let url = api.url(&["tenants", "t 4", "versions"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/lethe/v1/admin/tenants/t%204/versions"
        );
        let api = Api {
            base: Url::parse("http://h:1").expect("url"),
            ..api
        };
        let url = api.url(&["tenants"]).expect("url");
        assert_eq!(url.as_str(), "http://h:1/v1/admin/tenants");
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
}
