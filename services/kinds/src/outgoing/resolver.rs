//! Name resolution for outgoing calls that only ever hands reqwest addresses the kind's
//! `AddressPolicy` allows. Checking a host name's addresses before the request and letting the
//! HTTP client resolve it again would leave a window (DNS rebinding: a short TTL, a public
//! answer for the check and `127.0.0.1` for the connection); here the addresses that pass are
//! the very ones the client connects to. A name whose every address is refused fails the
//! connection with `Refused` inside the error chain, which `outgoing::failure` turns into a
//! `fatal` job failure.
//!
//! IP-literal URLs never reach a resolver; `outgoing::check_url` checks them before the request.

use std::{net::SocketAddr, sync::Arc};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::AddressPolicy;

pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // The system resolver (getaddrinfo on a blocking thread), as reqwest's default.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused) = filter(&policy, resolved);
            if allowed.is_empty() {
                if let Some(first) = refused {
                    return Err(Box::new(first) as Box<dyn std::error::Error + Send + Sync>);
                }
                return Err(format!("{host} resolved to no address").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The addresses the policy allows, in the resolver's order, and the first refusal (for the
/// error when none is allowed).
fn filter(
    policy: &AddressPolicy,
    resolved: Vec<SocketAddr>,
) -> (Vec<SocketAddr>, Option<super::address::Refused>) {
    let mut refused = None;
    let allowed = resolved
        .into_iter()
        .filter(|addr| match policy.check(addr.ip()) {
            Ok(()) => true,
            Err(e) => {
                refused.get_or_insert(e);
                false
            }
        })
        .collect();
    (allowed, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(policy: AddressPolicy, host: &str) -> Result<Vec<SocketAddr>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let resolver = GuardedResolver::new(Arc::new(policy));
        let name: Name = host.parse().unwrap();
        runtime
            .block_on(resolver.resolve(name))
            .map(|addrs| addrs.collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_name_resolving_to_loopback_is_refused() {
        let error = resolve(AddressPolicy::default(), "localhost").unwrap_err();
        assert!(error.contains("is a loopback address"), "{error}");
    }

    #[test]
    fn allowed_addresses_are_passed_on_unchanged() {
        let policy = AddressPolicy {
            allow_private: true,
            allow_cidrs: Vec::new(),
        };
        let addrs = resolve(policy, "localhost").unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn only_the_allowed_addresses_of_a_mixed_answer_are_kept() {
        let policy = AddressPolicy {
            allow_private: false,
            allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        };
        let answer: Vec<SocketAddr> = ["[::1]:0", "127.0.0.1:0", "8.8.8.8:0", "10.0.0.1:0"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let (allowed, refused) = filter(&policy, answer);
        let allowed: Vec<String> = allowed.iter().map(|a| a.ip().to_string()).collect();
        assert_eq!(allowed, ["127.0.0.1", "8.8.8.8"]);
        assert_eq!(refused.unwrap().ip.to_string(), "::1");
    }
}
