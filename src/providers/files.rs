//! The Files API (OpenAI shape, which Kimi and GLM follow): upload as a hand-built
//! `multipart/form-data` body streamed from disk in chunks with an exact `Content-Length`
//! (the file is never read whole into memory, its bytes never logged), list, content and
//! delete.

use awc::body::SizedStream;
use awc::http::header::CONTENT_TYPE;
use awc::http::Method;
use bytes::{Bytes, BytesMut};
use exai_actors::provider::types::{ProviderError, ProviderFile, RequestTimeouts};
use futures_util::Stream;
use serde_json::Value;
use std::io;
use std::path::Path;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::http::{read_body, HttpCore, CONTENT_BODY_LIMIT, JSON_BODY_LIMIT};

/// Bytes read from disk per chunk.
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;

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

    /// The body: head, the file's `file_size` bytes read in chunks, tail. A file that ends
    /// early fails the stream (the length was already announced).
    pub(crate) fn into_stream<R>(self, reader: R, file_size: u64) -> impl Stream<Item = Result<Bytes, io::Error>>
    where
        R: tokio::io::AsyncRead + Unpin + 'static,
    {
        enum Part<R> {
            Head(Bytes, Bytes, R, u64),
            File(Bytes, R, u64),
            Done,
        }
        let start = Part::Head(self.head, self.tail, reader, file_size);
        futures_util::stream::unfold(start, |part| async move {
            match part {
                Part::Head(head, tail, reader, left) => Some((Ok(head), Part::File(tail, reader, left))),
                Part::File(tail, _, 0) => Some((Ok(tail), Part::Done)),
                Part::File(tail, mut reader, left) => {
                    let want = usize::try_from(left).unwrap_or(CHUNK_BYTES).min(CHUNK_BYTES);
                    let mut buf = BytesMut::with_capacity(want);
                    while buf.len() < want {
                        match reader.read_buf(&mut buf).await {
                            Ok(0) => {
                                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank during upload");
                                return Some((Err(e), Part::Done));
                            }
                            Ok(_) => {}
                            Err(e) => return Some((Err(e), Part::Done)),
                        }
                    }
                    let left = left - buf.len() as u64;
                    Some((Ok(buf.freeze()), Part::File(tail, reader, left)))
                }
                Part::Done => None,
            }
        })
    }
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

/// `POST {base}/files`, the file streamed from `path`.
pub(crate) async fn upload(
    core: &HttpCore,
    path: &Path,
    filename: &str,
    purpose: &str,
    timeouts: &RequestTimeouts,
) -> Result<ProviderFile, ProviderError> {
    let deadline = Instant::now() + timeouts.request;
    let file = tokio::fs::File::open(path).await.map_err(|e| local_file_error(&e))?;
    let meta = file.metadata().await.map_err(|e| local_file_error(&e))?;
    if !meta.is_file() {
        return Err(ProviderError::Unsupported("the path to upload is not a regular file".into()));
    }
    let size = meta.len();
    let upload = MultipartUpload::new(filename, purpose);
    let length = upload.content_length(size);
    let req = core.request(Method::POST, "/files", timeouts).insert_header((CONTENT_TYPE, upload.content_type()));
    let body = SizedStream::new(length, upload.into_stream(file, size));
    tracing::debug!(provider = %core.name(), bytes = size, "uploading a file");
    let mut res = core.send(req, body, deadline, "request").await?;
    let bytes = read_body(&mut res, deadline, JSON_BODY_LIMIT, false).await?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::Protocol(format!("upload answer is not valid JSON: {e}")))?;
    file_of(&v, purpose)
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
    let deadline = Instant::now() + timeouts.request;
    let req = core.request(Method::GET, &format!("/files/{}/content", path_segment(id)), timeouts);
    let mut res = core.send(req, (), deadline, "request").await?;
    let bytes = read_body(&mut res, deadline, CONTENT_BODY_LIMIT, false).await?;
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
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use futures_util::StreamExt;

    async fn collect(upload: MultipartUpload, data: &[u8]) -> Result<Vec<Bytes>, io::Error> {
        let reader = std::io::Cursor::new(data.to_vec());
        let mut s = std::pin::pin!(upload.into_stream(reader, data.len() as u64));
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.push(chunk?);
        }
        Ok(out)
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
    async fn file_is_streamed_in_bounded_chunks() {
        let data: Vec<u8> = (0..(CHUNK_BYTES * 3 + 17)).map(|i| (i % 251) as u8).collect();
        let up = MultipartUpload::new("blob.bin", "assistants");
        let chunks = collect(up.clone(), &data).await.unwrap();
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_BYTES));
        assert_eq!(chunks.len(), 1 + 4 + 1, "head, four file chunks, tail");
        let file_bytes: Vec<u8> = chunks[1..chunks.len() - 1].concat();
        assert_eq!(file_bytes, data);
        assert_eq!(up.content_length(data.len() as u64), chunks.iter().map(|c| c.len() as u64).sum::<u64>());
    }

    #[actix_rt::test]
    async fn a_file_shorter_than_announced_fails_the_stream() {
        let up = MultipartUpload::new("x.bin", "assistants");
        let reader = std::io::Cursor::new(vec![1u8; 10]);
        let mut s = std::pin::pin!(up.into_stream(reader, 20));
        assert!(s.next().await.unwrap().is_ok()); // head
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
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
                created_at: Some(7)
            }
        );
        assert!(matches!(file_of(&serde_json::json!({"filename":"a"}), ""), Err(ProviderError::Protocol(_))));
    }
}
