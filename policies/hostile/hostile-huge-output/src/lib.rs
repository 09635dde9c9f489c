//! Hostile policy: `decide` returns an oversized decision.
//!
//! 200,000 rule ids of 64 bytes each is about 13 MB of strings, which the host
//! would otherwise copy into its own memory, store as evidence and serialise
//! into every response. The guest stays well under a 64 MiB memory cap (the
//! peak is the strings plus the 1.6 MB canonical-ABI pointer table), so the
//! fault the host must report is "output too large", not a memory fault.

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use core::hint::black_box;
use exports::lethe::policy::policy::{
    Action, Decision, Denial, Guest, Outcome, PolicyInfo, Request,
};

/// How many rule ids the decision carries.
const RULES: usize = 200_000;
/// Length of each rule id in bytes.
const RULE_LEN: usize = 64;

struct HostileHugeOutput;

impl Guest for HostileHugeOutput {
    fn decide(_req: Request) -> Decision {
        // Cheap per id (one allocation, one 64-byte copy, eight digits), so the
        // decision is built well inside any sane fuel budget and what the
        // host has to catch is the size of the output, not the work.
        let mut template = *b"hostile-huge-output/rule-00000000-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        debug_assert_eq!(template.len(), RULE_LEN);
        let count = black_box(RULES);
        let mut rules = Vec::with_capacity(count);
        for i in 0..count {
            let mut n = i;
            for digit in template[25..33].iter_mut().rev() {
                *digit = b'0' + (n % 10) as u8;
                n /= 10;
            }
            // SAFETY: the template is ASCII and only ASCII digits are
            // written into it, so every id is valid UTF-8. (Validating it
            // would double the fuel this component spends.)
            rules.push(unsafe { String::from_utf8_unchecked(template.to_vec()) });
        }
        Decision {
            outcome: Outcome::Deny(Denial {
                code: "huge-output".into(),
                message: "this decision is far larger than any host should accept".into(),
            }),
            rules,
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-huge-output".into(),
            version: "0.1.0".into(),
            description: "decide() returns 200,000 rule ids (~13 MB); the host must refuse the output as too large".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileHugeOutput);
