//! On-disk cache of compiled components.
//!
//! Compiling a 15 MB Python or JavaScript component takes seconds; loading
//! its compiled form takes milliseconds. Entries are keyed by the component's
//! sha256 and a hash of the engine's compatibility settings (version, target,
//! fuel/epoch configuration), because an engine refuses code compiled under
//! other settings.
//!
//! An entry is never trusted blindly: each file carries a sha256 of its
//! payload, checked before the payload reaches `Component::deserialize`.
//! A corrupt, truncated or stale entry is recompiled and rewritten. The cache
//! directory itself is trusted as much as the host binary: whoever can write
//! both the payload and its digest there can run native code in the host, so
//! it must be owned by the operator.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"LETHECW1";

/// How a component was obtained, for traces and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A valid entry was found and loaded.
    Hit,
    /// No entry, or caching disabled: compiled from source.
    Compiled,
    /// An entry existed but was corrupt or stale: compiled and rewritten.
    Replaced,
}

/// A directory of compiled components (or none, to always compile).
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    pub fn new(dir: Option<PathBuf>) -> CompileCache {
        CompileCache { dir }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The cache file for a component on this engine.
    pub fn entry_path(&self, engine: &Engine, component_sha256: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Some(dir.join(format!("{component_sha256}-{:016x}.cwasm", hasher.finish())))
    }

    /// Returns the compiled component, from the cache when a valid entry
    /// exists, otherwise compiling `wasm` and (best effort) storing it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        component_sha256: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(path) = self.entry_path(engine, component_sha256) else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled));
        };
        let existed = match std::fs::read(&path) {
            Ok(bytes) => match verified_payload(&bytes) {
                Some(payload) => {
                    // SAFETY: the payload is byte-for-byte what this host wrote
                    // after compiling it (its sha256 matches), and the engine
                    // checks version and settings compatibility itself.
                    match unsafe { Component::deserialize(engine, payload) } {
                        Ok(component) => return Ok((component, CacheOutcome::Hit)),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "stale compiled component, recompiling");
                            true
                        }
                    }
                }
                None => {
                    tracing::warn!(path = %path.display(), "corrupt compiled component, recompiling");
                    true
                }
            },
            Err(_) => false,
        };
        let component = Component::new(engine, wasm)?;
        if let Err(e) = store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compile cache");
        }
        let outcome = if existed {
            CacheOutcome::Replaced
        } else {
            CacheOutcome::Compiled
        };
        Ok((component, outcome))
    }
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < 32 {
        return None;
    }
    let (digest, payload) = rest.split_at(32);
    (Sha256::digest(payload).as_slice() == digest).then_some(payload)
}

fn store(path: &Path, component: &Component) -> std::io::Result<()> {
    let payload = component.serialize().map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);
    // Write beside, then rename: a reader never sees half an entry.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)
}
