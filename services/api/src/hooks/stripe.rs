//! `scheme = "stripe"`: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>…]`, each `v1` an
//! HMAC-SHA256 of `<t>.<raw body>` keyed by the endpoint secret as written (`whsec_…`). Stripe
//! sends one `v1` per active secret while one is being rolled; any match passes. The event id is
//! the JSON body's `id`, read only after the signature passed.

use axum::http::HeaderMap;
use sluice_core::hooks::HookConfig;

use super::{
    any_matches,
    config::{no_hmac_keys, raw_keys, HookConfigError},
    header, within, Refusal, Scheme, Verifier,
};

pub struct Stripe;

impl Scheme for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn build(
        &self,
        source: &str,
        config: &HookConfig,
    ) -> Result<Box<dyn Verifier>, HookConfigError> {
        no_hmac_keys(source, config)?;
        Ok(Box::new(StripeVerifier {
            keys: raw_keys(config),
            tolerance: config.tolerance,
        }))
    }
}

struct StripeVerifier {
    keys: Vec<Vec<u8>>,
    tolerance: std::time::Duration,
}

const SIGNATURE: &str = "stripe-signature";

impl Verifier for StripeVerifier {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        let value = header(headers, SIGNATURE)?.ok_or(Refusal::InvalidSignature)?;
        let mut timestamp = None;
        let mut candidates = Vec::new();
        for item in value.split(',') {
            let (name, text) = item.trim().split_once('=').ok_or_else(|| {
                Refusal::Malformed(format!("`{SIGNATURE}`: `{item}` is not `name=value`"))
            })?;
            match name {
                "t" => {
                    let seconds = text.parse::<i64>().map_err(|_| {
                        Refusal::Malformed(format!("`{SIGNATURE}`: `t` is not a Unix time"))
                    })?;
                    timestamp = Some(seconds);
                }
                // A value that is not hex cannot match; it is not worth a different answer.
                "v1" => candidates.extend(hex::decode(text).ok()),
                // v0 (test mode's legacy scheme) and whatever Stripe adds later.
                _ => {}
            }
        }
        let timestamp =
            timestamp.ok_or_else(|| Refusal::Malformed(format!("`{SIGNATURE}` has no `t`")))?;
        let signed = timestamp.to_string();
        if !any_matches(&self.keys, &[signed.as_bytes(), b".", body], &candidates) {
            return Err(Refusal::InvalidSignature);
        }
        if !within(timestamp, now, self.tolerance) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    fn event_id(&self, _: &HeaderMap, body: &[u8]) -> Result<Option<String>, Refusal> {
        #[derive(serde::Deserialize)]
        struct Event {
            id: String,
        }
        serde_json::from_slice::<Event>(body)
            .map(|event| Some(event.id))
            .map_err(|_| Refusal::Malformed("the signed body has no string `id`".into()))
    }

    fn forwarded_headers(&self) -> Vec<&str> {
        vec![SIGNATURE, "content-type", "user-agent"]
    }
}

#[cfg(test)]
mod tests {
    use super::{super::test_support::*, *};

    const NOW: i64 = 1_764_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn signature(secret: &str, t: i64, body: &[u8]) -> String {
        hex::encode(sign(
            secret.as_bytes(),
            &[t.to_string().as_bytes(), b".", body],
        ))
    }

    fn check(header: &str, body: &[u8]) -> Result<(), Refusal> {
        let verifier = verifier(
            &Stripe,
            "scheme = \"stripe\"\nsecret = [\"whsec_new\", \"whsec_old\"]",
        );
        verifier.verify(&headers(&[(SIGNATURE, header)]), body, NOW)
    }

    #[test]
    fn a_good_signature_passes_and_the_event_id_comes_from_the_body() {
        let header = format!("t={NOW},v1={}", signature("whsec_new", NOW, BODY));
        assert_eq!(check(&header, BODY), Ok(()));
        let verifier = verifier(&Stripe, "scheme = \"stripe\"\nsecret = \"whsec_new\"");
        let id = verifier.event_id(&HeaderMap::new(), BODY).unwrap();
        assert_eq!(id.as_deref(), Some("evt_1"));
    }

    #[test]
    fn any_of_several_signatures_and_any_rotated_secret_passes() {
        let old = signature("whsec_old", NOW, BODY);
        let header = format!("t={NOW},v1={},v1={old},v0=abc", "00".repeat(32));
        assert_eq!(check(&header, BODY), Ok(()));
    }

    #[test]
    fn forged_tampered_and_missing_signatures_are_invalid() {
        let forged = format!("t={NOW},v1={}", signature("whsec_guess", NOW, BODY));
        assert_eq!(check(&forged, BODY), Err(Refusal::InvalidSignature));
        let good = format!("t={NOW},v1={}", signature("whsec_new", NOW, BODY));
        let tampered = br#"{"id":"evt_1","type":"invoice.paid "}"#;
        assert_eq!(check(&good, tampered), Err(Refusal::InvalidSignature));
        // The timestamp is signed too.
        let moved = good.replace(&NOW.to_string(), &(NOW - 1).to_string());
        assert_eq!(check(&moved, BODY), Err(Refusal::InvalidSignature));
        assert_eq!(
            check(&format!("t={NOW},v1=zz"), BODY),
            Err(Refusal::InvalidSignature)
        );
        assert_eq!(
            check(&format!("t={NOW}"), BODY),
            Err(Refusal::InvalidSignature)
        );
        let verifier = verifier(&Stripe, "scheme = \"stripe\"\nsecret = \"whsec_new\"");
        assert_eq!(
            verifier.verify(&HeaderMap::new(), BODY, NOW),
            Err(Refusal::InvalidSignature)
        );
    }

    #[test]
    fn expired_and_future_timestamps_are_refused() {
        for t in [NOW - 301, NOW + 301] {
            let header = format!("t={t},v1={}", signature("whsec_new", t, BODY));
            assert_eq!(check(&header, BODY), Err(Refusal::Expired), "t = {t}");
        }
        let edge = NOW - 300;
        let header = format!("t={edge},v1={}", signature("whsec_new", edge, BODY));
        assert_eq!(check(&header, BODY), Ok(()));
    }

    #[test]
    fn malformed_headers_are_malformed() {
        for header in ["garbage", "t=abc,v1=00", "v1=00", "t=1,,v1=00"] {
            assert!(
                matches!(check(header, BODY), Err(Refusal::Malformed(_))),
                "{header}"
            );
        }
        let verifier = verifier(&Stripe, "scheme = \"stripe\"\nsecret = \"whsec_new\"");
        assert!(matches!(
            verifier.event_id(&HeaderMap::new(), b"[1]"),
            Err(Refusal::Malformed(_))
        ));
    }
}
