//! What the commands that speak to a running `lethe serve` share: `lethe
//! bulk` (a tenant's `/v1/tenants/{t}`) and the operator side of `lethe
//! policy` (`/v1/admin`). The flags that say where the server is and who
//! asks, the HTTP client, the server's problem documents, and how a
//! command's error becomes its exit status; [`text`] and [`time`] hold how
//! their summaries are written.
//!
//! What a refusal means stays with each command family: the same code asks
//! for different advice after a bulk execute than after an activation.

mod text;
mod time;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use serde::Deserialize;

pub(super) use text::{sh, table};
pub(super) use time::{span, utc, TimeArg};

/// For the short requests (reads, cancels, activations). Bulk previews and
/// executes, uploads and replays get no overall limit: the server decides
/// thousands of users, compiles a component and runs its cases, or
/// re-decides recorded requests before it answers, which may legitimately
/// take a while.
pub(super) const SHORT_REQUEST: Duration = Duration::from_secs(30);

/// Where the server is and who asks. Each command family flattens this and
/// says which key it needs ([`key_help`]).
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Base URL of `lethe serve` (plain HTTP).
    #[arg(long, env = "LETHE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub(super) server: Url,
    /// The API key (`lethe keys create`).
    #[arg(long, env = "LETHE_KEY", hide_env_values = true)]
    pub(super) key: String,
}

/// Says which key a command family needs, in the help of `--key`:
/// `#[command(mut_args(key_help("…")))]` on the struct that flattens
/// [`ServerArgs`]. Not `mut_arg("key", …)`, which moves the flag to the end
/// of the usage line.
pub(super) fn key_help(help: &'static str) -> impl FnMut(clap::Arg) -> clap::Arg {
    move |arg| {
        if arg.get_id() == "key" {
            arg.help(help)
        } else {
            arg
        }
    }
}

/// A client bound to one server and key, and to one part of its API: every
/// URL starts with `root` (`["v1", "admin"]`).
pub(super) struct Http {
    pub(super) client: Client,
    pub(super) base: Url,
    pub(super) key: String,
    root: Vec<String>,
}

/// A non-success answer, kept whole so that the command can explain it in
/// terms of what was asked.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) problem: Option<Problem>,
    pub(super) body: String,
}

/// An RFC 9457 problem document; `code` is what the messages switch on.
/// Local because `lethe::api::problem::ProblemDetails` only serializes, and
/// lenient because a refusal may come from a proxy or an older server. The
/// code stays a string here: a newer server may answer with a code this
/// build does not know, and it is still shown as it came.
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
    /// A failure from its status and body. Only a document with a `code` is
    /// a problem; anything else (a proxy's HTML page, an empty 404) is
    /// reported as it came.
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
    /// (5xx).
    pub(super) fn refused(&self) -> bool {
        self.status.is_client_error()
    }

    /// The first line of the message for this failure: the problem's code
    /// and status and the server's detail (or title), `preview-stale (409):
    /// changed`; for an answer that is no problem document, the status and
    /// the start of the body. Each command adds what to do about it.
    pub(super) fn headline(&self) -> String {
        let Some(p) = &self.problem else {
            let body: String = self.body.trim().chars().take(200).collect();
            return if body.is_empty() {
                format!("HTTP {}", self.status)
            } else {
                format!("HTTP {}: {body}", self.status)
            };
        };
        let said = match (p.detail.as_deref(), p.title.as_str()) {
            (Some(d), _) if !d.is_empty() => d,
            (_, t) => t,
        };
        if said.is_empty() {
            format!("{} ({})", p.code, self.status.as_u16())
        } else {
            format!("{} ({}): {said}", p.code, self.status.as_u16())
        }
    }

    /// With `--json`, the problem document also goes to stdout, so a script
    /// can switch on its `code`.
    pub(super) fn print_if_json(&self, json: bool) {
        if json && self.problem.is_some() {
            println!("{}", self.body.trim_end());
        }
    }
}

impl Http {
    pub(super) fn new(args: &ServerArgs, root: &[&str]) -> anyhow::Result<Http> {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("lethe-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Http {
            client,
            base: args.server.clone(),
            key: args.key.clone(),
            root: root.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// `{server}/{root…}/{tail…}`, each segment percent-encoded.
    pub(super) fn url(&self, tail: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| anyhow!("--server {} is not a base URL", self.base))?;
            path.pop_if_empty().extend(&self.root).extend(tail);
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

    /// `GET {root…}/{tail…}` with the short timeout.
    pub(super) async fn get(&self, tail: &[&str]) -> anyhow::Result<Result<String, Failure>> {
        let url = self.url(tail)?;
        self.call(self.client.get(url).timeout(SHORT_REQUEST)).await
    }
}

/// Prints what the server answered: with `--json` its document as it came
/// (a script gets the server's own JSON, not a re-encoding of what this
/// build knows of it), else `summary` of it as read.
pub(super) fn show<T: serde::de::DeserializeOwned>(
    text: &str,
    json: bool,
    what: &str,
    summary: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", text.trim_end());
    } else {
        let doc: T = parse(text, what)?;
        println!("{}", summary(&doc).trim_end_matches('\n'));
    }
    Ok(())
}

/// Reads one of the server's documents. A field missing is an error, not a
/// default: a summary with made-up zeroes (`--confirm 0`) would be worse.
pub(super) fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> anyhow::Result<T> {
    serde_json::from_str(text)
        .with_context(|| format!("the server's {what} is not what was expected"))
}

/// A command's exit status. Its error is printed here, not in `main`
/// (which exits 2 for every error), because these commands document their
/// own exit codes: `status_of` says which an error gets.
pub(super) fn exit_status(
    result: anyhow::Result<ExitCode>,
    status_of: impl FnOnce(&anyhow::Error) -> u8,
) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(status_of(&e))
        }
    }
}

/// A failure as a server answers it, for the tests of what refusals mean.
#[cfg(test)]
pub(super) fn failure(status: u16, body: &str) -> Failure {
    Failure::new(
        StatusCode::from_u16(status).expect("valid status"),
        body.to_owned(),
    )
}

#[cfg(test)]
impl ServerArgs {
    /// The flags for the server at `url`, for the tests of URLs.
    pub(super) fn at(url: &str) -> ServerArgs {
        ServerArgs {
            server: Url::parse(url).expect("a URL"),
            key: "k".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_need_a_code() {
        let f = failure(404, "<html>nope</html>");
        assert!(f.problem.is_none());
        let f = failure(409, r#"{"title":"Conflict"}"#);
        assert!(
            f.problem.is_none(),
            "a document without a code is no problem"
        );
        let f = failure(409, r#"{"code":"some-future-code","detail":"d","extra":1}"#);
        let p = f.problem.expect("a problem");
        assert_eq!(
            (p.code.as_str(), p.detail.as_deref()),
            ("some-future-code", Some("d"))
        );
        assert_eq!(p.extensions.get("extra"), Some(&serde_json::json!(1)));
    }

    #[test]
    fn headlines() {
        let h = |status, body| failure(status, body).headline();
        assert_eq!(
            h(409, r#"{"code":"c","detail":"d","title":"T"}"#),
            "c (409): d"
        );
        assert_eq!(
            h(409, r#"{"code":"c","detail":"","title":"T"}"#),
            "c (409): T"
        );
        assert_eq!(h(409, r#"{"code":"c"}"#), "c (409)");
        assert_eq!(h(404, ""), "HTTP 404 Not Found");
        assert_eq!(
            h(502, " <html>bad gateway</html>\n"),
            "HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
        let long = "x".repeat(300);
        assert_eq!(
            h(500, &long),
            format!("HTTP 500 Internal Server Error: {}", &long[..200])
        );
        assert!(failure(422, "").refused() && !failure(500, "").refused());
    }

    #[test]
    fn urls_are_built_per_segment() {
        let args = ServerArgs::at("http://127.0.0.1:8080/lethe/");
        let http = Http::new(&args, &["v1", "tenants", "t 4"]).expect("client");
        let url = http.url(&["jobs", "job/1", "events"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/lethe/v1/tenants/t%204/jobs/job%2F1/events"
        );
        let http = Http::new(&ServerArgs::at("http://h:1"), &["v1", "admin"]).expect("client");
        let url = http.url(&["tenants"]).expect("url");
        assert_eq!(url.as_str(), "http://h:1/v1/admin/tenants");
        let http = Http::new(&ServerArgs::at("mailto:ops@example.com"), &["v1"]).expect("client");
        assert!(http.url(&["x"]).is_err(), "not a base URL");
    }
}
