//! Raising the open-file limit: ten thousand connections need more descriptors than the usual
//! soft limit of 1024. The soft limit is raised to the hard limit (no privileges needed); a
//! server the bench starts inherits it.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force
/// (`None` = unlimited).
pub fn raise_nofile() -> Option<u64> {
    let cur = getrlimit(Resource::Nofile);
    if cur.current != cur.maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: cur.maximum, maximum: cur.maximum });
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_reaches_the_hard_limit() {
        let after = raise_nofile();
        assert_eq!(after, getrlimit(Resource::Nofile).maximum);
    }
}
