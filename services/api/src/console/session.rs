//! Console sessions. Logging in trades an `admin` token for a random session id, kept by the
//! browser in an http-only cookie (scripts cannot read it; it is never in a URL) and by Redis,
//! so every api replica knows it and logging out ends it everywhere.
//!
//! Redis holds the SHA-256 of the id, never the id, so a copy of Redis opens no session; the
//! value is the token's *name*, checked against the configured tokens on every request, so a
//! token removed or stripped of `admin` ends its sessions at the api's next start.
//!
//! Forms that change something carry a CSRF token derived from the session id. A page of
//! another site can neither read the cookie nor the pages, so it cannot know it; the cookie is
//! also `SameSite=Strict`, and a POST whose `Origin` is another site is refused before that.

use std::{sync::Arc, time::Duration};

use axum::http::{header, HeaderMap, HeaderValue};
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::{auth::Caller, state::AppState};

/// The cookie's name.
pub const COOKIE: &str = "sluice_console";

/// A logged-in browser.
#[derive(Clone)]
pub struct Session {
    id: String,
    pub caller: Arc<Caller>,
}

impl Session {
    /// The hidden `_csrf` field of every form that changes something.
    pub fn csrf(&self) -> String {
        hex::encode(Sha256::digest(format!("csrf:{}", self.id).as_bytes()))
    }

    /// Whether a submitted `_csrf` is this session's. Both sides are hashed before comparing,
    /// so the time the comparison takes says nothing about the expected value.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        Sha256::digest(submitted.as_bytes()) == Sha256::digest(self.csrf().as_bytes())
    }
}

fn redis_key(state: &AppState, id: &str) -> String {
    format!(
        "{}console-session:{}",
        state.config.redis.key_prefix,
        hex::encode(Sha256::digest(id.as_bytes()))
    )
}

fn ttl(state: &AppState) -> Duration {
    state.config.api.console_session_ttl
}

/// Starts a session for `caller`; returns the `Set-Cookie` value.
pub async fn create(state: &AppState, caller: &Caller) -> redis::RedisResult<HeaderValue> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    let id = hex::encode(bytes);
    let _: () = state
        .status
        .connection()
        .set_ex(redis_key(state, &id), &caller.name, ttl(state).as_secs())
        .await?;
    Ok(cookie(&id, ttl(state)))
}

/// The session the request's cookie names, if it is live and its token may still administer.
/// A live session's expiry is pushed back: it lasts `console_session_ttl` after its last use.
pub async fn find(state: &AppState, headers: &HeaderMap) -> redis::RedisResult<Option<Session>> {
    let Some(id) = cookie_value(headers) else {
        return Ok(None);
    };
    let key = redis_key(state, id);
    let mut redis = state.status.connection();
    let name: Option<String> = redis::cmd("GETEX")
        .arg(&key)
        .arg("EX")
        .arg(ttl(state).as_secs())
        .query_async(&mut redis)
        .await?;
    let caller = name
        .and_then(|name| state.auth.named(&name))
        .filter(|caller| caller.may(crate::Scope::Admin));
    Ok(caller.map(|caller| Session {
        id: id.to_owned(),
        caller,
    }))
}

/// Ends the session the request's cookie names; returns the `Set-Cookie` that clears it.
pub async fn end(state: &AppState, headers: &HeaderMap) -> redis::RedisResult<HeaderValue> {
    if let Some(id) = cookie_value(headers) {
        let _: () = state.status.connection().del(redis_key(state, id)).await?;
    }
    Ok(cookie("", Duration::ZERO))
}

/// `Secure`: browsers also keep it on `http://127.0.0.1` and `localhost` (loopback counts as a
/// secure origin), so only a console reached over plain HTTP on a real network lacks the
/// cookie — which is the point. `Path=/console`: the rest of the api never sees it.
fn cookie(id: &str, max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/console; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        max_age.as_secs()
    ))
    .expect("a hex id makes a valid header")
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        // Ours are 64 hex digits; anything else is not worth a Redis lookup.
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A POST from a page of another origin is refused whatever it carries. Browsers send
/// `Origin` on every POST; a request without it is not from a browser's form, and still needs
/// the CSRF token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_must_look_like_ours() {
        let id = "ab".repeat(32);
        let found = headers(&[(header::COOKIE, &format!("a=1; {COOKIE}={id}; b=2"))]);
        assert_eq!(cookie_value(&found), Some(id.as_str()));
        let forged = headers(&[(header::COOKIE, &format!("{COOKIE}=../../x"))]);
        assert_eq!(cookie_value(&forged), None);
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let ours = headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
        ]);
        assert!(same_origin(&ours));
        let theirs = headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert!(!same_origin(&theirs));
        let opaque = headers(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, "null")]);
        assert!(!same_origin(&opaque));
    }

    #[test]
    fn the_cookie_is_http_only_secure_and_strict() {
        let value = cookie("ab", Duration::from_secs(60));
        let value = value.to_str().unwrap();
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
            assert!(value.contains(attribute), "{value}");
        }
    }
}
