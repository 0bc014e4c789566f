//! API tokens: what `[api.tokens.<name>]` holds, how a token is made, and how it is hashed.
//!
//! A token is `sk_sluice_` followed by 32 random bytes from the operating system's CSPRNG in
//! base64url (43 characters): the prefix lets secret scanners recognize a leaked one. The
//! configuration keeps only the token's SHA-256. A fast hash is enough here, unlike for
//! passwords: a password is guessable, so a slow hash makes each guess expensive, but a 256-bit
//! random token cannot be guessed however fast the hash is, and a slow hash would cost CPU on
//! every request.

use std::{collections::BTreeMap, fmt, str::FromStr};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL, Engine};
use serde::{de, Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// What every sluice token starts with.
pub const TOKEN_PREFIX: &str = "sk_sluice_";

/// What a token may do. Scopes do not include each other: a token lists every one it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Enqueue work: jobs, posts, follows, uploads.
    Publish,
    /// Read state: job status, feeds, queue stats, dead-letter listings.
    Read,
    /// Operate: replay dead letters, cancel jobs, the console.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Publish, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Publish => "publish",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| format!("unknown scope `{}` (publish, read or admin)", s.trim()))
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// One `[api.tokens.<name>]` table. Keyed by name (not an array of tables) so that environment
/// variables can set one: `SLUICE__API__TOKENS__CI__SHA256=…`, `…__CI__SCOPES=publish,read`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// The token's SHA-256 in hex (64 characters), as `sluice tokens new` prints it. Required.
    pub sha256: String,
    /// What the token may do: a list, or one comma-separated string (what an environment
    /// variable can hold). Required, at least one.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub scopes: Vec<Scope>,
    /// Requests per second the token may make on average (a token bucket refilled at this
    /// rate); beyond it the api answers 429 with `Retry-After`. Default: no limit.
    pub rate: Option<u32>,
    /// Requests the token may make at once before `rate` applies (the bucket's size).
    /// Default: `rate`, one second's worth. Only with `rate`.
    pub burst: Option<u32>,
}

impl TokenConfig {
    /// What is wrong with this table, as (field, problem); `None` when it is usable.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some((
                "sha256",
                "must be 64 hex digits: the SHA-256 `sluice tokens new` prints".into(),
            ));
        }
        if self.scopes.is_empty() {
            return Some(("scopes", "name at least one of publish, read, admin".into()));
        }
        if self.rate == Some(0) {
            return Some((
                "rate",
                "must be at least 1 (leave it out for no limit)".into(),
            ));
        }
        match (self.rate, self.burst) {
            (_, Some(0)) => Some(("burst", "must be at least 1".into())),
            (None, Some(_)) => Some(("burst", "only applies with `rate`".into())),
            _ => None,
        }
    }
}

/// Checks every token table; the error names the key, e.g. `api.tokens.ci.sha256`.
pub fn problem(tokens: &BTreeMap<String, TokenConfig>) -> Option<(String, String)> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, token) in tokens {
        if let Some(problem) = name_problem(name) {
            return Some((format!("api.tokens.{name}"), problem.into()));
        }
        if let Some((field, problem)) = token.problem() {
            return Some((format!("api.tokens.{name}.{field}"), problem));
        }
        if let Some(other) = seen.insert(token.sha256.to_ascii_lowercase(), name) {
            return Some((
                format!("api.tokens.{name}.sha256"),
                format!("the same token as `api.tokens.{other}`"),
            ));
        }
    }
    None
}

/// Token names are lowercase: environment variable names are read lowercased, so `CI` in a
/// file and `SLUICE__API__TOKENS__CI__…` would otherwise be two different tokens.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    (!fits).then_some("a token name is 1 to 64 of a-z, 0-9, `_` and `-`")
}

/// A new random token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is readable");
    format!("{TOKEN_PREFIX}{}", BASE64URL.encode(bytes))
}

/// The SHA-256 of a token in lowercase hex, as `[api.tokens.<name>] sha256` holds it.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn list_or_comma_separated<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Scope>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    let items = match ListOrText::deserialize(deserializer)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    let mut scopes = Vec::new();
    for item in items.iter().filter(|item| !item.trim().is_empty()) {
        let scope: Scope = item.parse().map_err(de::Error::custom)?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_prefixed_random_and_hashes_to_64_hex_digits() {
        let (a, b) = (new_token(), new_token());
        assert!(a.starts_with(TOKEN_PREFIX), "{a}");
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a, b);
        let hash = sha256_hex(&a);
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, sha256_hex(&b));
        // A known vector: SHA-256 of "abc".
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn table(sha256: &str, scopes: &[Scope]) -> TokenConfig {
        TokenConfig {
            sha256: sha256.into(),
            scopes: scopes.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn problems_name_the_field() {
        let good = sha256_hex("x");
        assert_eq!(table(&good, &[Scope::Read]).problem(), None);
        assert_eq!(table("abc", &[Scope::Read]).problem().unwrap().0, "sha256");
        let not_hex = "g".repeat(64);
        assert_eq!(
            table(&not_hex, &[Scope::Read]).problem().unwrap().0,
            "sha256"
        );
        assert_eq!(table(&good, &[]).problem().unwrap().0, "scopes");
        let burst_alone = TokenConfig {
            burst: Some(5),
            ..table(&good, &[Scope::Read])
        };
        assert_eq!(burst_alone.problem().unwrap().0, "burst");
        let zero_rate = TokenConfig {
            rate: Some(0),
            ..table(&good, &[Scope::Read])
        };
        assert_eq!(zero_rate.problem().unwrap().0, "rate");
    }

    #[test]
    fn names_are_lowercase_and_hashes_unique() {
        let hash = sha256_hex("x");
        let mut tokens = BTreeMap::from([("CI".to_owned(), table(&hash, &[Scope::Read]))]);
        assert_eq!(problem(&tokens).unwrap().0, "api.tokens.CI");
        tokens = BTreeMap::from([
            ("a".to_owned(), table(&hash, &[Scope::Read])),
            ("b".to_owned(), table(&hash, &[Scope::Admin])),
        ]);
        assert_eq!(problem(&tokens).unwrap().0, "api.tokens.b.sha256");
    }
}
