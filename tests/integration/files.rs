//! Files: blob stores (local folder, S3 against moto_server), the upload registry's atomic
//! reference counting and the staged cleanup on both backends (with a failure-injecting
//! fake Files API: the mocks cannot fail individual deletes), and end-to-end file tools on
//! the real binary against aimock's Files API.

mod blob;
mod cleanup;
mod e2e;
pub(crate) mod registry;
