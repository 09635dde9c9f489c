//! Hostile policy: `decide` opens a TCP connection with `std::net`.
//!
//! On wasm32-wasip2, std's sockets go through `wasi:sockets`, so the
//! component imports interfaces that the minimal WASI a policy gets does not
//! include. The host must refuse it at load, naming a `wasi:sockets` import.
//! If a host did link sockets, the connection must still fail: the decision
//! then says which, so a test can tell "refused" from "connected".

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use std::io::Write;
use std::net::TcpStream;

use exports::lethe::policy::policy::{
    Action, Decision, Denial, Guest, Outcome, PolicyInfo, Request,
};

struct HostileSocket;

impl Guest for HostileSocket {
    fn decide(req: Request) -> Decision {
        let (code, message) = match TcpStream::connect("127.0.0.1:9") {
            Ok(mut stream) => {
                let sent = stream.write_all(req.subject.id.as_bytes());
                (
                    "connected",
                    format!("connected to 127.0.0.1:9, write: {sent:?}"),
                )
            }
            Err(err) => (
                "connect-failed",
                format!("connect to 127.0.0.1:9 failed: {err}"),
            ),
        };
        Decision {
            outcome: Outcome::Deny(Denial {
                code: code.into(),
                message,
            }),
            rules: vec!["hostile-socket/connect".into()],
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-socket".into(),
            version: "0.1.0".into(),
            description: "decide() connects to 127.0.0.1:9 via wasi:sockets; the host must refuse the import at load".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileSocket);
