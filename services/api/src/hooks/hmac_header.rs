//! `scheme = "hmac"`: for senders with their own convention — an HMAC-SHA256 of the raw body,
//! keyed by the secret as written, in the header `header`, `hex` or `base64` encoded, after an
//! optional `prefix` (`sha256=`). No timestamp is signed, so nothing expires; with `id_header`
//! the header's value is the event id (de-duplicated for `tolerance`), without it every
//! verified request is a new event.

use axum::http::{HeaderMap, HeaderName};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use sluice_core::hooks::HookConfig;

use super::{
    any_matches,
    config::{raw_keys, HookConfigError},
    header, Refusal, Scheme, Verifier,
};

pub struct HmacHeader;

#[derive(Clone, Copy)]
enum Encoding {
    Hex,
    Base64,
}

impl Scheme for HmacHeader {
    fn name(&self) -> &'static str {
        "hmac"
    }

    fn build(
        &self,
        source: &str,
        config: &HookConfig,
    ) -> Result<Box<dyn Verifier>, HookConfigError> {
        let header_name = |key: &'static str, value: &str| {
            HeaderName::from_bytes(value.as_bytes())
                .map(|name| name.as_str().to_owned())
                .map_err(|_| {
                    HookConfigError::key(source, key, format!("`{value}` is not a header name"))
                })
        };
        let header = config.header.as_deref().ok_or_else(|| {
            HookConfigError::key(source, "header", "is required for scheme = \"hmac\"")
        })?;
        let encoding = match config.encoding.as_deref().unwrap_or("hex") {
            "hex" => Encoding::Hex,
            "base64" => Encoding::Base64,
            other => {
                return Err(HookConfigError::key(
                    source,
                    "encoding",
                    format!("`{other}`: must be hex or base64"),
                ))
            }
        };
        let signature_header = header_name("header", header)?;
        let id_header = config
            .id_header
            .as_deref()
            .map(|h| header_name("id_header", h))
            .transpose()?;
        let mut forwarded = vec![signature_header.clone()];
        forwarded.extend(id_header.clone());
        forwarded.extend(["content-type".to_owned(), "user-agent".to_owned()]);
        Ok(Box::new(HmacVerifier {
            keys: raw_keys(config),
            header: signature_header,
            prefix: config.prefix.clone().unwrap_or_default(),
            encoding,
            id_header,
            forwarded,
        }))
    }
}

struct HmacVerifier {
    keys: Vec<Vec<u8>>,
    header: String,
    prefix: String,
    encoding: Encoding,
    id_header: Option<String>,
    forwarded: Vec<String>,
}

impl Verifier for HmacVerifier {
    fn verify(&self, headers: &HeaderMap, body: &[u8], _now: i64) -> Result<(), Refusal> {
        let value = header(headers, &self.header)?.ok_or(Refusal::InvalidSignature)?;
        let encoded = value
            .trim()
            .strip_prefix(self.prefix.as_str())
            .ok_or_else(|| {
                Refusal::Malformed(format!(
                    "`{}` does not start with `{}`",
                    self.header, self.prefix
                ))
            })?;
        let decoded = match self.encoding {
            Encoding::Hex => hex::decode(encoded).ok(),
            Encoding::Base64 => BASE64.decode(encoded).ok(),
        };
        let candidates: Vec<Vec<u8>> = decoded.into_iter().collect();
        if any_matches(&self.keys, &[body], &candidates) {
            Ok(())
        } else {
            Err(Refusal::InvalidSignature)
        }
    }

    fn event_id(&self, headers: &HeaderMap, _: &[u8]) -> Result<Option<String>, Refusal> {
        let Some(name) = &self.id_header else {
            return Ok(None);
        };
        match header(headers, name)? {
            Some(id) => Ok(Some(id.to_owned())),
            None => Err(Refusal::Malformed(format!("header `{name}` is missing"))),
        }
    }

    fn forwarded_headers(&self) -> Vec<&str> {
        self.forwarded.iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{super::test_support::*, *};

    const BODY: &[u8] = b"order=42&state=paid";

    #[test]
    fn hex_with_a_prefix_and_rotated_secrets() {
        let verifier = verifier(
            &HmacHeader,
            "scheme = \"hmac\"\nsecret = [\"new\", \"old\"]\nheader = \"X-Signature\"\nprefix = \"sha256=\"",
        );
        for secret in ["new", "old"] {
            let value = format!("sha256={}", hex::encode(sign(secret.as_bytes(), &[BODY])));
            let headers = headers(&[("x-signature", &value)]);
            assert_eq!(verifier.verify(&headers, BODY, 0), Ok(()));
            assert_eq!(
                verifier.verify(&headers, b"order=43", 0),
                Err(Refusal::InvalidSignature)
            );
        }
        let forged = format!("sha256={}", hex::encode(sign(b"guess", &[BODY])));
        let refused = verifier.verify(&headers(&[("x-signature", &forged)]), BODY, 0);
        assert_eq!(refused, Err(Refusal::InvalidSignature));
        let unprefixed = hex::encode(sign(b"new", &[BODY]));
        let malformed = verifier.verify(&headers(&[("x-signature", &unprefixed)]), BODY, 0);
        assert!(matches!(malformed, Err(Refusal::Malformed(_))));
        assert_eq!(
            verifier.verify(&HeaderMap::new(), BODY, 0),
            Err(Refusal::InvalidSignature)
        );
        assert_eq!(verifier.event_id(&HeaderMap::new(), BODY), Ok(None));
    }

    #[test]
    fn base64_with_an_event_id_header() {
        let verifier = verifier(
            &HmacHeader,
            "scheme = \"hmac\"\nsecret = \"k\"\nheader = \"x-sig\"\nencoding = \"base64\"\nid_header = \"X-Event-Id\"",
        );
        let value = BASE64.encode(sign(b"k", &[BODY]));
        let headers = headers(&[("x-sig", &value), ("x-event-id", "e-7")]);
        assert_eq!(verifier.verify(&headers, BODY, 0), Ok(()));
        assert_eq!(verifier.event_id(&headers, BODY), Ok(Some("e-7".into())));
        assert!(matches!(
            verifier.event_id(&HeaderMap::new(), BODY),
            Err(Refusal::Malformed(_))
        ));
        assert_eq!(
            verifier.forwarded_headers(),
            ["x-sig", "x-event-id", "content-type", "user-agent"]
        );
    }
}
