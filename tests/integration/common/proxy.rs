//! [`TcpProxy`]: a loopback TCP forwarder placed between a client and the server, whose
//! connections the test can sever at will — a dropped network connection, as neither side
//! chose it. New connections keep being accepted and forwarded after a sever.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A running proxy; stops accepting when dropped (open connections are severed).
pub struct TcpProxy {
    addr: SocketAddr,
    live: Arc<Mutex<Vec<Pair>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// Both sockets of one forwarded connection; `open` until either direction ends.
struct Pair {
    client: TcpStream,
    server: TcpStream,
    open: Arc<AtomicBool>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, open: Arc<AtomicBool>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    open.store(false, Ordering::SeqCst);
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl TcpProxy {
    /// Listens on 127.0.0.1:<free port> and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let live: Arc<Mutex<Vec<Pair>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, a, s) = (Arc::clone(&live), Arc::clone(&accepted), Arc::clone(&stop));
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let Ok(server) = TcpStream::connect(target) else { continue };
                let _ = client.set_nonblocking(false);
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let open = Arc::new(AtomicBool::new(true));
                let pair = Pair {
                    client: client.try_clone().unwrap(),
                    server: server.try_clone().unwrap(),
                    open: Arc::clone(&open),
                };
                l.lock().unwrap().push(pair);
                a.fetch_add(1, Ordering::SeqCst);
                let (c2, s2, o2) = (client.try_clone().unwrap(), server.try_clone().unwrap(), Arc::clone(&open));
                thread::spawn(move || pump(client, server, open));
                thread::spawn(move || pump(s2, c2, o2));
            }
        });
        TcpProxy { addr, live, accepted, stop }
    }

    /// The address clients should dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<proxy port><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every open connection on both sides at once (no WebSocket close frame); returns
    /// how many were still open.
    pub fn sever(&self) -> usize {
        let pairs: Vec<Pair> = std::mem::take(&mut *self.live.lock().unwrap());
        let mut cut = 0;
        for p in &pairs {
            cut += usize::from(p.open.swap(false, Ordering::SeqCst));
            let _ = p.client.shutdown(Shutdown::Both);
            let _ = p.server.shutdown(Shutdown::Both);
        }
        cut
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.sever();
    }
}
