//! Lethe: programmable, per-tenant user deletion.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. Data flows one way:
//! request → context → decision ([`policy`]) → validated plan ([`plan`]) →
//! [`executor`] → database ([`db`]).

pub mod cases;
pub mod clock;
pub mod contract;
pub mod decision;
pub mod error_code;
pub mod policy;

// The data map and the transactional lifecycle executor. These modules know
// nothing of WebAssembly; the executor asks a `Decider`.
pub mod audit;
pub mod config;
pub mod datamap;
pub mod db;
pub mod deploy;
pub mod executor;
pub mod lifecycle;
pub mod plan;
pub mod platform;
pub mod seed;
pub mod telemetry;
pub mod tenancy;

// `lethe serve`: the HTTP API and what it reads and keeps (API keys, the
// escalation queue, user views, evidence). The executor knows none of it.
pub mod api;
pub mod apikeys;
pub mod bulk;
pub mod console;
pub mod directory;
pub mod escalation;
pub mod events;
pub mod evidence;
pub mod lease;
pub mod page;
pub mod scim;
