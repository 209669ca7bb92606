//! Files: blob stores (local folder, S3 against moto_server), the upload registry's atomic
//! reference counting and the staged cleanup on both backends (with a failure-injecting
//! fake Files API: the mocks cannot fail individual deletes), and end-to-end file tools on
//! the real binary against aimock's Files API, including the whole file lifecycle (uploads,
//! references released by their call or their expiry, one cleanup leaving nothing behind).

mod blob;
mod cleanup;
mod e2e;
mod lifecycle;
pub(crate) mod registry;
