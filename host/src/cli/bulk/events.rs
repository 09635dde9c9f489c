//! Following a job to its end: its server-sent events while they come,
//! polling when they do not (the stream broke, closed early, stalled, or the
//! server does not offer it). Polling alone would always be correct; the
//! stream only makes the progress bar live without asking twice a second.

use std::pin::pin;
use std::time::Duration;

use anyhow::{anyhow, Context};
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt, TryStream, TryStreamExt};
use indicatif::ProgressBar;
use lethe::bulk::Job;

use super::super::http::{parse, sh};
use super::client::Api;
use super::explain::{explain, Asked};
use super::render::{progress_bar, show_progress};

/// How often to ask for the job when its event stream is gone.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// A stream that sends nothing for this long, not even a keep-alive
/// comment, is treated as broken (a half-open connection would otherwise
/// hang the CLI); polling takes over, which is always correct, only
/// chattier.
const STREAM_STALL: Duration = Duration::from_secs(30);

/// Follows a job to its end: the event stream while it works, polling when
/// it does not. Returns the final job and its JSON as the server sent it.
pub(super) async fn follow(
    api: &Api,
    mut job: Job,
    mut text: String,
) -> anyhow::Result<(Job, String)> {
    let bar = progress_bar(&job);
    if !job.is_terminal() {
        match watch_events(api, &job.job_id, &bar).await {
            Ok(Some(end)) => (job, text) = end,
            Ok(None) => bar.suspend(|| {
                tracing::warn!("the job's event stream closed before its end; polling instead");
            }),
            Err(e) => bar.suspend(|| {
                tracing::warn!(error = %format!("{e:#}"), "the job's event stream broke; polling instead");
            }),
        }
    }
    while !job.is_terminal() {
        tokio::time::sleep(POLL_EVERY).await;
        (job, text) = match api.get_job(&job.job_id).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(f)) => {
                bar.abandon();
                let asked = Asked::Job {
                    job_id: &job.job_id,
                };
                return Err(anyhow!(explain(&f, &api.tenant, &asked)));
            }
            Err(e) => {
                bar.abandon();
                return Err(e.context(format!(
                    "lost the job; it goes on on the server: \
                     lethe bulk status --tenant {} {}",
                    sh(&api.tenant),
                    sh(&job.job_id)
                )));
            }
        };
        show_progress(&bar, &job);
    }
    bar.finish_and_clear();
    Ok((job, text))
}

/// Reads `GET …/jobs/{id}/events` until its `end` event. `Ok(None)`: the
/// stream closed without one.
async fn watch_events(
    api: &Api,
    job_id: &str,
    bar: &ProgressBar,
) -> anyhow::Result<Option<(Job, String)>> {
    let url = api.http.url(&["jobs", job_id, "events"])?;
    let req = api
        .http
        .client
        .get(url)
        .bearer_auth(&api.http.key)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    let resp = req.send().await.context("opening the event stream")?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the event stream answered HTTP {}",
        resp.status()
    );
    let mut events = pin!(job_events(chunks(resp, STREAM_STALL)));
    while let Some((name, data)) = events.try_next().await? {
        let job: Job = parse(&data, "job event")?;
        show_progress(bar, &job);
        if name == "end" {
            return Ok(Some((job, data)));
        }
    }
    Ok(None)
}

/// The response body as a stream of chunks, failing when none comes for
/// `stall`. The limit is per chunk, not per event, so the server's
/// keep-alive comments count as signs of life.
fn chunks(
    resp: reqwest::Response,
    stall: Duration,
) -> impl Stream<Item = anyhow::Result<impl AsRef<[u8]>>> {
    futures_util::stream::try_unfold(resp, move |mut resp| async move {
        let chunk = tokio::time::timeout(stall, resp.chunk())
            .await
            .map_err(|_| anyhow!("no event for {} s", stall.as_secs()))?
            .context("reading the event stream")?;
        Ok(chunk.map(|c| (c, resp)))
    })
}

/// The job's `progress` and `end` events, as (name, data), from the bytes
/// of a `text/event-stream`. Other event names are skipped: the server may
/// add some. Parsing (line endings, comments, multi-line data, chunks split
/// anywhere) is `eventsource-stream`'s, which follows the HTML spec.
fn job_events<S>(bytes: S) -> impl Stream<Item = anyhow::Result<(String, String)>>
where
    S: TryStream<Error = anyhow::Error>,
    S::Ok: AsRef<[u8]>,
{
    sse_events(bytes)
        .try_filter(|(name, _)| std::future::ready(name == "progress" || name == "end"))
}

/// Every event of a `text/event-stream` as (name, data): the name is
/// `message` when the event had none, the data lines are joined with `\n`,
/// and an event without data is not dispatched (as in browsers).
fn sse_events<S>(bytes: S) -> impl Stream<Item = anyhow::Result<(String, String)>>
where
    S: TryStream<Error = anyhow::Error>,
    S::Ok: AsRef<[u8]>,
{
    bytes.into_stream().eventsource().map(|event| match event {
        Ok(e) => Ok((e.event, e.data)),
        // Our own error (stall, transport) keeps its context chain.
        Err(EventStreamError::Transport(e)) => Err(e),
        Err(e) => Err(anyhow!("the event stream is not valid: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    /// The events of `chunks` sent one after the other, as the stream
    /// would deliver them.
    fn events<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<(String, String)> {
        let bytes = futures_util::stream::iter(chunks.into_iter().map(anyhow::Ok));
        sse_events(bytes)
            .try_collect::<Vec<_>>()
            .now_or_never()
            .expect("the stream is ready")
            .expect("the stream is valid")
    }

    fn ev(event: &str, data: &str) -> (String, String) {
        (event.to_owned(), data.to_owned())
    }

    #[test]
    fn sse_events_and_data_lines() {
        let got = events([
            b"event: progress\ndata: {\"a\":1}\n\nevent: end\ndata: x\ndata: y\n\n".as_slice(),
        ]);
        assert_eq!(got, vec![ev("progress", "{\"a\":1}"), ev("end", "x\ny")]);
    }

    #[test]
    fn sse_split_anywhere_and_crlf() {
        let text: &[u8] =
            b"event: progress\r\ndata:{\"a\":1}\r\n\r\n: keep-alive\r\ndata: m\r\rdata: n\n\n";
        let whole = events([text]);
        assert_eq!(
            whole,
            vec![
                ev("progress", "{\"a\":1}"),
                ev("message", "m"),
                ev("message", "n")
            ]
        );
        // Every split point, including between `\r` and `\n`.
        for at in 0..text.len() {
            assert_eq!(events([&text[..at], &text[at..]]), whole, "split at {at}");
        }
        // Byte by byte.
        assert_eq!(events(text.chunks(1)), whole);
    }

    #[test]
    fn sse_edge_cases() {
        // No data: not dispatched; its event name does not leak into the next.
        assert_eq!(
            events([b"event: a\n\ndata: 1\n\n".as_slice()]),
            vec![ev("message", "1")]
        );
        // `data` without colon is an empty line of data; one space only is stripped.
        assert_eq!(
            events([b"data\ndata:  two\n\n".as_slice()]),
            vec![ev("message", "\n two")]
        );
        // An unfinished event at the end is not dispatched.
        assert_eq!(events([b"event: end\ndata: 1\n".as_slice()]), vec![]);
        // Unknown fields are ignored; UTF-8 split between chunks survives.
        let s = "id: 3\nretry: 10\ndata: é\n\n".as_bytes();
        let at = s.len() - 4;
        assert_eq!(events([&s[..at], &s[at..]]), vec![ev("message", "é")]);
    }

    #[test]
    fn only_job_events_are_kept_and_errors_pass_through() {
        let text = b"event: hello\ndata: 1\n\ndata: 2\n\nevent: progress\ndata: 3\n\n\
                     event: end\ndata: 4\n\n";
        let bytes = futures_util::stream::iter([anyhow::Ok(text.as_slice())]);
        let got = job_events(bytes)
            .try_collect::<Vec<_>>()
            .now_or_never()
            .expect("ready")
            .expect("valid");
        assert_eq!(got, vec![ev("progress", "3"), ev("end", "4")]);

        let bytes = futures_util::stream::iter([
            anyhow::Ok(b"event: progress\ndata: 1\n\n".as_slice()),
            Err(anyhow!("no event for 30 s")),
        ]);
        let got: Vec<_> = job_events(bytes)
            .collect::<Vec<_>>()
            .now_or_never()
            .expect("ready");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().ok(), Some(&ev("progress", "1")));
        let err = got[1].as_ref().map(|_| ()).unwrap_err();
        assert_eq!(err.to_string(), "no event for 30 s");
    }
}
