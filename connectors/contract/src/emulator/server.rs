//! An axum router served on `127.0.0.1`, on a port of the system's choosing.

use axum::Router;
use std::future::IntoFuture;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::runtime::{Builder, Handle};
use tokio::sync::{oneshot, watch};
use url::Url;

/// How long requests in flight may take to finish once the server is told
/// to stop; after that their connections are dropped.
const GRACE: Duration = Duration::from_secs(2);

/// A running loopback server. It stops when [`EmulatorServer::stop`] is
/// awaited, or (without waiting) when it is dropped.
#[derive(Debug)]
pub struct EmulatorServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    done: Option<oneshot::Receiver<()>>,
}

impl EmulatorServer {
    /// Serves `router` on its own thread and tokio runtime, so it works
    /// the same under any caller: a current-thread test runtime, a
    /// multi-threaded one, a caller that blocks on a child process, or none.
    pub fn start(router: Router) -> io::Result<Self> {
        let listener = bind()?;
        let addr = listener.local_addr()?;
        let (shutdown, stop_rx) = watch::channel(false);
        let (done_tx, done) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        // The runtime is built, used and dropped on the server's own thread:
        // dropping one inside the caller's async context would panic.
        std::thread::Builder::new()
            .name("emulator".into())
            .spawn(move || {
                let runtime = match Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("emulator")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                let listener = {
                    let _entered = runtime.enter();
                    TcpListener::from_std(listener)
                };
                match listener {
                    Ok(listener) => {
                        let _ = ready_tx.send(Ok(()));
                        runtime.block_on(serve(listener, router, stop_rx));
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                    }
                }
                // Cuts whatever connection outlived the grace period.
                runtime.shutdown_timeout(Duration::from_millis(200));
                let _ = done_tx.send(());
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the emulator thread ended before serving"))??;
        Ok(Self {
            addr,
            shutdown,
            done: Some(done),
        })
    }

    /// Serves `router` as a task on `runtime`. On a runtime with paused
    /// time, the emulator's delays then follow the paused clock; the caller
    /// must keep that runtime running while it talks to the server.
    pub fn start_on(router: Router, runtime: &Handle) -> io::Result<Self> {
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(bind()?)?
        };
        let addr = listener.local_addr()?;
        let (shutdown, stop_rx) = watch::channel(false);
        let (done_tx, done) = oneshot::channel();
        runtime.spawn(async move {
            serve(listener, router, stop_rx).await;
            let _ = done_tx.send(());
        });
        Ok(Self {
            addr,
            shutdown,
            done: Some(done),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).expect("a socket address makes a valid URL")
    }

    /// Stops accepting connections, lets requests in flight finish (for at
    /// most a couple of seconds) and returns once the server is gone.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for EmulatorServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A listening socket on loopback; registering it with a runtime (which
/// must happen inside that runtime) is the caller's part.
fn bind() -> io::Result<StdListener> {
    let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn serve(listener: TcpListener, router: Router, stop: watch::Receiver<bool>) {
    let mut graceful = stop.clone();
    let mut hard = stop;
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            // A dropped sender means the owner is gone: stop as well.
            let _ = graceful.wait_for(|stop| *stop).await;
        })
        .into_future();
    let deadline = async move {
        let _ = hard.wait_for(|stop| *stop).await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        result = server => {
            if let Err(err) = result {
                tracing::warn!(error = %err, "emulator server stopped with an error");
            }
        }
        () = deadline => {}
    }
}
