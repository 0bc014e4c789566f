//! `scheme = "standard"`: [Standard Webhooks](https://www.standardwebhooks.com/) (Svix and the
//! senders built on it). `webhook-id`, `webhook-timestamp` (Unix s) and `webhook-signature`:
//! space-separated `v1,<base64>` entries, each an HMAC-SHA256 of `<id>.<timestamp>.<raw body>`
//! keyed by the base64-decoded secret (`whsec_<base64>`). The event id is `webhook-id`.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use sluice_core::hooks::HookConfig;

use super::{
    any_matches,
    config::{no_hmac_keys, HookConfigError},
    header, within, Refusal, Scheme, Verifier,
};

pub struct Standard;

impl Scheme for Standard {
    fn name(&self) -> &'static str {
        "standard"
    }

    fn build(
        &self,
        source: &str,
        config: &HookConfig,
    ) -> Result<Box<dyn Verifier>, HookConfigError> {
        no_hmac_keys(source, config)?;
        let keys = config
            .secret
            .all()
            .into_iter()
            .enumerate()
            .map(|(i, secret)| {
                // The libraries accept the secret with or without its `whsec_` prefix.
                let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
                BASE64
                    .decode(encoded)
                    .ok()
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        HookConfigError::key(
                            source,
                            "secret",
                            format!("secret {} is not `whsec_` followed by base64", i + 1),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Box::new(StandardVerifier {
            keys,
            tolerance: config.tolerance,
        }))
    }
}

struct StandardVerifier {
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
}

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";

impl Verifier for StandardVerifier {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        let signatures = header(headers, SIGNATURE)?.ok_or(Refusal::InvalidSignature)?;
        let missing = |name: &str| Refusal::Malformed(format!("header `{name}` is missing"));
        let id = header(headers, ID)?.ok_or_else(|| missing(ID))?;
        let timestamp_text = header(headers, TIMESTAMP)?.ok_or_else(|| missing(TIMESTAMP))?;
        let timestamp = timestamp_text.trim().parse::<i64>().map_err(|_| {
            Refusal::Malformed(format!("`{TIMESTAMP}` is not a Unix time in seconds"))
        })?;
        let candidates: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            // v1a (asymmetric) and later versions are not ours to check.
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, signature)| BASE64.decode(signature).ok())
            .collect();
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body];
        if !any_matches(&self.keys, &parts, &candidates) {
            return Err(Refusal::InvalidSignature);
        }
        if !within(timestamp, now, self.tolerance) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    fn event_id(&self, headers: &HeaderMap, _: &[u8]) -> Result<Option<String>, Refusal> {
        Ok(header(headers, ID)?.map(str::to_owned))
    }

    fn forwarded_headers(&self) -> Vec<&str> {
        vec![ID, TIMESTAMP, SIGNATURE, "content-type", "user-agent"]
    }
}

#[cfg(test)]
mod tests {
    use super::{super::test_support::*, *};

    const NOW: i64 = 1_764_000_000;
    const BODY: &[u8] = br#"{"type":"user.created"}"#;
    // base64 of "new-key-bytes" and "old-key-bytes".
    const NEW: &str = "whsec_bmV3LWtleS1ieXRlcw==";
    const OLD: &str = "whsec_b2xkLWtleS1ieXRlcw==";

    fn signature(secret: &str, id: &str, t: i64, body: &[u8]) -> String {
        let key = BASE64
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let t = t.to_string();
        let mac = sign(&key, &[id.as_bytes(), b".", t.as_bytes(), b".", body]);
        format!("v1,{}", BASE64.encode(mac))
    }

    fn check(id: &str, t: &str, signatures: &str, body: &[u8]) -> Result<(), Refusal> {
        let verifier = verifier(
            &Standard,
            &format!("scheme = \"standard\"\nsecret = [\"{NEW}\", \"{OLD}\"]"),
        );
        let headers = headers(&[(ID, id), (TIMESTAMP, t), (SIGNATURE, signatures)]);
        verifier.verify(&headers, body, NOW)
    }

    #[test]
    fn good_several_and_rotated_signatures_pass() {
        let t = NOW.to_string();
        assert_eq!(
            check("msg_1", &t, &signature(NEW, "msg_1", NOW, BODY), BODY),
            Ok(())
        );
        let several = format!(
            "v1a,abc v1,{} {}",
            BASE64.encode([0u8; 32]),
            signature(OLD, "msg_1", NOW, BODY)
        );
        assert_eq!(check("msg_1", &t, &several, BODY), Ok(()));
        let verifier = verifier(
            &Standard,
            &format!("scheme = \"standard\"\nsecret = \"{NEW}\""),
        );
        let id = verifier.event_id(&headers(&[(ID, "msg_1")]), BODY).unwrap();
        assert_eq!(id.as_deref(), Some("msg_1"));
    }

    #[test]
    fn forged_tampered_and_missing_signatures_are_invalid() {
        let t = NOW.to_string();
        let good = signature(NEW, "msg_1", NOW, BODY);
        let forged = signature("whsec_Z3Vlc3M=", "msg_1", NOW, BODY);
        assert_eq!(
            check("msg_1", &t, &forged, BODY),
            Err(Refusal::InvalidSignature)
        );
        assert_eq!(
            check("msg_1", &t, &good, b"{}"),
            Err(Refusal::InvalidSignature)
        );
        // The id and the timestamp are signed too.
        assert_eq!(
            check("msg_2", &t, &good, BODY),
            Err(Refusal::InvalidSignature)
        );
        let later = (NOW + 1).to_string();
        assert_eq!(
            check("msg_1", &later, &good, BODY),
            Err(Refusal::InvalidSignature)
        );
        assert_eq!(
            check("msg_1", &t, "v1,!!!", BODY),
            Err(Refusal::InvalidSignature)
        );
        assert_eq!(
            check("msg_1", &t, "v2,abc", BODY),
            Err(Refusal::InvalidSignature)
        );
        let verifier = verifier(
            &Standard,
            &format!("scheme = \"standard\"\nsecret = \"{NEW}\""),
        );
        let no_signature = headers(&[(ID, "msg_1"), (TIMESTAMP, &t)]);
        assert_eq!(
            verifier.verify(&no_signature, BODY, NOW),
            Err(Refusal::InvalidSignature)
        );
    }

    #[test]
    fn expired_and_future_timestamps_are_refused() {
        for t in [NOW - 301, NOW + 301] {
            let signed = signature(NEW, "msg_1", t, BODY);
            assert_eq!(
                check("msg_1", &t.to_string(), &signed, BODY),
                Err(Refusal::Expired)
            );
        }
    }

    #[test]
    fn malformed_headers_are_malformed() {
        let good = signature(NEW, "msg_1", NOW, BODY);
        assert!(matches!(
            check("msg_1", "soon", &good, BODY),
            Err(Refusal::Malformed(_))
        ));
        let verifier = verifier(
            &Standard,
            &format!("scheme = \"standard\"\nsecret = \"{NEW}\""),
        );
        let no_id = headers(&[(TIMESTAMP, "1"), (SIGNATURE, &good)]);
        assert!(matches!(
            verifier.verify(&no_id, BODY, NOW),
            Err(Refusal::Malformed(_))
        ));
    }
}
