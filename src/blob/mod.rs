//! Blob stores: the [`BlobStore`] port implemented over a local folder (the embedded
//! default, [`local::LocalBlobStore`]) and over any S3-compatible service (AWS S3, MinIO,
//! Supabase Storage; [`s3::S3BlobStore`], built on `object_store`). Both are
//! content-addressed by sha256, stream with bounded memory and hash off the async threads.

pub mod local;
pub mod s3;

pub use exai_actors::files::ports::{BlobError, BlobInfo, BlobStore};

/// Chunk size of the streaming copy (memory per transfer is a small multiple of it).
pub const CHUNK_BYTES: usize = 1 << 20;
