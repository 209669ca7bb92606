//! Masking of secrets in vendor text: the one function every vendor message exai relays to a
//! client or writes to a log goes through.
//!
//! The process registers every configured secret (provider API keys, extra header values, the
//! server's auth token) at start-up with [`register`]; [`mask`] replaces each occurrence with
//! `***`, and also any `Bearer <token>` (a vendor's 401 body may echo the header it got, with a
//! key exai never saw configured, e.g. one from a proxy). Secrets shorter than
//! [`MIN_SECRET_LEN`] are not registered: masking them would garble ordinary words.

use std::borrow::Cow;
use std::sync::RwLock;

/// Shortest secret that is masked.
pub const MIN_SECRET_LEN: usize = 6;

/// What replaces a secret.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds a secret to mask (idempotent; empty and very short values are ignored).
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut list = SECRETS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !list.iter().any(|s| s == secret) {
        list.push(secret.to_string());
        // Longest first, so a secret containing another is masked whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret and every `Bearer` token replaced by `***`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let list = SECRETS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = Cow::Borrowed(text);
    for secret in list.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    drop(list);
    match mask_bearer(&out) {
        Some(masked) => Cow::Owned(masked),
        None => out,
    }
}

/// Replaces the token after each `Bearer ` (any case); `None` when there is none.
fn mask_bearer(text: &str) -> Option<String> {
    const WORD: &str = "bearer ";
    let lower = text.to_ascii_lowercase();
    if !lower.contains(WORD) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut changed = false;
    while let Some(found) = lower[rest..].find(WORD) {
        let token_start = rest + found + WORD.len();
        let token_len = text[token_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '}' | ')'))
            .unwrap_or(text.len() - token_start);
        out.push_str(&text[rest..token_start]);
        if token_len > 0 && &text[token_start..token_start + token_len] != MASK {
            out.push_str(MASK);
            changed = true;
        } else {
            out.push_str(&text[token_start..token_start + token_len]);
        }
        rest = token_start + token_len;
    }
    out.push_str(&text[rest..]);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_and_bearer_tokens_are_masked() {
        register("sk-redact-test-0123456789");
        register("tok");
        let body =
            r#"{"error":{"message":"Invalid key sk-redact-test-0123456789 (Authorization: Bearer sk-other-999)"}}"#;
        let m = mask(body);
        assert!(!m.contains("sk-redact-test-0123456789") && !m.contains("sk-other-999"), "{m}");
        assert!(m.contains("Invalid key ***") && m.contains("Bearer ***)"), "{m}");
        assert_eq!(mask("a token is fine"), "a token is fine", "short values are not registered");
        assert!(matches!(mask("nothing secret"), Cow::Borrowed(_)));
        assert_eq!(mask("BEARER abc, bearer "), "BEARER ***, bearer ");
        assert_eq!(mask("Bearer ***"), "Bearer ***");
    }
}
