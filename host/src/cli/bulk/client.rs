//! The HTTP client of `lethe serve`: one server, key and tenant; every
//! answer either the body of a success or a [`Failure`] kept whole, so the
//! command can explain it in terms of what was asked ([`super::explain`]).

use std::time::Duration;

use anyhow::{anyhow, Context};
use lethe::bulk::Job;
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use serde::Deserialize;

use super::explain::{explain, Asked};
use super::ServerArgs;

/// For the short requests (job reads, cancel). Preview and execute get no
/// overall limit: deciding 10 000 users may legitimately take a while.
pub(super) const SHORT_REQUEST: Duration = Duration::from_secs(30);

/// A client bound to one server, key and tenant.
pub(super) struct Api {
    pub(super) client: Client,
    pub(super) base: Url,
    pub(super) key: String,
    pub(super) tenant: String,
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
            tenant: args.tenant.clone(),
        })
    }

    /// `{server}/v1/tenants/{tenant}/{tail…}`, each segment percent-encoded.
    pub(super) fn url(&self, tail: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| anyhow!("--server {} is not a base URL", self.base))?;
            path.pop_if_empty()
                .extend(["v1", "tenants", self.tenant.as_str()])
                .extend(tail);
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

    /// `GET …/jobs/{id}`: the job, and its JSON as the server sent it (for
    /// `--json`, which prints the server's document, not a re-encoding).
    pub(super) async fn get_job(
        &self,
        job_id: &str,
    ) -> anyhow::Result<Result<(Job, String), Failure>> {
        let url = self.url(&["jobs", job_id])?;
        match self
            .call(self.client.get(url).timeout(SHORT_REQUEST))
            .await?
        {
            Ok(text) => Ok(Ok((parse(&text, "job")?, text))),
            Err(f) => Ok(Err(f)),
        }
    }

    /// The error for a refusal; with `--json` the problem document also goes
    /// to stdout, so a script can switch on its `code`.
    pub(super) fn fail(&self, f: &Failure, asked: &Asked<'_>, json: bool) -> anyhow::Error {
        if json && f.problem.is_some() {
            println!("{}", f.body.trim_end());
        }
        anyhow!(explain(f, &self.tenant, asked))
    }
}

/// Reads one of the server's documents. A field missing is an error, not a
/// default: a summary with made-up zeroes (`--confirm 0`) would be worse.
pub(super) fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> anyhow::Result<T> {
    serde_json::from_str(text)
        .with_context(|| format!("the server's {what} is not what was expected"))
}

#[cfg(test)]
mod tests {
    use lethe::bulk::Preview;

    use super::super::fixtures::{JOB, PREVIEW};
    use super::*;

    #[test]
    fn later_fields_are_ignored() {
        let p: Preview = parse(
            &PREVIEW
                .replace(r#"{"preview_id""#, r#"{"new_field":[1],"preview_id""#)
                .replace(r#"{"user_id""#, r#"{"new":null,"user_id""#),
            "preview",
        )
        .expect("unknown fields are ignored, also in the sample");
        assert_eq!((p.matched, p.sample.len()), (37, 1));
        let j: Job = parse(
            &JOB.replace(r#""status":"completed""#, r#""status":"running","new":{}"#),
            "job",
        )
        .expect("unknown fields are ignored");
        assert!(!j.is_terminal());
        // A field missing is not filled in: a summary with made-up zeroes
        // (`--confirm 0`) would be worse than the error.
        let err = parse::<Preview>(r#"{"preview_id":"bp-2"}"#, "preview").unwrap_err();
        assert!(format!("{err:#}").contains("preview is not what was expected"));
    }

    #[test]
    fn problems_need_a_code() {
        let f = Failure::new(StatusCode::NOT_FOUND, "<html>nope</html>".into());
        assert!(f.problem.is_none());
        let f = Failure::new(StatusCode::CONFLICT, r#"{"title":"Conflict"}"#.into());
        assert!(
            f.problem.is_none(),
            "a document without a code is no problem"
        );
        let f = Failure::new(
            StatusCode::CONFLICT,
            r#"{"code":"some-future-code","detail":"d","extra":1}"#.into(),
        );
        let p = f.problem.expect("a problem");
        assert_eq!(
            (p.code.as_str(), p.detail.as_deref()),
            ("some-future-code", Some("d"))
        );
        assert_eq!(p.extensions.get("extra"), Some(&serde_json::json!(1)));
    }

    #[test]
    fn urls_are_built_per_segment() {
        let api = Api {
            client: Client::new(),
            base: Url::parse("http://127.0.0.1:8080/lethe/").expect("url"),
            key: "k".into(),
            tenant: "t 4".into(),
        };
        let url = api.url(&["jobs", "job/1", "events"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/lethe/v1/tenants/t%204/jobs/job%2F1/events"
        );
    }
}
