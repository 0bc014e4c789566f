//! Secrets kept out of what sluice prints: a password in a URL (`redis.url`, which errors and
//! logs name) and every secret-looking setting in `sluice config`.

/// `url` with the password of its user info replaced by `***`:
/// `redis://app:hunter2@h:6379` → `redis://app:***@h:6379`. Anything else is returned as is.
pub fn url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    // The user info ends at the last `@` before the path (a password may hold `@`).
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &rest[..at];
    match user_info.split_once(':') {
        Some((user, _password)) => {
            format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Whether a setting's name says its value is a secret (`secret`, `sasl.password`,
/// `ssl.key.password`, `sasl.oauthbearer.client.secret`, …).
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "credential",
        "private_key",
        "access_key",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Replaces, in place, the value of every secret-looking key with `"***"` and the password of
/// every URL with `***`.
pub fn json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, value) in map.iter_mut() {
                if secret_name(name) && !value.is_null() {
                    *value = serde_json::Value::String("***".into());
                } else {
                    json(value);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(json),
        serde_json::Value::String(text) if text.contains("://") => *text = url(text),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_password_is_masked_and_nothing_else() {
        assert_eq!(
            url("redis://app:hunter2@h:6379/0"),
            "redis://app:***@h:6379/0"
        );
        assert_eq!(
            url("redis+cluster://app:p@ss@h1:7001,h2:7002"),
            "redis+cluster://app:***@h1:7001,h2:7002"
        );
        assert_eq!(url("redis://:only-pass@h"), "redis://:***@h");
        assert_eq!(url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(url("redis://user@h"), "redis://user@h");
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn secret_settings_are_masked_wherever_they_are() {
        let mut config = serde_json::json!({
            "redis": {"url": "redis://u:pw@h:1", "key_prefix": "sluice:"},
            "kafka": {"properties": {"sasl.password": "pw", "linger.ms": "5"}},
            "kinds": {"webhook": {"secret": "whsec_x", "max_attempts": 8}},
            "hooks": {"stripe": {"secrets": ["a", "b"]}},
        });
        json(&mut config);
        assert_eq!(config["redis"]["url"], "redis://u:***@h:1");
        assert_eq!(config["redis"]["key_prefix"], "sluice:");
        assert_eq!(config["kafka"]["properties"]["sasl.password"], "***");
        assert_eq!(config["kafka"]["properties"]["linger.ms"], "5");
        assert_eq!(config["kinds"]["webhook"]["secret"], "***");
        assert_eq!(config["kinds"]["webhook"]["max_attempts"], 8);
        assert_eq!(config["hooks"]["stripe"]["secrets"], "***");
    }
}
