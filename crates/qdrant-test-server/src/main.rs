//! A Qdrant-compatible gRPC server on top of qdrant-edge, for end-to-end tests (not for production).
//!
//! ```text
//! qdrant_test_server [--port N] [--storage DIR] [--api-key KEY]
//! ```
//!
//! With `--api-key` (or the environment variable `QDRANT__SERVICE__API_KEY`, as Qdrant reads it),
//! requests without that key are refused, as a Qdrant server with an API key does.
//!
//! `--port 0` (the default) picks a free port; `--storage` defaults to a fresh temporary directory,
//! removed on exit. Once the socket accepts connections it prints exactly one line to stdout,
//! `listening on 127.0.0.1:PORT`, and serves until SIGTERM or SIGINT, then shuts down cleanly
//! (flushing every collection) and exits 0. See the library (`src/lib.rs`) for what it speaks.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

fn usage(msg: &str) -> ! {
    eprintln!("qdrant_test_server: {msg}\nusage: qdrant_test_server [--port N] [--storage DIR] [--api-key KEY]");
    std::process::exit(2);
}

fn main() {
    let mut port: u16 = 0;
    let mut storage: Option<PathBuf> = None;
    let mut api_key: Option<String> = std::env::var("QDRANT__SERVICE__API_KEY").ok().filter(|k| !k.is_empty());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).unwrap_or_else(|| usage(&format!("{key} needs a value")));
        match key.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage("--port must be a number 0-65535")),
            "--storage" => storage = Some(PathBuf::from(value())),
            "--api-key" => api_key = Some(value()),
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    // A temporary directory lives for the whole run and is removed at exit.
    let mut tmp: Option<TempDir> = None;
    let storage = match storage {
        Some(dir) => dir,
        None => {
            let dir = std::env::temp_dir().join(format!("qdrant-test-server-{}", std::process::id()));
            tmp = Some(TempDir(dir.clone()));
            dir
        }
    };

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = rt.block_on(async move {
        let engine = match qdrant_test_server::Engine::open(&storage) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                eprintln!("qdrant_test_server: cannot open storage {}: {e}", storage.display());
                return 1;
            }
        };
        let listener = match tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("qdrant_test_server: cannot listen on 127.0.0.1:{port}: {e}");
                return 1;
            }
        };
        let addr = listener.local_addr().expect("local address");
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        // The listener is bound: connections queue from now on, so announcing readiness is safe.
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {addr}");
            let _ = out.flush();
        }
        match qdrant_test_server::serve(listener, engine, api_key, shutdown).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("qdrant_test_server: {e}");
                1
            }
        }
    });
    drop(rt);
    drop(tmp);
    std::process::exit(code);
}

/// Removes a directory on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
