//! Object keys as sluice writes them, checked before they reach a store or a file system: a
//! key from a URL or a record can never name something outside the storage root.

/// Bytes a key may have at most.
const MAX_KEY: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad storage key `{key}`: {problem}")]
pub struct KeyError {
    pub key: String,
    pub problem: &'static str,
}

/// A key is `/`-separated segments of ASCII letters, digits, `.`, `_` and `-`, none empty and
/// none `.` or `..`. The allow-list (rather than a deny-list of `..`, `%2e`, `\`, NUL …) means an
/// encoding trick has nothing left to smuggle through.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    let refuse = |problem| {
        Err(KeyError {
            key: key.chars().take(100).collect(),
            problem,
        })
    };
    if key.is_empty() || key.len() > MAX_KEY {
        return refuse("must have 1 to 512 bytes");
    }
    for segment in key.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return refuse("segments must not be empty, `.` or `..`");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !segment.chars().all(allowed) {
            return refuse("only letters, digits, `.`, `_`, `-` and `/` are allowed");
        }
    }
    Ok(())
}

/// The folder part of a key (`images/abc` of `images/abc/original.jpg`), empty at the top.
pub fn parent(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(parent, _)| parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_are_refused() {
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "images/../../etc/passwd",
            "images/./x",
            "/etc/passwd",
            "images//x",
            "images/x/",
            "images\\..\\x",
            "images/%2e%2e/x",
            "images/x\0",
            "images/é",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["images/0190-ab/original.jpg", "a", "images/x.1/800.webp"] {
            assert_eq!(check_key(good), Ok(()), "{good:?}");
        }
        assert!(check_key(&"a".repeat(513)).is_err());
    }

    #[test]
    fn parent_is_the_folder() {
        assert_eq!(parent("images/abc/original.jpg"), "images/abc");
        assert_eq!(parent("top"), "");
    }
}
