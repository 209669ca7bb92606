//! The Files API against aimock, which stores uploads verbatim and journals each upload's
//! size and SHA-256.

use exai::providers::VendorKind;
use exai_actors::provider::types::ProviderError;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

use super::{generous, transport};
use crate::common::mock::MockProvider;

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[actix_rt::test]
async fn upload_streams_the_file_byte_exact_and_list_content_delete_work() {
    let mock = MockProvider::start_aimock(&serde_json::json!({"fixtures": []}), &[]);
    let t = transport(&mock, VendorKind::OpenAiCompatible);

    // 1.2 MB of random bytes: many 64 KiB chunks, not valid UTF-8.
    let blob: Vec<u8> = (0..1_234_567).map(|_| rand::random::<u8>()).collect();
    let blob_path = mock.scratch().join("blob.bin");
    std::fs::write(&blob_path, &blob).unwrap();
    // A second consumer (the blob store's side of a `gateway` upload) gets the same bytes
    // from the same read, and the file carries the sha256 of what was sent.
    let (sink, mut chunks) = exai_actors::files::hash::chunk_channel();
    let teed = actix_rt::spawn(async move {
        let mut got = Vec::new();
        while let Some(c) = chunks.recv().await {
            got.extend_from_slice(&c.unwrap());
        }
        got
    });
    let uploaded = t.upload_file(&blob_path, "blob.bin", "assistants", Some(sink), &generous()).await.unwrap();
    assert!(teed.await.unwrap() == blob, "the tee received the file's bytes");
    assert_eq!(uploaded.sha256.as_deref(), Some(sha256_hex(&blob).as_str()));
    assert_eq!(uploaded.bytes, blob.len() as u64);
    assert_eq!(uploaded.filename, "blob.bin");
    assert_eq!(uploaded.purpose, "assistants");

    let journal = mock.journal().await;
    let post = journal.iter().find(|e| e["method"] == "POST" && e["path"] == "/v1/files").expect("upload journaled");
    assert_eq!(post["body"]["sha256"], sha256_hex(&blob), "the mock stored exactly the file's bytes");
    assert_eq!(post["body"]["bytes"], blob.len() as u64);
    let length: u64 =
        post["headers"]["content-length"].as_str().expect("a Content-Length, not chunked").parse().unwrap();
    assert!(length > blob.len() as u64 && length < blob.len() as u64 + 1024, "Content-Length {length}");
    assert!(post["headers"].get("transfer-encoding").is_none());
    assert!(post["headers"]["content-type"].as_str().unwrap().starts_with("multipart/form-data; boundary="));

    // A text file through the Kimi transport: content comes back as the same text.
    let text = "Zeile über Äpfel — naïve café ✓\n".repeat(4000);
    let text_path = mock.scratch().join("notes.txt");
    std::fs::write(&text_path, &text).unwrap();
    let kimi = transport(&mock, VendorKind::Kimi);
    let notes = kimi.upload_file(&text_path, "notes.txt", "assistants", None, &generous()).await.unwrap();
    assert_eq!(notes.bytes, text.len() as u64);
    assert_eq!(kimi.file_content(&notes.id, &generous()).await.unwrap(), text);

    let ids: Vec<String> = t.list_files(&generous()).await.unwrap().into_iter().map(|f| f.id).collect();
    assert!(ids.contains(&uploaded.id) && ids.contains(&notes.id), "{ids:?}");

    t.delete_file(&uploaded.id, &generous()).await.unwrap();
    let ids: Vec<String> = t.list_files(&generous()).await.unwrap().into_iter().map(|f| f.id).collect();
    assert!(!ids.contains(&uploaded.id) && ids.contains(&notes.id), "{ids:?}");
    let gone = t.file_content(&uploaded.id, &generous()).await.unwrap_err();
    assert!(matches!(gone, ProviderError::BadRequest { status: 404, .. }), "{gone:?}");

    let missing = t.upload_file(&mock.scratch().join("nope.bin"), "nope.bin", "assistants", None, &generous()).await;
    assert!(matches!(missing, Err(ProviderError::Unsupported(_))), "{missing:?}");
}

#[actix_rt::test]
async fn glm_uploads_with_purpose_agent_and_has_no_content_retrieval() {
    let mock = MockProvider::start_aimock(&serde_json::json!({"fixtures": []}), &[]);
    let t = transport(&mock, VendorKind::Glm);
    let path = mock.scratch().join("a.txt");
    std::fs::write(&path, "hello").unwrap();
    // aimock only knows OpenAI's purposes, so GLM's default `agent` is refused with the
    // mock's own message: that shows the default went over the wire, and how a 400 maps.
    let err = t.upload_file(&path, "a.txt", "", None, &generous()).await.unwrap_err();
    match err {
        ProviderError::BadRequest { status: 400, message } => assert!(message.contains("'agent'"), "{message}"),
        other => panic!("expected BadRequest, got {other:?}"),
    }
    let ok = t.upload_file(&path, "a.txt", "batch", None, &generous()).await.unwrap();
    assert_eq!(ok.bytes, 5);
    assert_eq!(t.list_files(&generous()).await.unwrap().len(), 1);
    assert!(matches!(t.file_content(&ok.id, &generous()).await, Err(ProviderError::Unsupported(_))));
    t.delete_file(&ok.id, &generous()).await.unwrap();
    assert!(t.list_files(&generous()).await.unwrap().is_empty());
}
