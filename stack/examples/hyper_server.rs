//! HTTP/1.1 with hyper on `xtcp::rt`: `hyper::server::conn::http1` serves each accepted
//! [`xtcp::rt::TcpStream`] through `hyper_util::rt::TokioIo`. Every request gets the same
//! `200 OK` as the callback `http` example (same body, `Server` and `Content-Type`), so the
//! two can be compared with wrk; keep-alive unless the request says `Connection: close`.
//!
//! ```text
//! hyper_server --iface IFACE --ip A.B.C.D --port P [--queues N] [--xdp-mode auto|native|skb]
//!              [--cores LIST] [--stats FILE]
//! ```

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use xtcp::engine::cli::{self, ServerArgs};
use xtcp::rt::{self, TcpListener};

const BODY: &str = "Hello from xtcp\n";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .header("Server", "xtcp")
        .header("Content-Type", "text/plain")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .expect("static response"))
}

fn main() {
    let args = ServerArgs::from_env_or_exit();
    let port = args.port;
    let engine = match rt::start(args.engine_config(), move |_core| async move {
        let listener = TcpListener::bind(([0, 0, 0, 0], port)).expect("bind on this core");
        while let Ok((stream, _peer)) = listener.accept().await {
            rt::spawn_local(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("hyper_server: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", cli::ready_line("hyper_server", &args, engine.info()));
    match engine.run_until_signal() {
        Ok(stats) => {
            let t = stats.totals();
            eprintln!(
                "hyper_server: stopped; {} connections accepted, {} rx frames, {} tx frames",
                t.passive_opens, t.rx_frames, t.tx_frames
            );
        }
        Err(e) => {
            eprintln!("hyper_server: {e}");
            std::process::exit(1);
        }
    }
}
