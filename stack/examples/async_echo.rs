//! The echo server of `echo.rs`, written with `xtcp::rt`: one task per connection, tokio's
//! `AsyncReadExt`/`AsyncWriteExt`, half-close honoured (after the peer's FIN the rest is
//! echoed, then our FIN). Back-pressure comes from the send buffer: `write_all` waits while
//! it is full, and unread bytes close the receive window meanwhile.
//!
//! ```text
//! async_echo --iface IFACE --ip A.B.C.D --port P [--queues N] [--xdp-mode auto|native|skb]
//!            [--cores LIST] [--stats FILE]
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xtcp::engine::cli::{self, ServerArgs};
use xtcp::rt::{self, TcpListener, TcpStream};

async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break, // the peer's FIN
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = stream.shutdown().await;
    // Dropping the stream closes it once our FIN is queued.
}

fn main() {
    let args = ServerArgs::from_env_or_exit();
    let port = args.port;
    let engine = match rt::start(args.engine_config(), move |_core| async move {
        let listener = TcpListener::bind(([0, 0, 0, 0], port)).expect("bind on this core");
        while let Ok((stream, _peer)) = listener.accept().await {
            rt::spawn_local(echo(stream));
        }
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("async_echo: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", cli::ready_line("async_echo", &args, engine.info()));
    match engine.run_until_signal() {
        Ok(stats) => {
            let t = stats.totals();
            eprintln!(
                "async_echo: stopped; {} connections accepted, {} rx frames, {} tx frames",
                t.passive_opens, t.rx_frames, t.tx_frames
            );
        }
        Err(e) => {
            eprintln!("async_echo: {e}");
            std::process::exit(1);
        }
    }
}
