//! Writing the command line's output without panicking on a closed pipe.
//!
//! Rust ignores `SIGPIPE`, so `println!` panics when the reader went away
//! (`exai call listmodels | head -c 10`). These helpers write through a locked handle and
//! report a closed pipe instead: the output is simply not wanted any more, and the command
//! ends quietly.

use std::io::Write;

/// Write `text` and a newline to stdout (flushed). Returns `false` when stdout is closed
/// (broken pipe) or cannot be written.
pub fn out_line(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
}

/// Write `text` and a newline to stderr; a closed stderr is ignored.
pub fn err_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}
