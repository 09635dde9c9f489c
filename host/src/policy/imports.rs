//! What a policy component may import.
//!
//! A policy gets the host's `log` and, for guests whose toolchain insists on
//! WASI (Rust's std, componentize-py), the WASI interfaces that
//! [`super::sandbox`] links with an empty context: they type-check and link,
//! but grant nothing. Anything else (sockets, HTTP, a made-up interface) is
//! refused when the component is loaded, naming the import, so a policy that
//! wants a capability fails at deploy time rather than at decision time.

use super::bindings::V0_1_HOST_IMPORT;

/// WASI 0.2 interfaces a policy may import, all capability-free here.
const ALLOWED_WASI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    // Clocks read zero and randomness is a fixed sequence (see sandbox).
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    // No directories are preopened, so no file can be opened.
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

/// Whether a component import name is one a policy may have.
pub fn is_allowed(import: &str) -> bool {
    if import == V0_1_HOST_IMPORT {
        return true;
    }
    let Some((interface, version)) = import.split_once('@') else {
        return false;
    };
    version.starts_with("0.2.") && ALLOWED_WASI.contains(&interface)
}

/// The first import not allowed, if any.
pub fn first_forbidden<'a>(imports: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    imports.into_iter().find(|name| !is_allowed(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_capability_free_wasi_are_allowed() {
        assert!(is_allowed("lethe:policy/host@0.1.0"));
        assert!(is_allowed("wasi:cli/environment@0.2.6"));
        assert!(is_allowed("wasi:io/streams@0.2.0"));
        assert!(is_allowed("wasi:filesystem/preopens@0.2.3"));
    }

    #[test]
    fn capabilities_and_unknown_interfaces_are_refused() {
        assert!(!is_allowed("wasi:sockets/tcp@0.2.0"));
        assert!(!is_allowed("wasi:http/outgoing-handler@0.2.0"));
        assert!(!is_allowed("evil:net/exfiltrate@0.1.0"));
        assert!(!is_allowed("wasi:cli/environment@0.3.0"));
        assert!(!is_allowed("log"));
        assert_eq!(
            first_forbidden(["wasi:io/error@0.2.0", "wasi:sockets/udp@0.2.0"]),
            Some("wasi:sockets/udp@0.2.0")
        );
    }
}
