//! Error normalisation and hashing: two occurrences of "the same" error must get the same
//! hash even when they differ in numbers, ids, uuids, paths or URLs.
//!
//! [`normalize`] replaces, token by token: URLs → `<url>`, file paths → `<path>`, uuids →
//! `<uuid>`, hex ids of 8+ characters mixing digits and letters → `<hex>`, and numbers → `<n>` (a number
//! glued to a word of two or more letters, like `sha256` or `utf8`, is part of that word and
//! stays). Whitespace runs become one space. [`error_hash`] is the sha256 (hex) of the
//! normalised text and the tracing target.

use sha2::{Digest, Sha256};

/// The normalised form of an error message.
pub fn normalize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for token in message.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        token_into(token, &mut out);
    }
    out
}

/// sha256 (lower-case hex) of the normalised message and the target.
pub fn error_hash(normalized: &str, target: &str) -> String {
    let mut h = Sha256::new();
    h.update(normalized.as_bytes());
    h.update(b"\n");
    h.update(target.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

const LEADING: &[char] = &['"', '\'', '(', '[', '{', '<', '`'];
const TRAILING: &[char] = &['"', '\'', ')', ']', '}', '>', ',', ';', ':', '.', '!', '?', '`'];

fn token_into(token: &str, out: &mut String) {
    let core_start = token.len() - token.trim_start_matches(LEADING).len();
    let (lead, rest) = token.split_at(core_start);
    let core = rest.trim_end_matches(TRAILING);
    let trail = &rest[core.len()..];
    out.push_str(lead);
    match core.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains(['/', ':']) => {
            out.push_str(key);
            out.push('=');
            token_into(value, out);
        }
        _ => core_into(core, out),
    }
    out.push_str(trail);
}

fn is_path(s: &str) -> bool {
    let b = s.as_bytes();
    let drive = b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/');
    drive
        || (s.len() > 1 && (s.starts_with('/') || s.starts_with("~/") || s.starts_with("./") || s.starts_with("../")))
        || (s.contains('/') && s.rsplit('/').next().is_some_and(|last| last.contains('.')))
        || s.contains('\\')
}

fn is_uuid_at(b: &[u8], i: usize) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut p = i;
    for (n, len) in GROUPS.iter().enumerate() {
        if n > 0 {
            if b.get(p) != Some(&b'-') {
                return false;
            }
            p += 1;
        }
        for _ in 0..*len {
            if !b.get(p).is_some_and(u8::is_ascii_hexdigit) {
                return false;
            }
            p += 1;
        }
    }
    !b.get(p).is_some_and(u8::is_ascii_alphanumeric)
}

fn core_into(core: &str, out: &mut String) {
    if core.contains("://") {
        out.push_str("<url>");
        return;
    }
    if is_path(core) {
        out.push_str("<path>");
        return;
    }
    let b = core.as_bytes();
    let mut i = 0;
    // Length of the run of ASCII letters that ends right before `i`.
    let letters_before = |i: usize| b[..i].iter().rev().take_while(|c| c.is_ascii_alphabetic()).count();
    while i < b.len() {
        let prev_alnum = i > 0 && b[i - 1].is_ascii_alphanumeric();
        if !prev_alnum && is_uuid_at(b, i) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        if b[i].is_ascii_hexdigit() && !prev_alnum {
            let run = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            let next_alnum = b.get(i + run).is_some_and(u8::is_ascii_alphanumeric);
            let run_bytes = &b[i..i + run];
            let mixed = run_bytes.iter().any(u8::is_ascii_digit) && run_bytes.iter().any(u8::is_ascii_alphabetic);
            if run >= 8 && !next_alnum && mixed {
                out.push_str("<hex>");
                i += run;
                continue;
            }
        }
        if b[i].is_ascii_digit() {
            let mut end = i;
            while end < b.len()
                && (b[end].is_ascii_digit()
                    || (b[end] == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit) && end > i))
            {
                end += 1;
            }
            if letters_before(i) >= 2 {
                out.push_str(&core[i..end]);
            } else {
                out.push_str("<n>");
            }
            i = end;
            continue;
        }
        // Copy one whole character (the text may hold non-ASCII characters).
        let ch_len = core[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&core[i..i + ch_len]);
        i += ch_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_variable_parts() {
        let cases = [
            ("connection 42 failed after 1.5s", "connection <n> failed after <n>s"),
            ("session 3f2a9c1e-1234-4abc-9def-0123456789ab closed", "session <uuid> closed"),
            ("session=sess-3f2a9c1e-1234-4abc-9def-0123456789ab", "session=sess-<uuid>"),
            ("cannot open /var/lib/exai/data/exai.db: locked", "cannot open <path>: locked"),
            ("read C:\\Users\\me\\x.txt failed", "read <path> failed"),
            ("config src/app.rs missing", "config <path> missing"),
            ("request id=17 rid=abcdef0123456789 done", "request id=<n> rid=<hex> done"),
            ("sha256 mismatch in utf8 text", "sha256 mismatch in utf8 text"),
            ("POST https://api.moonshot.ai/v1/chat?x=1 failed", "POST <url> failed"),
            ("at 2025-01-31T12:00:07Z (attempt 3/5)", "at <n>-<n>-<n>T<n>:<n>:<n>Z (attempt <n>/<n>)"),
            ("  spaced\t out\nlines  ", "spaced out lines"),
            ("weiß 12 grüße", "weiß <n> grüße"),
            ("took 1234567890 ms", "took <n> ms"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), want, "normalising {raw:?}");
        }
    }

    #[test]
    fn same_error_same_hash_different_error_different_hash() {
        let a = normalize("upstream 502 after 1200 ms for request 7f3e2a10-aaaa-4bbb-8ccc-123456789abc");
        let b = normalize("upstream 503 after 95 ms for request 00000000-1111-4222-8333-444444444444");
        assert_eq!(a, b);
        assert_eq!(error_hash(&a, "exai::providers"), error_hash(&b, "exai::providers"));
        assert_ne!(error_hash(&a, "exai::providers"), error_hash(&a, "exai::store"), "the target is part of the key");
        assert_ne!(error_hash(&a, "t"), error_hash(&normalize("downstream 502"), "t"));
        assert_eq!(error_hash("x", "t").len(), 64);
    }
}
