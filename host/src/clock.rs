//! Wall-clock time as Lethe stores it: unix seconds.
//!
//! The library takes `now` as an argument wherever a decision depends on
//! it (actions, previews, sweeps), so tests and replays are reproducible;
//! only the edges (the API, the CLI, background loops) read the clock.

/// Seconds since the unix epoch; 0 if the clock is before it.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the unix epoch (leases, heartbeats, delivery times);
/// 0 if the clock is before it.
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
