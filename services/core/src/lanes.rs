//! Priority lanes: every kind has three topics, `jobs.<kind>.high`, `jobs.<kind>` (normal) and
//! `jobs.<kind>.low`; a worker serves them weighted (docs/architecture.md §3).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    /// Highest first: the order a worker prefers when its weights tie.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// 0 for high, 1 for normal, 2 for low: an index into per-lane arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a worker shares its slots between lanes that all have jobs waiting: of every
/// `high + normal + low` jobs it starts, `high` are high-priority ones, and so on. A lane with
/// nothing waiting gives its share to the others. Default 8:4:1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LaneWeights {
    pub high: u32,
    pub normal: u32,
    pub low: u32,
}

impl Default for LaneWeights {
    fn default() -> Self {
        Self {
            high: 8,
            normal: 4,
            low: 1,
        }
    }
}

impl LaneWeights {
    pub fn of(&self, lane: Priority) -> u32 {
        match lane {
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }

    /// Why the weights cannot be used: a zero weight would starve its lane.
    pub fn problem(&self) -> Option<&'static str> {
        (self.high == 0 || self.normal == 0 || self.low == 0)
            .then_some("every lane needs a weight of at least 1")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a priority: use high, normal or low")]
pub struct UnknownPriority(pub String);

impl FromStr for Priority {
    type Err = UnknownPriority;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            other => Err(UnknownPriority(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_parse_and_print_the_same_words() {
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
        }
        assert!("urgent".parse::<Priority>().is_err());
        assert_eq!(Priority::default(), Priority::Normal);
        assert_eq!(Priority::Low.index(), 2);
    }
}
