//! `scheme = "github"`: `X-Hub-Signature-256: sha256=<hex>`, an HMAC-SHA256 of the raw body
//! keyed by the webhook's secret as written. GitHub signs no timestamp, so nothing expires; the
//! event id is `X-GitHub-Delivery` (the same on a redelivery), remembered for `tolerance`.

use axum::http::HeaderMap;
use sluice_core::hooks::HookConfig;

use super::{
    any_matches,
    config::{no_hmac_keys, raw_keys, HookConfigError},
    header, Refusal, Scheme, Verifier,
};

pub struct Github;

impl Scheme for Github {
    fn name(&self) -> &'static str {
        "github"
    }

    fn build(
        &self,
        source: &str,
        config: &HookConfig,
    ) -> Result<Box<dyn Verifier>, HookConfigError> {
        no_hmac_keys(source, config)?;
        Ok(Box::new(GithubVerifier {
            keys: raw_keys(config),
        }))
    }
}

struct GithubVerifier {
    keys: Vec<Vec<u8>>,
}

const SIGNATURE: &str = "x-hub-signature-256";
const DELIVERY: &str = "x-github-delivery";

impl Verifier for GithubVerifier {
    fn verify(&self, headers: &HeaderMap, body: &[u8], _now: i64) -> Result<(), Refusal> {
        let value = header(headers, SIGNATURE)?.ok_or(Refusal::InvalidSignature)?;
        let hex_text = value
            .strip_prefix("sha256=")
            .ok_or_else(|| Refusal::Malformed(format!("`{SIGNATURE}` is not `sha256=<hex>`")))?;
        let candidates: Vec<Vec<u8>> = hex::decode(hex_text).ok().into_iter().collect();
        if any_matches(&self.keys, &[body], &candidates) {
            Ok(())
        } else {
            Err(Refusal::InvalidSignature)
        }
    }

    fn event_id(&self, headers: &HeaderMap, _: &[u8]) -> Result<Option<String>, Refusal> {
        match header(headers, DELIVERY)? {
            Some(id) if !id.is_empty() => Ok(Some(id.to_owned())),
            _ => Err(Refusal::Malformed(format!(
                "header `{DELIVERY}` is missing"
            ))),
        }
    }

    fn forwarded_headers(&self) -> Vec<&str> {
        vec![
            "x-github-event",
            DELIVERY,
            "x-github-hook-id",
            "x-github-hook-installation-target-id",
            "x-github-hook-installation-target-type",
            SIGNATURE,
            "content-type",
            "user-agent",
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::{super::test_support::*, *};

    const BODY: &[u8] = br#"{"zen":"Keep it logically awesome."}"#;

    fn check(header: &str, body: &[u8]) -> Result<(), Refusal> {
        let verifier = verifier(&Github, "scheme = \"github\"\nsecret = [\"new\", \"old\"]");
        verifier.verify(&headers(&[(SIGNATURE, header)]), body, 0)
    }

    #[test]
    fn good_and_rotated_signatures_pass() {
        for secret in ["new", "old"] {
            let header = format!("sha256={}", hex::encode(sign(secret.as_bytes(), &[BODY])));
            assert_eq!(check(&header, BODY), Ok(()));
        }
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let verifier = verifier(
            &Github,
            "scheme = \"github\"\nsecret = \"It's a Secret to Everybody\"",
        );
        let documented = headers(&[(
            SIGNATURE,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(verifier.verify(&documented, b"Hello, World!", 0), Ok(()));
    }

    #[test]
    fn forged_tampered_and_missing_signatures_are_invalid() {
        let forged = format!("sha256={}", hex::encode(sign(b"guess", &[BODY])));
        assert_eq!(check(&forged, BODY), Err(Refusal::InvalidSignature));
        let good = format!("sha256={}", hex::encode(sign(b"new", &[BODY])));
        assert_eq!(check(&good, b"{}"), Err(Refusal::InvalidSignature));
        assert_eq!(check("sha256=xyz", BODY), Err(Refusal::InvalidSignature));
        let verifier = verifier(&Github, "scheme = \"github\"\nsecret = \"new\"");
        assert_eq!(
            verifier.verify(&HeaderMap::new(), BODY, 0),
            Err(Refusal::InvalidSignature)
        );
    }

    #[test]
    fn malformed_headers_and_a_missing_delivery_id_are_malformed() {
        let sha1 = format!("sha1={}", "00".repeat(20));
        assert!(matches!(check(&sha1, BODY), Err(Refusal::Malformed(_))));
        let verifier = verifier(&Github, "scheme = \"github\"\nsecret = \"new\"");
        assert!(matches!(
            verifier.event_id(&HeaderMap::new(), BODY),
            Err(Refusal::Malformed(_))
        ));
        let id = verifier.event_id(&headers(&[(DELIVERY, "72d3162e")]), BODY);
        assert_eq!(id, Ok(Some("72d3162e".into())));
    }
}
