//! How many copies of each topic `sluice topics ensure` asks for, and how many of them must
//! have a write before the broker acknowledges it (`min.insync.replicas`). Both default to
//! `auto`: worked out from the brokers the cluster has when the topics are created, so the same
//! configuration creates RF 1 topics on a single dev broker and RF 3 / min ISR 2 on a cluster.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A count that is either given or worked out (`"auto"`). Written as `"auto"`, a number, or a
/// number in a string (environment variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replicas {
    #[default]
    Auto,
    Fixed(i32),
}

impl Replicas {
    /// Whether a given count is below 1.
    pub fn is_invalid(self) -> bool {
        matches!(self, Self::Fixed(n) if n < 1)
    }
}

impl fmt::Display for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Replicas {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => serializer.serialize_str("auto"),
            Self::Fixed(n) => serializer.serialize_i32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Replicas {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Replicas;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""auto" or a whole number"#)
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Replicas, E> {
                i32::try_from(n)
                    .map(Replicas::Fixed)
                    .map_err(|_| E::custom(format!("{n} is out of range")))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Replicas, E> {
                i32::try_from(n)
                    .map(Replicas::Fixed)
                    .map_err(|_| E::custom(format!("{n} is out of range")))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Replicas, E> {
                match s.trim() {
                    "auto" => Ok(Replicas::Auto),
                    n => n.parse().map(Replicas::Fixed).map_err(|_| {
                        E::custom(format!(r#"expected "auto" or a whole number, got "{s}""#))
                    }),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What topics get on a cluster of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    pub factor: i32,
    pub min_insync: i32,
}

/// The most copies `auto` asks for: three survive one broker lost plus one being restarted.
const AUTO_MAX_FACTOR: i32 = 3;

impl Replication {
    /// `auto` factor: every broker up to three. `auto` min ISR: a majority of the replicas from
    /// three on (2 of 3: an acknowledged write survives any one broker dying, and writes go on
    /// while one is down), else 1 (with two replicas, 2 would stop all writes to a partition
    /// whenever either broker is down).
    pub fn resolve(factor: Replicas, min_insync: Replicas, brokers: usize) -> Self {
        let brokers = i32::try_from(brokers).unwrap_or(i32::MAX).max(1);
        let factor = match factor {
            Replicas::Fixed(n) => n,
            Replicas::Auto => brokers.min(AUTO_MAX_FACTOR),
        };
        let min_insync = match min_insync {
            Replicas::Fixed(n) => n,
            Replicas::Auto if factor >= 3 => factor / 2 + 1,
            Replicas::Auto => 1,
        };
        Self { factor, min_insync }
    }

    /// Why topics with these settings would refuse every write, if they would. (A factor above
    /// the brokers up is left to the broker: it refuses to create such a topic, by name.)
    pub fn problem(&self) -> Option<String> {
        (self.min_insync > self.factor).then(|| {
            format!(
                "topics.min_insync_replicas {} is more than the replication factor {}: every write would be refused",
                self.min_insync, self.factor
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_rf_1_on_one_broker_and_rf_3_min_isr_2_from_three_brokers() {
        let auto = |brokers| Replication::resolve(Replicas::Auto, Replicas::Auto, brokers);
        assert_eq!(
            auto(1),
            Replication {
                factor: 1,
                min_insync: 1
            }
        );
        assert_eq!(
            auto(2),
            Replication {
                factor: 2,
                min_insync: 1
            }
        );
        assert_eq!(
            auto(3),
            Replication {
                factor: 3,
                min_insync: 2
            }
        );
        assert_eq!(
            auto(9),
            Replication {
                factor: 3,
                min_insync: 2
            }
        );
        // A metadata answer without brokers is not a reason for RF 0.
        assert_eq!(
            auto(0),
            Replication {
                factor: 1,
                min_insync: 1
            }
        );
    }

    #[test]
    fn given_counts_win_and_auto_min_isr_follows_a_given_factor() {
        let five = Replication::resolve(Replicas::Fixed(5), Replicas::Auto, 6);
        assert_eq!(
            five,
            Replication {
                factor: 5,
                min_insync: 3
            }
        );
        let both = Replication::resolve(Replicas::Fixed(3), Replicas::Fixed(3), 3);
        assert_eq!(
            both,
            Replication {
                factor: 3,
                min_insync: 3
            }
        );
    }

    #[test]
    fn a_min_isr_above_the_factor_is_named() {
        let isr = Replication::resolve(Replicas::Auto, Replicas::Fixed(2), 1);
        assert!(isr.problem().unwrap().contains("min_insync_replicas 2"));
        assert_eq!(
            Replication::resolve(Replicas::Auto, Replicas::Auto, 3).problem(),
            None
        );
    }

    #[test]
    fn parses_auto_numbers_and_numeric_strings() {
        #[derive(Deserialize)]
        struct T {
            r: Replicas,
        }
        let parse = |toml: &str| -> Result<Replicas, String> {
            config::Config::builder()
                .add_source(config::File::from_str(toml, config::FileFormat::Toml))
                .build()
                .and_then(|c| c.try_deserialize::<T>())
                .map(|t| t.r)
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse(r#"r = "auto""#), Ok(Replicas::Auto));
        assert_eq!(parse("r = 3"), Ok(Replicas::Fixed(3)));
        assert_eq!(parse(r#"r = "2""#), Ok(Replicas::Fixed(2)));
        assert!(parse(r#"r = "three""#).unwrap_err().contains("auto"));
    }
}
