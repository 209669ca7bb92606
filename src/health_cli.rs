//! `exai health [--url URL]`: one HTTP GET of a health endpoint, for container health checks
//! and scripts. Exit code 0 when the endpoint answers 200, 1 otherwise (any other status, no
//! answer within `--timeout`, a URL it cannot use). Needs no shell features, no curl and no
//! async runtime: a blocking `std::net` request with `Connection: close`.
//!
//! Without `--url` the URL is `http://<server.host>:<server.port>/health/ready` from the
//! configuration (the same file, `EXAI_*` variables and flags `exai serve` reads), with a
//! wildcard bind address (`0.0.0.0`, `::`) replaced by loopback, so the check follows a port
//! changed through `EXAI_SERVER__PORT`.

use crate::cli::CommonArgs;
use crate::config::Config;
use clap::Args;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Flags of `exai health`.
#[derive(Debug, Args, Clone, Default)]
pub struct HealthArgs {
    /// Endpoint to check, `http://HOST:PORT/PATH` (default: /health/ready on the configured
    /// server.host and server.port).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Seconds to wait for the answer (connect and read together).
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub timeout: f64,
    /// Config flags (used only to find the server without --url).
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Why a health check did not get a 200.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("cannot use URL '{0}': expected http://HOST[:PORT][/PATH]")]
    BadUrl(String),
    /// The configuration did not load (only without `--url`).
    #[error("{0}")]
    Config(String),
    /// Name resolution, connect, write or read failed.
    #[error("{url}: {error}")]
    Io {
        /// The URL.
        url: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The answer is not HTTP.
    #[error("{0}: the answer is not an HTTP response")]
    NotHttp(String),
    /// Any status but 200.
    #[error("{url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
}

/// A parsed `http://` URL.
struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse(url: &str) -> Result<Target, HealthError> {
    let bad = || HealthError::BadUrl(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
        match tail.strip_prefix(':') {
            Some(p) => (h, p.parse().map_err(|_| bad())?),
            None if tail.is_empty() => (h, 80),
            None => return Err(bad()),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, 80),
        }
    };
    if host.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok(Target { host: host.to_owned(), port, path: path.to_owned() })
}

/// The default URL from the configuration.
fn default_url(cfg: &Config) -> String {
    let host = match cfg.server.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1".to_owned(),
        "::" => "[::1]".to_owned(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_owned(),
    };
    format!("http://{host}:{}/health/ready", cfg.server.port)
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
}

/// GET `url`; the status code and the body (at most 64 KiB of it).
fn get(url: &str, timeout: Duration) -> Result<(u16, String), HealthError> {
    let t = parse(url)?;
    let io = |error: std::io::Error| HealthError::Io { url: url.to_owned(), error };
    let deadline = Instant::now() + timeout;
    let addrs: Vec<_> = (t.host.as_str(), t.port).to_socket_addrs().map_err(io)?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host name resolved to no address");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, remaining(deadline)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut s = stream.ok_or_else(|| io(last))?;
    s.set_write_timeout(Some(remaining(deadline))).map_err(io)?;
    let host = if t.host.contains(':') { format!("[{}]:{}", t.host, t.port) } else { format!("{}:{}", t.host, t.port) };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: exai-health\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        t.path
    );
    s.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        s.set_read_timeout(Some(remaining(deadline))).map_err(io)?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() > 64 * 1024 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| HealthError::NotHttp(url.to_owned()))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// Run the check; `Ok` carries the line to print for a 200.
pub fn check(args: &HealthArgs) -> Result<String, HealthError> {
    let url = match &args.url {
        Some(u) => u.clone(),
        None => default_url(&args.common.load().map_err(|e| HealthError::Config(e.to_string()))?),
    };
    let timeout =
        Duration::from_secs_f64(if args.timeout.is_finite() && args.timeout > 0.0 { args.timeout } else { 3.0 });
    let (status, body) = get(&url, timeout)?;
    if status != 200 {
        return Err(HealthError::Status { url, status });
    }
    let status_field = serde_json::from_str::<serde_json::Value>(body.trim())
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "ok".into());
    Ok(format!("{url}: 200 {status_field}"))
}

/// `exai health`: prints one line; exit code 0 for a 200, else 1.
pub fn run(args: &HealthArgs) -> i32 {
    match check(args) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("exai health: {e}");
            1
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_are_refused() {
        let t = parse("http://127.0.0.1:8079/health/ready").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("127.0.0.1", 8079, "/health/ready"));
        let t = parse("http://[::1]:9/x").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 9, "/x"));
        let t = parse("http://localhost").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("localhost", 80, "/"));
        for bad in ["https://x/", "127.0.0.1:8079", "http://:80/", "http://h:port/", "http://h/a b", "http://[::1/"] {
            assert!(matches!(parse(bad), Err(HealthError::BadUrl(_))), "{bad}");
        }
    }

    #[test]
    fn the_default_url_follows_the_configured_port_and_maps_wildcards_to_loopback() {
        let mut cfg = Config::default();
        cfg.server.host = "0.0.0.0".into();
        cfg.server.port = 9123;
        assert_eq!(default_url(&cfg), "http://127.0.0.1:9123/health/ready");
        cfg.server.host = "::".into();
        assert_eq!(default_url(&cfg), "http://[::1]:9123/health/ready");
    }

    #[test]
    fn a_closed_port_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = get(&format!("http://127.0.0.1:{port}/health/ready"), Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, HealthError::Io { .. }), "{err}");
    }
}
