//! Lethe: programmable, per-tenant user deletion.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. Data flows one way:
//! request → context → decision ([`policy`]) → validated plan → executor →
//! database.

pub mod cases;
pub mod contract;
pub mod policy;
