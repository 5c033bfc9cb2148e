//! Keeps secrets (the API key, the Redis password) out of every message that leaves the crate.

/// Replaces each occurrence of a secret (raw and URL-encoded) with `[redacted]`.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secret: Option<&str>) -> Redactor {
        let mut secrets = Vec::new();
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            let encoded: String = url_encode(secret);
            if encoded != secret {
                secrets.push(encoded);
            }
            secrets.push(secret.to_owned());
        }
        Redactor { secrets }
    }

    /// This redactor, hiding `secret` too.
    pub fn and(&self, secret: &str) -> Redactor {
        let mut secrets = self.secrets.clone();
        secrets.extend(Redactor::new(Some(secret)).secrets);
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor([redacted])")
    }
}

fn url_encode(s: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", &[("k", s)])
        .ok()
        .and_then(|url| url.query().map(|q| q.trim_start_matches("k=").to_owned()))
        .unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_raw_and_encoded_key() {
        let r = Redactor::new(Some("a b&c"));
        assert_eq!(r.redact("key=a+b%26c and a b&c"), "key=[redacted] and [redacted]");
        assert_eq!(Redactor::new(None).redact("x"), "x");
        assert_eq!(format!("{r:?}"), "Redactor([redacted])");
    }
}
