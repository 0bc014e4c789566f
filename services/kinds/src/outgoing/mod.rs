//! Outgoing HTTP calls of the handlers that call out (`webhook`, `http`): one client builder,
//! and the guard on where those calls may go (docs/architecture.md, "Outgoing calls").
//!
//! - Every address is checked against the kind's `AddressPolicy` (`address`): a host name
//!   through the client's own resolver (`resolver`), so the address connected to is one that
//!   passed, with no DNS-rebinding window; an IP-literal URL, which skips resolution, by
//!   `check_url` before the request.
//! - Redirects are never followed (a redirect could point at any address, and would carry a
//!   signed body to a host nobody configured); a 3xx answer is a `fatal` failure naming it.
//! - No proxy from the environment (`HTTP_PROXY` and the like): through a proxy the target
//!   would be resolved and connected to by the proxy, out of the guard's sight.

pub mod address;
mod resolver;

use std::{sync::Arc, time::Duration};

use ipnet::IpNet;
use reqwest::Url;
use serde::Deserialize;

pub use address::{AddressPolicy, Refused};

use crate::{
    handler::{ErrorClass, JobFailure},
    kind::KindError,
};

/// `allow_cidrs` as written: a TOML list, or one comma-separated string (how a list arrives
/// from `SLUICE__KINDS__<KIND>__ALLOW_CIDRS`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CidrList {
    List(Vec<String>),
    Joined(String),
}

impl Default for CidrList {
    fn default() -> Self {
        CidrList::List(Vec::new())
    }
}

/// The policy of a kind's `allow_private` and `allow_cidrs`; a bad network fails the start
/// naming the key.
pub fn policy(
    kind: &str,
    allow_private: bool,
    cidrs: &CidrList,
) -> Result<AddressPolicy, KindError> {
    let entries: Vec<&str> = match cidrs {
        CidrList::List(list) => list.iter().map(|s| s.trim()).collect(),
        CidrList::Joined(joined) => joined.split(',').map(str::trim).collect(),
    };
    let allow_cidrs = entries
        .into_iter()
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            // A bare address is its own /32 or /128.
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    KindError::key(
                        kind,
                        "allow_cidrs",
                        format!("`{entry}` is not a network (e.g. `10.0.0.0/8`, `fd00::/8`)"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AddressPolicy {
        allow_private,
        allow_cidrs,
    })
}

/// The client and the policy of one calling kind.
pub struct Outgoing {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl Outgoing {
    /// A client with `timeout` per request whose every connection obeys `policy`.
    pub fn new(kind: &str, timeout: Duration, policy: AddressPolicy) -> Result<Self, KindError> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(resolver::GuardedResolver::new(policy.clone())))
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KindError::key(kind, "request_timeout", format!("HTTP client: {e}")))?;
        Ok(Self { client, policy })
    }

    /// A POST to `url`, once the URL passed the guard's literal-address check.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, JobFailure> {
        let url = check_url(&self.policy, url).map_err(|problem| {
            JobFailure::new(ErrorClass::Fatal, format!("target refused: {problem}"))
        })?;
        Ok(self.client.post(url))
    }
}

/// Parses `url` and, when its host is an IP literal (which no resolver sees), checks it.
/// Host names are checked by the resolver, at connection time.
pub fn check_url(policy: &AddressPolicy, url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("not an http:// or https:// URL".into());
    }
    let host = parsed.host_str().ok_or("no host")?;
    // The parser has already turned every IPv4 spelling (`0x7f.1`, `2130706433`) into dotted
    // decimal, and keeps IPv6 literals in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        policy.check(ip).map_err(|refused| refused.to_string())?;
    }
    Ok(parsed)
}

/// The failure a transport error means: a target the guard refused is `fatal` (it will be
/// refused again), timeouts and connection errors are retryable.
pub fn transport_failure(e: &reqwest::Error) -> JobFailure {
    if let Some(refused) = refusal(e) {
        return JobFailure::new(ErrorClass::Fatal, format!("target refused: {refused}"));
    }
    let (class, message) = if e.is_timeout() {
        (ErrorClass::Retryable, "request timed out".to_owned())
    } else if e.is_connect() {
        (ErrorClass::Retryable, "connection failed".to_owned())
    } else if e.is_builder() {
        (ErrorClass::Fatal, format!("bad request: {e}"))
    } else {
        (ErrorClass::Retryable, "request failed".to_owned())
    };
    JobFailure::new(class, message)
}

/// The guard's refusal inside a transport error, if that is what it was.
fn refusal(e: &reqwest::Error) -> Option<&Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = error.source();
    }
    None
}

/// The form of a URL endpoints are disabled and enabled by: parsed and written back (host in
/// lower case, default port dropped, `/` for an empty path), without a fragment, so
/// `HTTPS://Example.com:443` and `https://example.com/` are one endpoint. The whole URL, not
/// its origin: a 410 says this resource is gone, not every resource on its host (one
/// receiver host serves many tenants' hooks). A string that does not parse is kept as it is.
pub fn endpoint_key(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut parsed) => {
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => url.trim().to_owned(),
    }
}

/// What a 3xx answer's error says: the status and where it pointed (scheme, host and port
/// only: a path may carry a token).
pub fn redirect_message(who: &str, status: u16, location: Option<&str>) -> String {
    let target = location
        .and_then(|l| Url::parse(l).ok())
        .map(|u| format!(" to {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!("{who} answered {status}, a redirect{target}; redirects are never followed")
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
