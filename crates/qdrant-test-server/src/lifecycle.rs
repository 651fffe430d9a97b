//! Running the server: on a thread of its own ([`TestServer`]) or on a caller's runtime ([`serve`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use qdrant_client::qdrant::collections_server::CollectionsServer;
use qdrant_client::qdrant::points_server::PointsServer;
use qdrant_client::qdrant::qdrant_server::QdrantServer;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use crate::engine::Engine;
use crate::services::Service;

/// A server running on its own thread and tokio runtime. Dropping it (or [`TestServer::stop`])
/// shuts it down gracefully and closes every shard (flushing it) before returning.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Bind `addr` (port 0 picks a free port) and serve collections stored under `storage`.
    /// Returns once the socket is listening.
    pub fn start(addr: SocketAddr, storage: &Path) -> std::io::Result<TestServer> {
        Self::start_with_key(addr, storage, None)
    }

    /// [`TestServer::start`], answering only requests that carry `api_key` (Qdrant's `api-key`
    /// header) when one is given, as a Qdrant server with `service.api_key` set does.
    pub fn start_with_key(addr: SocketAddr, storage: &Path, api_key: Option<String>) -> std::io::Result<TestServer> {
        let engine = Arc::new(Engine::open(storage)?);
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(format!("qdrant-test-{}", addr.port())).spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = serve(listener, engine, api_key, async {
                    let _ = rx.await;
                })
                .await;
            });
        })?;
        Ok(TestServer { addr, shutdown: Some(tx), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`, the URL a client connects to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Serve the Qdrant services on `listener` until `shutdown` completes. The engine (and its shards)
/// is dropped when this returns, unless the caller keeps another reference.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    api_key: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let svc = Service { engine };
    // Qdrant's API key check: the `api-key` header (or `authorization: Bearer KEY`) must match.
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        let Some(key) = api_key.as_deref() else { return Ok(req) };
        let md = req.metadata();
        let given = md.get("api-key").and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| {
            md.get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string)
        });
        match given {
            Some(g) if g == key => Ok(req),
            Some(_) => Err(Status::permission_denied("Invalid API key or JWT")),
            None => Err(Status::unauthenticated("Must provide an API key or an Authorization bearer token")),
        }
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // Graceful shutdown waits for clients to close their connections, which a client that stays
    // alive (a store object in a test) never does: give in-flight requests a moment, then stop.
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            stopping.notify_one();
        }
    };
    let server = tonic::transport::Server::builder()
        .add_service(InterceptedService::new(QdrantServer::new(svc.clone()), check.clone()))
        .add_service(InterceptedService::new(
            CollectionsServer::new(svc.clone()).max_decoding_message_size(usize::MAX),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            PointsServer::new(svc).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX),
            check,
        ))
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::select! {
        r = server => r,
        _ = async {
            stopping.notified().await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        } => Ok(()),
    }
}
