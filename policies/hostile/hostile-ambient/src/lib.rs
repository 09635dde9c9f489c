//! Hostile policy: `decide` reaches for every ambient capability that the
//! capability-free WASI a policy gets still *links* (Rust's std imports it),
//! and reports what it found in its denial message, one `key=value` per
//! field separated by spaces:
//!
//! - `env`, `args`: how many environment variables and arguments it sees;
//! - `passwd`: whether `/etc/passwd` could be read (`denied` or a size);
//! - `root`: whether `/` could be listed;
//! - `cwd`: whether there is a current directory;
//! - `wall`: the wall clock, in unix seconds;
//! - `mono`: nanoseconds the monotonic clock advanced across a busy loop;
//! - `hash`: a `RandomState` hash, seeded from WASI randomness;
//! - `stdout`, `stderr`: whether writing to them succeeded.
//!
//! The host must give it nothing: no variables, no files, a stopped clock, a
//! fixed random seed (so decisions replay identically), and stdio that goes
//! nowhere. A leak of any of them is a way out of "a decision is a pure
//! function of its request".

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use exports::lethe::policy::policy::{
    Action, Decision, Denial, Guest, Outcome, PolicyInfo, Request,
};

fn outcome<T, E>(result: Result<T, E>, ok: impl FnOnce(T) -> String) -> String {
    match result {
        Ok(value) => ok(value),
        Err(_) => "denied".into(),
    }
}

struct HostileAmbient;

impl Guest for HostileAmbient {
    fn decide(_req: Request) -> Decision {
        let env = std::env::vars_os().count();
        let args = std::env::args_os().count();
        let passwd = outcome(std::fs::read("/etc/passwd"), |b| format!("{}B", b.len()));
        let root = outcome(std::fs::read_dir("/"), |d| format!("{}entries", d.count()));
        let cwd = outcome(std::env::current_dir(), |p| {
            format!("{}", p.display()).replace(' ', "_")
        });
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs().to_string())
            .unwrap_or_else(|_| "before-epoch".into());
        let started = Instant::now();
        let mut spin = 0u64;
        for i in 0..100_000u64 {
            spin = black_box(spin.wrapping_add(i));
        }
        let mono = started.elapsed().as_nanos();
        let hash = RandomState::new().hash_one(black_box(0x1e7e_u64));
        let stdout = outcome(
            std::io::stdout().write_all(b"hostile-ambient was here\n"),
            |()| "written".into(),
        );
        let stderr = outcome(
            std::io::stderr().write_all(b"hostile-ambient was here\n"),
            |()| "written".into(),
        );
        Decision {
            outcome: Outcome::Deny(Denial {
                code: "ambient-report".into(),
                message: format!(
                    "env={env} args={args} passwd={passwd} root={root} cwd={cwd} wall={wall} \
                     mono={mono} hash={hash:016x} stdout={stdout} stderr={stderr} spin={}",
                    spin & 1
                ),
            }),
            rules: vec!["hostile-ambient/report".into()],
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-ambient".into(),
            version: "0.1.0".into(),
            description: "decide() reads environment, files, clocks, randomness and stdio; the host must grant none".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileAmbient);
