//! Reading the files a tool call names, only from configured allowed roots.
//!
//! Paths are resolved on the server (the client sends paths, not contents): made absolute,
//! canonicalised (symlinks resolved), and must then lie under one of the canonical allowed
//! roots — so `..` and symlinks cannot escape. Sizes are capped per file and per call.
//! Contents are never logged; errors name the path as the caller gave it and the limit only.
//!
//! Every refusal of a path — it does not exist, it lies outside the roots (directly or
//! through a symlink), it is not a regular file, it cannot be opened — is the same message
//! naming the path as given ([`refusal`]): a caller cannot learn whether a file outside the
//! roots exists or where a symlink points.

use crate::error::ToolError;
use std::path::{Path, PathBuf};

/// Which files tools may read, and how much.
#[derive(Debug, Clone)]
pub struct FileAccess {
    roots: Vec<PathBuf>,
    /// Largest single file, bytes.
    pub max_file_bytes: u64,
    /// Largest total per call, bytes.
    pub max_total_bytes: u64,
}

/// The one message for a path that cannot be used, whatever the reason.
pub fn refusal(raw: &str) -> String {
    format!("{raw:?} is not a readable regular file under the allowed roots (tools.allowed_roots)")
}

/// A file read for a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadFile {
    /// Canonical path.
    pub path: PathBuf,
    /// UTF-8 text.
    pub text: String,
}

impl FileAccess {
    /// Allowed roots are canonicalised now; roots that do not exist are dropped (and reported).
    pub fn new(roots: &[PathBuf], max_file_bytes: u64, max_total_bytes: u64) -> (FileAccess, Vec<String>) {
        let mut ok = Vec::new();
        let mut problems = Vec::new();
        for r in roots {
            match std::fs::canonicalize(r) {
                Ok(c) => ok.push(c),
                Err(e) => problems.push(format!("allowed root {} is unusable: {e}", r.display())),
            }
        }
        (FileAccess { roots: ok, max_file_bytes, max_total_bytes }, problems)
    }

    /// The canonical roots.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn invalid(field: &str, message: String) -> ToolError {
        ToolError::InvalidArguments { field: field.to_string(), message }
    }

    fn refused(field: &str, raw: &str) -> ToolError {
        Self::invalid(field, refusal(raw))
    }

    /// Resolve and check one path (must exist and be a regular file under a root).
    pub async fn resolve(&self, field: &str, raw: &str) -> Result<(PathBuf, u64), ToolError> {
        let p = Path::new(raw);
        if raw.trim().is_empty() {
            return Err(Self::invalid(field, "empty path".into()));
        }
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            match self.roots.first() {
                Some(r) => r.join(p),
                None => {
                    return Err(Self::invalid(field, "no allowed roots are configured (tools.allowed_roots)".into()))
                }
            }
        };
        let Ok(canon) = tokio::fs::canonicalize(&abs).await else {
            return Err(Self::refused(field, raw));
        };
        if !self.roots.iter().any(|r| canon.starts_with(r)) {
            return Err(Self::refused(field, raw));
        }
        let meta = match tokio::fs::metadata(&canon).await {
            Ok(m) if m.is_file() => m,
            _ => return Err(Self::refused(field, raw)),
        };
        Ok((canon, meta.len()))
    }

    /// Read text files for a prompt, enforcing the per-file and per-call limits.
    pub async fn read_texts(&self, field: &str, paths: &[String]) -> Result<Vec<ReadFile>, ToolError> {
        let mut out = Vec::new();
        let mut total = 0u64;
        for (i, raw) in paths.iter().enumerate() {
            let f = format!("{field}/{i}");
            let (path, len) = self.resolve(&f, raw).await?;
            if len > self.max_file_bytes {
                return Err(Self::invalid(
                    &f,
                    format!("{raw:?} is {len} bytes; the limit is {} (tools.max_file_bytes)", self.max_file_bytes),
                ));
            }
            total += len;
            if total > self.max_total_bytes {
                return Err(Self::invalid(
                    field,
                    format!("files total more than {} bytes (tools.max_total_file_bytes)", self.max_total_bytes),
                ));
            }
            let bytes = tokio::fs::read(&path).await.map_err(|_| Self::refused(&f, raw))?;
            let text = String::from_utf8(bytes).map_err(|_| Self::invalid(&f, format!("{raw:?} is not UTF-8 text")))?;
            out.push(ReadFile { path, text });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[actix_rt::test]
    async fn roots_traversal_symlinks_and_limits() {
        let base = std::env::temp_dir().join(format!("exai-files-{}", uuid::Uuid::new_v4()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("a.txt"), "hello").unwrap();
        std::fs::write(outside.join("secret.txt"), "nope").unwrap();
        std::fs::write(root.join("big.txt"), "x".repeat(100)).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link.txt")).unwrap();
        let (fa, problems) = FileAccess::new(std::slice::from_ref(&root), 50, 60);
        assert!(problems.is_empty());
        let r = fa.read_texts("files", &["a.txt".into()]).await.unwrap();
        assert_eq!(r[0].text, "hello");
        // Outside the roots, existing or not, through `..`, an absolute path or a symlink, or
        // not a file: one message naming the path as given, never the target or the OS error.
        let secret = outside.join("secret.txt").display().to_string();
        let missing = outside.join("missing.txt").display().to_string();
        #[allow(unused_mut)]
        let mut refused = vec![
            "../outside/secret.txt".to_string(),
            "../outside/missing.txt".to_string(),
            secret.clone(),
            missing.clone(),
            "nothing-here.txt".to_string(),
            ".".to_string(),
        ];
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.join("missing.txt"), root.join("dangling.txt")).unwrap();
            refused.extend(["link.txt".to_string(), "dangling.txt".to_string()]);
        }
        for raw in &refused {
            let e = fa.read_texts("files", std::slice::from_ref(raw)).await.unwrap_err();
            let ToolError::InvalidArguments { message, .. } = &e else { panic!("{e:?}") };
            assert_eq!(message, &refusal(raw), "{raw}");
            assert!(!message.contains("outside/") || raw.contains("outside/"), "the target leaked: {message}");
            assert!(!message.contains("No such file") && !message.contains("os error"), "{message}");
        }
        let e = fa.read_texts("files", &["big.txt".into()]).await.unwrap_err();
        assert!(e.to_string().contains("tools.max_file_bytes"));
        let _ = std::fs::remove_dir_all(&base);
    }
}
