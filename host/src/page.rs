//! Paging of the list endpoints: page sizes and cursors.
//!
//! A page size outside its range is refused when the query is parsed
//! (400 `invalid-query`), never silently clamped: a client that asks for
//! 5,000 rows learns that it gets at most 500 instead of believing it has
//! them all. The range is part of the type, so the handler, the library
//! and the OpenAPI document cannot disagree about it.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A page size of `1..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<const MAX: u32>(u32);

impl<const MAX: u32> Limit<MAX> {
    /// `n`, if it is in range.
    pub fn new(n: u32) -> Option<Limit<MAX>> {
        (1..=MAX).contains(&n).then_some(Limit(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The size asked for, or `default` when none was.
    pub fn or(limit: Option<Limit<MAX>>, default: u32) -> u32 {
        limit.map_or(default.clamp(1, MAX), Limit::get)
    }
}

impl<const MAX: u32> fmt::Display for Limit<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, const MAX: u32> Deserialize<'de> for Limit<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Limit<MAX>, D::Error> {
        let n = u32::deserialize(d)?;
        Limit::new(n)
            .ok_or_else(|| serde::de::Error::custom(format!("limit must be 1 to {MAX}, not {n}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_is_refused_not_clamped() {
        assert_eq!(Limit::<500>::new(500).map(Limit::get), Some(500));
        assert_eq!(Limit::<500>::new(501), None);
        assert_eq!(Limit::<500>::new(0), None);
        let err = serde_json::from_str::<Limit<200>>("201").unwrap_err();
        assert!(err.to_string().contains("1 to 200"), "{err}");
        assert_eq!(Limit::<200>::or(None, 50), 50);
    }
}
