//! The Files API (OpenAI shape, which Kimi and GLM follow): upload as a hand-built
//! `multipart/form-data` body streamed from disk in chunks with an exact `Content-Length`
//! (the file is never read whole into memory, its bytes never logged), list, content and
//! delete.

use awc::body::SizedStream;
use awc::http::header::CONTENT_TYPE;
use awc::http::Method;
use bytes::Bytes;
use exai_actors::files::hash::{hashed_chunks, ChunkSink, HashedChunks};
use exai_actors::provider::types::{ProviderError, ProviderFile, RequestTimeouts};
use futures_util::Stream;
use serde_json::Value;
use std::io;
use std::path::Path;

use super::http::{read_body, Clock, HttpCore, CONTENT_BODY_LIMIT, JSON_BODY_LIMIT};

/// The framing of one upload: a `purpose` field, then the `file` part, then the trailer.
#[derive(Debug, Clone)]
pub(crate) struct MultipartUpload {
    boundary: String,
    head: Bytes,
    tail: Bytes,
}

impl MultipartUpload {
    /// Framing with a random boundary.
    pub(crate) fn new(filename: &str, purpose: &str) -> MultipartUpload {
        let boundary = format!("exai-{:032x}", rand::random::<u128>());
        MultipartUpload::with_boundary(boundary, filename, purpose)
    }

    pub(crate) fn with_boundary(boundary: String, filename: &str, purpose: &str) -> MultipartUpload {
        let head = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: {ctype}\r\n\r\n",
            b = boundary,
            purpose = field_value(purpose),
            name = quoted_filename(filename),
            ctype = content_type_for(filename),
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        MultipartUpload { boundary, head: Bytes::from(head), tail: Bytes::from(tail) }
    }

    /// The request's `Content-Type`.
    pub(crate) fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// Exact body length for a file of `file_size` bytes.
    pub(crate) fn content_length(&self, file_size: u64) -> u64 {
        self.head.len() as u64 + file_size + self.tail.len() as u64
    }

    /// The body: head, the given file chunks, tail.
    pub(crate) fn around<S>(self, chunks: S) -> impl Stream<Item = Result<Bytes, io::Error>>
    where
        S: Stream<Item = Result<Bytes, io::Error>>,
    {
        use futures_util::StreamExt;
        let (head, tail) = (self.head, self.tail);
        futures_util::stream::once(async move { Ok(head) })
            .chain(chunks)
            .chain(futures_util::stream::once(async move { Ok(tail) }))
    }
}

/// The chunks of a [`HashedChunks`] as a stream.
fn chunk_stream(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> impl Stream<Item = Result<Bytes, io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// A form field value on one line (CR/LF would break the framing).
fn field_value(v: &str) -> String {
    v.replace(['\r', '\n'], " ")
}

/// The filename inside `filename="..."`, escaped as browsers do (WHATWG).
fn quoted_filename(name: &str) -> String {
    name.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

/// A MIME type from the extension (vendors extract text by type); octet-stream otherwise.
fn content_type_for(filename: &str) -> &'static str {
    let ext = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "md" | "log" | "rs" | "py" | "js" | "ts" | "toml" | "yaml" | "yml" | "csv" => "text/plain",
        "json" | "jsonl" => "application/json",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
}

/// A file id as one URL path segment (ids are opaque; never let one add a path).
fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        // `.` is encoded too, so that an id of `..` cannot climb the path.
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn local_file_error(e: &io::Error) -> ProviderError {
    ProviderError::Unsupported(format!("cannot read the file to upload: {}", e.kind()))
}

/// `POST {base}/files`, the file streamed from `path`: read once on the blocking pool and
/// hashed on the way, so the returned file carries the sha256 of exactly the bytes sent.
pub(crate) async fn upload(
    core: &HttpCore,
    path: &Path,
    filename: &str,
    purpose: &str,
    tee: Option<ChunkSink>,
    timeouts: &RequestTimeouts,
) -> Result<ProviderFile, ProviderError> {
    let clock = Clock::start(timeouts);
    let meta = tokio::fs::metadata(path).await.map_err(|e| local_file_error(&e))?;
    if !meta.is_file() {
        return Err(ProviderError::Unsupported("the path to upload is not a regular file".into()));
    }
    let size = meta.len();
    let upload = MultipartUpload::new(filename, purpose);
    let length = upload.content_length(size);
    let req = core.request(Method::POST, "/files", timeouts).insert_header((CONTENT_TYPE, upload.content_type()));
    let HashedChunks { chunks, digests } = hashed_chunks(path.to_path_buf(), size, tee);
    let body = SizedStream::new(length, upload.around(chunk_stream(chunks)));
    tracing::debug!(provider = %core.name(), bytes = size, "uploading a file");
    // The upload streams while the head is awaited: only the total bounds it.
    let mut res = core.send(req, body, clock.total(), &clock).await?;
    let bytes = read_body(&mut res, &clock, JSON_BODY_LIMIT, false).await?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::Protocol(format!("upload answer is not valid JSON: {e}")))?;
    let mut file = file_of(&v, purpose)?;
    file.sha256 = digests.await.ok().map(|d| d.sha256);
    Ok(file)
}

/// `GET {base}/files`.
pub(crate) async fn list(core: &HttpCore, timeouts: &RequestTimeouts) -> Result<Vec<ProviderFile>, ProviderError> {
    let v = core.json_call(Method::GET, "/files", None, timeouts).await?;
    let items = v
        .get("data")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .ok_or_else(|| ProviderError::Protocol("file list has no data array".into()))?;
    items.iter().map(|f| file_of(f, "")).collect()
}

/// `GET {base}/files/{id}/content`: `{"content": "..."}` (Kimi's extracted text) or the raw
/// text.
pub(crate) async fn content(core: &HttpCore, id: &str, timeouts: &RequestTimeouts) -> Result<String, ProviderError> {
    let clock = Clock::start(timeouts);
    let req = core.request(Method::GET, &format!("/files/{}/content", path_segment(id)), timeouts);
    let mut res = core.send(req, (), clock.first_byte(), &clock).await?;
    let bytes = read_body(&mut res, &clock, CONTENT_BODY_LIMIT, false).await?;
    content_text(&bytes)
}

/// The text of a content answer: the `content` of a JSON object, else the body as UTF-8.
fn content_text(bytes: &[u8]) -> Result<String, ProviderError> {
    if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(bytes) {
        if let Some(Value::String(text)) = obj.get("content") {
            return Ok(text.clone());
        }
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| ProviderError::Protocol("file content is not UTF-8 text".into()))
}

/// `DELETE {base}/files/{id}`.
pub(crate) async fn delete(core: &HttpCore, id: &str, timeouts: &RequestTimeouts) -> Result<(), ProviderError> {
    let v = core.json_call(Method::DELETE, &format!("/files/{}", path_segment(id)), None, timeouts).await?;
    match v.get("deleted") {
        Some(Value::Bool(false)) => Err(ProviderError::Protocol("the provider did not delete the file".into())),
        _ => Ok(()),
    }
}

/// A `ProviderFile` from the vendor's file object.
fn file_of(v: &Value, default_purpose: &str) -> Result<ProviderFile, ProviderError> {
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProviderError::Protocol("file object has no id".into()))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(ProviderFile {
        id: id.to_string(),
        filename: text("filename").unwrap_or_default(),
        bytes: v.get("bytes").and_then(Value::as_u64).unwrap_or(0),
        purpose: text("purpose").unwrap_or_else(|| default_purpose.to_string()),
        created_at: v.get("created_at").and_then(Value::as_i64),
        sha256: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use futures_util::StreamExt;

    /// The upload body of `data` (announced as `announced` bytes), and the digests.
    async fn body_of(
        upload: MultipartUpload,
        data: &[u8],
        announced: u64,
    ) -> (Vec<Result<Bytes, io::Error>>, Option<exai_actors::files::hash::Digests>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, data).unwrap();
        let HashedChunks { chunks, digests } = hashed_chunks(path, announced, None);
        let out: Vec<_> = upload.around(chunk_stream(chunks)).collect().await;
        (out, digests.await.ok())
    }

    async fn collect(upload: MultipartUpload, data: &[u8]) -> Result<Vec<Bytes>, io::Error> {
        body_of(upload, data, data.len() as u64).await.0.into_iter().collect()
    }

    #[actix_rt::test]
    async fn multipart_framing_is_exact() {
        let up = MultipartUpload::with_boundary("BOUNDARY".into(), "notes.txt", "file-extract");
        let data = b"hello\r\nworld";
        let body: Vec<u8> = collect(up.clone(), data).await.unwrap().concat();
        let expected = "--BOUNDARY\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfile-extract\r\n\
                        --BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\
                        Content-Type: text/plain\r\n\r\nhello\r\nworld\r\n--BOUNDARY--\r\n";
        assert_eq!(String::from_utf8(body.clone()).unwrap(), expected);
        assert_eq!(up.content_length(data.len() as u64), body.len() as u64);
        assert_eq!(up.content_type(), "multipart/form-data; boundary=BOUNDARY");
    }

    #[actix_rt::test]
    async fn file_is_streamed_in_bounded_chunks_and_hashed_on_the_way() {
        use exai_actors::files::hash::{hex, STREAM_CHUNK_BYTES};
        use sha2::Digest;
        let data: Vec<u8> = (0..(STREAM_CHUNK_BYTES * 3 + 17)).map(|i| (i % 251) as u8).collect();
        let up = MultipartUpload::new("blob.bin", "assistants");
        let (body, digests) = body_of(up.clone(), &data, data.len() as u64).await;
        let chunks: Vec<Bytes> = body.into_iter().collect::<Result<_, _>>().unwrap();
        assert!(chunks.iter().all(|c| c.len() <= STREAM_CHUNK_BYTES));
        assert_eq!(chunks.len(), 1 + 4 + 1, "head, four file chunks, tail");
        let file_bytes: Vec<u8> = chunks[1..chunks.len() - 1].concat();
        assert_eq!(file_bytes, data);
        assert_eq!(up.content_length(data.len() as u64), chunks.iter().map(|c| c.len() as u64).sum::<u64>());
        let d = digests.unwrap();
        assert_eq!(d.sha256, hex(&sha2::Sha256::digest(&data)));
        assert_eq!(d.size, data.len() as u64);
    }

    #[actix_rt::test]
    async fn a_file_shorter_or_longer_than_announced_fails_the_stream() {
        let (body, digests) = body_of(MultipartUpload::new("x.bin", "assistants"), &[1u8; 10], 20).await;
        assert!(body[0].is_ok()); // head
        let err = body.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(digests.is_none(), "no identity for a failed read");
        let (body, digests) = body_of(MultipartUpload::new("x.bin", "assistants"), &[1u8; 30], 20).await;
        assert!(body.iter().any(Result::is_err), "a file that grew fails too");
        assert!(digests.is_none());
    }

    #[test]
    fn names_and_fields_cannot_break_the_framing() {
        let up = MultipartUpload::with_boundary("B".into(), "a\"b\r\n.pdf", "x\r\ny");
        let head = String::from_utf8(up.head.to_vec()).unwrap();
        assert!(head.contains("filename=\"a%22b%0D%0A.pdf\""), "{head}");
        assert!(head.contains("\r\n\r\nx  y\r\n"), "{head}");
        assert!(head.contains("Content-Type: application/pdf"));
    }

    #[test]
    fn content_is_kimi_json_or_plain_text() {
        let kimi = r#"{"content":"extracted text","file_type":"application/pdf","filename":"a.pdf"}"#;
        assert_eq!(content_text(kimi.as_bytes()).unwrap(), "extracted text");
        assert_eq!(content_text(b"plain text").unwrap(), "plain text");
        assert_eq!(content_text(br#"{"other":1}"#).unwrap(), r#"{"other":1}"#);
        assert!(matches!(content_text(b"\xff\xfe"), Err(ProviderError::Protocol(_))));
    }

    #[test]
    fn ids_are_single_path_segments() {
        assert_eq!(path_segment("file-abc_1"), "file-abc_1");
        assert_eq!(path_segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }

    #[test]
    fn file_objects_parse_leniently() {
        let f = file_of(&serde_json::json!({"id":"f1","filename":"a.txt","bytes":5,"created_at":7}), "agent").unwrap();
        assert_eq!(
            f,
            ProviderFile {
                id: "f1".into(),
                filename: "a.txt".into(),
                bytes: 5,
                purpose: "agent".into(),
                created_at: Some(7),
                sha256: None,
            }
        );
        assert!(matches!(file_of(&serde_json::json!({"filename":"a"}), ""), Err(ProviderError::Protocol(_))));
    }
}
