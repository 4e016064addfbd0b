//! Serving the API: its own thread and tokio runtime, connections bounded
//! in number and in how long their headers may take.

use std::{net::SocketAddr, sync::Arc};

use axum::Router;

use super::{connection_cap, router, ApiState, HEADER_TIMEOUT};

/// Serves the API on `addr` from a background thread until the process
/// ends. Returns the bound address (port 0 picks a free one).
pub fn serve(addr: SocketAddr, state: Arc<ApiState>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("API runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => accept_loop(l, router(state)).await,
                    Err(e) => tracing::error!("API listener: {e}"),
                }
            });
        })?;
    Ok(bound)
}

/// Accepts connections up to [`MAX_CONNECTIONS`], each with
/// [`HEADER_TIMEOUT`].
async fn accept_loop(listener: tokio::net::TcpListener, app: Router) {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        service::TowerToHyperService,
    };
    static REFUSED_LOG: crate::logfile::throttle::Throttle =
        crate::logfile::throttle::Throttle::new(std::time::Duration::from_secs(60));
    let cap = connection_cap();
    let places = Arc::new(tokio::sync::Semaphore::new(cap));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!("API: cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            if let Some(held) = REFUSED_LOG.allow() {
                tracing::warn!(
                    "API: {cap} connections open: closing a new one{}",
                    crate::logfile::throttle::held_back(held)
                );
            }
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
            drop(place);
        });
    }
}
