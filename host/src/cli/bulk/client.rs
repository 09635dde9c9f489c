//! The HTTP client of `lethe serve` bound to one tenant's part of the API
//! (`/v1/tenants/{t}`): every answer either the body of a success or a
//! [`Failure`] kept whole, so the command can explain it in terms of what
//! was asked ([`super::explain`]). The client itself is
//! [`super::super::http`]'s.

use anyhow::anyhow;
use lethe::bulk::Job;

use super::super::http::{parse, Failure, Http};
use super::explain::{explain, Asked};
use super::TenantServerArgs;

/// A client bound to one server, key and tenant.
pub(super) struct Api {
    /// URLs start at `/v1/tenants/{tenant}`.
    pub(super) http: Http,
    pub(super) tenant: String,
}

impl Api {
    pub(super) fn new(args: &TenantServerArgs) -> anyhow::Result<Api> {
        Ok(Api {
            http: Http::new(&args.http, &["v1", "tenants", &args.tenant])?,
            tenant: args.tenant.clone(),
        })
    }

    /// `GET …/jobs/{id}`: the job, and its JSON as the server sent it (for
    /// `--json`, which prints the server's document, not a re-encoding).
    pub(super) async fn get_job(
        &self,
        job_id: &str,
    ) -> anyhow::Result<Result<(Job, String), Failure>> {
        match self.http.get(&["jobs", job_id]).await? {
            Ok(text) => Ok(Ok((parse(&text, "job")?, text))),
            Err(f) => Ok(Err(f)),
        }
    }

    /// The error for a refusal; with `--json` the problem document also goes
    /// to stdout, so a script can switch on its `code`.
    pub(super) fn fail(&self, f: &Failure, asked: &Asked<'_>, json: bool) -> anyhow::Error {
        f.print_if_json(json);
        anyhow!(explain(f, &self.tenant, asked))
    }
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
    fn urls_are_the_tenants() {
        let args = TenantServerArgs {
            http: super::super::super::http::ServerArgs::at("http://127.0.0.1:8080/lethe/"),
            tenant: "t 4".into(),
        };
        let api = Api::new(&args).expect("client");
        let url = api.http.url(&["jobs", "job/1", "events"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/lethe/v1/tenants/t%204/jobs/job%2F1/events"
        );
    }
}
