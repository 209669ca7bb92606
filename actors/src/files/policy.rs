//! The one upload policy table (config `[files]`), with no gaps between tiers:
//!
//! | size                                   | tier                                              |
//! |----------------------------------------|---------------------------------------------------|
//! | `< embed_max_bytes` (50 KB)            | chat tools embed the text in the prompt           |
//! | up to `gateway_min_bytes` (5 MB)       | direct upload to the provider                     |
//! | `gateway_min_bytes` … provider limit   | provider upload, also kept in the blob store      |
//! | above every provider limit             | blob store only (said so in the result)           |
//! | above `max_blob_bytes`                 | refused                                           |
//!
//! Provider limits: `kimi_max_bytes` (100 MB), `glm_max_bytes` (20 MB),
//! `other_max_bytes` for OpenAI-compatible providers. A file above its target provider's
//! limit but within another's is refused with the size, the limit and the setting named.
//!
//! File types: Kimi's Files API accepts only the types it documents ([`KIMI_FILE_TYPES`]);
//! a file of another type bound for a Kimi upload is refused before anything is sent
//! ([`UploadPolicy::check_type`]), naming its type.

use serde::Serialize;

/// The policy's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPolicy {
    /// Below this, chat tools embed the text.
    pub embed_max_bytes: u64,
    /// From this size up, a provider upload is also kept in the blob store.
    pub gateway_min_bytes: u64,
    /// Kimi's direct upload limit.
    pub kimi_max_bytes: u64,
    /// GLM's direct upload limit.
    pub glm_max_bytes: u64,
    /// Limit of other (OpenAI-compatible) providers.
    pub other_max_bytes: u64,
    /// Largest file kept at all (blob store).
    pub max_blob_bytes: u64,
    /// Whether a blob store is configured (gateway and blob-only tiers need it).
    pub blob_enabled: bool,
}

impl Default for UploadPolicy {
    fn default() -> Self {
        UploadPolicy {
            embed_max_bytes: 50 * 1024,
            gateway_min_bytes: 5 * 1024 * 1024,
            kimi_max_bytes: 100 * 1024 * 1024,
            glm_max_bytes: 20 * 1024 * 1024,
            other_max_bytes: 20 * 1024 * 1024,
            max_blob_bytes: 512 * 1024 * 1024,
            blob_enabled: true,
        }
    }
}

/// Where a file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Small: embed the text in the prompt (chat tools).
    Embed,
    /// Straight to the provider.
    Direct,
    /// To the provider and the blob store; both ids recorded.
    Gateway,
    /// Too large for every provider: blob store only.
    BlobOnly,
}

impl Tier {
    /// `upload_method` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Embed => "embedded",
            Tier::Direct => "direct",
            Tier::Gateway => "gateway",
            Tier::BlobOnly => "blob_only",
        }
    }
}

/// A file the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} is {size} bytes; the limit is {limit} bytes ({setting}){hint}")]
pub struct Refusal {
    /// The file.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// The limit it exceeds.
    pub limit: u64,
    /// The setting holding the limit.
    pub setting: String,
    /// What to do instead.
    pub hint: String,
}

/// The extensions Kimi's Files API documents for `file-extract` (platform.moonshot.cn,
/// Files API, "supported formats"), plus `jpg` and `htm`, the other spellings of the
/// documented `jpeg` and `html` (the same MIME types).
pub const KIMI_FILE_TYPES: &[&str] = &[
    "pdf", "txt", "csv", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "md", "jpeg", "jpg", "png", "bmp", "gif", "svg",
    "svgz", "webp", "ico", "xbm", "dib", "pjp", "tif", "pjpeg", "avif", "dot", "apng", "epub", "tiff", "jfif", "html",
    "htm", "json", "mobi", "log", "go", "h", "c", "cpp", "cxx", "cc", "cs", "java", "js", "css", "jsp", "php", "py",
    "py3", "asp", "yaml", "yml", "ini", "conf", "ts", "tsx",
];

/// A file whose type the target provider does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} is {kind}; {provider} accepts only the file types it documents: {accepted}")]
pub struct TypeRefusal {
    /// The file.
    pub path: String,
    /// The provider.
    pub provider: String,
    /// Its type as seen (`a .exe file`, `a file without an extension`).
    pub kind: String,
    /// The accepted extensions.
    pub accepted: String,
}

/// The lower-case extension of a file name (`None` without one).
pub fn extension(filename: &str) -> Option<String> {
    match filename.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext.to_ascii_lowercase()),
        _ => None,
    }
}

impl UploadPolicy {
    /// Whether `provider` accepts a file of this name by type (only Kimi has a documented
    /// list; others accept any type).
    pub fn accepts_type(&self, provider: &str, filename: &str) -> bool {
        provider != "kimi" || extension(filename).is_some_and(|e| KIMI_FILE_TYPES.contains(&e.as_str()))
    }

    /// Refuse a file `provider` would reject for its type, before anything is sent.
    pub fn check_type(&self, path: &str, filename: &str, provider: &str) -> Result<(), TypeRefusal> {
        if self.accepts_type(provider, filename) {
            return Ok(());
        }
        Err(TypeRefusal {
            path: path.to_string(),
            provider: provider.to_string(),
            kind: match extension(filename) {
                Some(e) => format!("a .{e} file"),
                None => "a file without an extension".into(),
            },
            accepted: KIMI_FILE_TYPES.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(" "),
        })
    }

    /// A provider's direct limit and the setting that holds it.
    pub fn provider_limit(&self, provider: &str) -> (u64, &'static str) {
        match provider {
            "kimi" => (self.kimi_max_bytes, "files.kimi_max_bytes"),
            "glm" => (self.glm_max_bytes, "files.glm_max_bytes"),
            _ => (self.other_max_bytes, "files.other_max_bytes"),
        }
    }

    fn every_provider_max(&self) -> u64 {
        self.kimi_max_bytes.max(self.glm_max_bytes).max(self.other_max_bytes)
    }

    /// The tier of a `size`-byte file bound for `provider`. `embed_allowed`: the caller can
    /// embed text (chat tools); upload tools pass false and small files go direct.
    pub fn decide(&self, path: &str, provider: &str, size: u64, embed_allowed: bool) -> Result<Tier, Refusal> {
        let refuse = |limit: u64, setting: &str, hint: &str| Refusal {
            path: path.to_string(),
            size,
            limit,
            setting: setting.to_string(),
            hint: hint.to_string(),
        };
        if size > self.max_blob_bytes {
            return Err(refuse(self.max_blob_bytes, "files.max_blob_bytes", ""));
        }
        let (limit, setting) = self.provider_limit(provider);
        if size > self.every_provider_max() {
            if !self.blob_enabled {
                return Err(refuse(self.every_provider_max(), setting, "; no blob store is configured (blob.backend)"));
            }
            return Ok(Tier::BlobOnly);
        }
        if size > limit {
            return Err(refuse(limit, setting, "; another provider accepts it (see smart_file_query)"));
        }
        if embed_allowed && size < self.embed_max_bytes {
            return Ok(Tier::Embed);
        }
        if size >= self.gateway_min_bytes && self.blob_enabled {
            return Ok(Tier::Gateway);
        }
        Ok(Tier::Direct)
    }

    /// The provider for a file when the caller does not choose: Kimi can read extracted
    /// text back (GLM cannot), so Kimi when it is configured and the file fits, else GLM.
    pub fn pick_provider(&self, size: u64, kimi: bool, glm: bool) -> Option<&'static str> {
        if kimi && size <= self.kimi_max_bytes {
            Some("kimi")
        } else if glm && size <= self.glm_max_bytes {
            Some("glm")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MB: u64 = 1024 * 1024;

    #[test]
    fn every_size_has_exactly_one_tier() {
        let p = UploadPolicy::default();
        assert_eq!(p.decide("f", "kimi", 0, true).unwrap(), Tier::Embed);
        assert_eq!(p.decide("f", "kimi", 50 * 1024 - 1, true).unwrap(), Tier::Embed);
        assert_eq!(p.decide("f", "kimi", 50 * 1024, true).unwrap(), Tier::Direct);
        assert_eq!(p.decide("f", "kimi", 100, false).unwrap(), Tier::Direct);
        // The old 50 KB–0.5 MB gap is covered.
        assert_eq!(p.decide("f", "glm", 300 * 1024, true).unwrap(), Tier::Direct);
        assert_eq!(p.decide("f", "glm", 5 * MB - 1, true).unwrap(), Tier::Direct);
        assert_eq!(p.decide("f", "glm", 5 * MB, true).unwrap(), Tier::Gateway);
        assert_eq!(p.decide("f", "glm", 20 * MB, true).unwrap(), Tier::Gateway);
        assert_eq!(p.decide("f", "kimi", 100 * MB, true).unwrap(), Tier::Gateway);
        assert_eq!(p.decide("f", "kimi", 100 * MB + 1, true).unwrap(), Tier::BlobOnly);
        assert_eq!(p.decide("f", "glm", 100 * MB + 1, true).unwrap(), Tier::BlobOnly);
    }

    #[test]
    fn refusals_name_size_limit_and_setting() {
        let p = UploadPolicy::default();
        let e = p.decide("/x/big.pdf", "glm", 20 * MB + 1, true).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&(20 * MB + 1).to_string()) && text.contains(&(20 * MB).to_string()), "{text}");
        assert!(text.contains("files.glm_max_bytes"), "{text}");
        let e = p.decide("f", "kimi", 600 * MB, true).unwrap_err();
        assert!(e.to_string().contains("files.max_blob_bytes"));
        let no_blob = UploadPolicy { blob_enabled: false, ..UploadPolicy::default() };
        assert_eq!(no_blob.decide("f", "kimi", 10 * MB, true).unwrap(), Tier::Direct);
        assert!(no_blob.decide("f", "kimi", 200 * MB, true).unwrap_err().to_string().contains("blob.backend"));
    }

    #[test]
    fn kimi_accepts_only_documented_types() {
        let p = UploadPolicy::default();
        for ok in ["a.pdf", "b.TXT", "c.tar.py", "d.jpg", "e.docx"] {
            assert!(p.check_type(ok, ok, "kimi").is_ok(), "{ok}");
        }
        let e = p.check_type("/x/tool.exe", "tool.exe", "kimi").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("/x/tool.exe is a .exe file") && text.contains(".pdf") && text.contains("kimi"),
            "{text}"
        );
        let e = p.check_type("/x/Makefile", "Makefile", "kimi").unwrap_err();
        assert!(e.to_string().contains("without an extension"), "{e}");
        assert!(p.check_type("/x/.bashrc", ".bashrc", "kimi").is_err(), "a dot file has no extension");
        assert!(p.check_type("/x/tool.exe", "tool.exe", "glm").is_ok(), "GLM documents no type list");
    }

    #[test]
    fn provider_pick_follows_limits() {
        let p = UploadPolicy::default();
        assert_eq!(p.pick_provider(10, true, true), Some("kimi"));
        assert_eq!(p.pick_provider(50 * MB, false, true), None);
        assert_eq!(p.pick_provider(10 * MB, false, true), Some("glm"));
        assert_eq!(p.pick_provider(101 * MB, true, true), None);
    }
}
