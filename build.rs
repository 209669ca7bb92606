//! Build script: rebuild when the embedded SQL migrations change.
//!
//! `sqlx::migrate!` embeds `migrations/sqlite` and `migrations/postgres` at compile time;
//! without this hint cargo would not notice a new or edited migration file.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
