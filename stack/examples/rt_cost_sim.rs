//! The cost of `xtcp::rt` + hyper against a callback application, in instructions: both
//! servers run on the simulator ([`SimCore`]) against the same plain-stack HTTP client, so
//! an instruction count (callgrind) of the whole process differs only by the server's
//! application layer. Run it for two request counts and divide the difference by the extra
//! requests to cancel set-up costs (see docs/embedding.md):
//!
//! ```text
//! rt_cost_sim callback|hyper keepalive|close REQUESTS
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/rt_cost_sim hyper close 2000 2>&1 | grep Collected
//! ```
//!
//! The callback server answers each complete request head (`\r\n\r\n`) with the same bytes
//! hyper sends (minus hyper's `date` header), and closes after the response when the request
//! says `Connection: close`. The client sends one request at a time: over one connection
//! (keepalive) or one connection per request (close).

use std::convert::Infallible;
use std::net::SocketAddrV4;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use xtcp::engine::{App, AppEvent, Io};
use xtcp::link::memory::MemoryLink;
use xtcp::rt::{self, RtApp, SimCore, TcpListener};
use xtcp::sim::{Host, LinkConfig, Simulation};
use xtcp::stack::{ConnHandle, Stack, StackConfig};
use xtcp::tcp::Event;
use xtcp::time::{Duration, Instant};

const PORT: u16 = 8080;
const BODY: &str = "Hello from xtcp\n";

fn stack_for(sim: &Simulation, node: usize) -> Stack {
    let mut secret = [0u8; 32];
    secret[0] = node as u8 + 1;
    Stack::new(
        StackConfig {
            mac: sim.mac(node),
            ips: vec![sim.ipv4(node)],
            secret,
            ..StackConfig::default()
        },
        sim.now(),
    )
}

/// The callback server.
struct Callback {
    keep_alive: Vec<u8>,
    close: Vec<u8>,
}

impl App for Callback {
    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        let AppEvent::Readable(c) = ev else {
            if let AppEvent::PeerClosed(c) = ev {
                let _ = io.close(c);
            }
            return;
        };
        loop {
            let data = io.recv_slice(c);
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let close = data[..end]
                .windows(17)
                .any(|w| w.eq_ignore_ascii_case(b"connection: close"));
            io.consume(c, end + 4);
            let resp = if close { &self.close } else { &self.keep_alive };
            let _ = io.send(c, resp);
            if close {
                let _ = io.close(c);
                return;
            }
        }
    }
}

fn response(close: bool) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nserver: xtcp\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n{BODY}",
        BODY.len(),
        if close { "connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .header("Server", "xtcp")
        .header("Content-Type", "text/plain")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .expect("static response"))
}

async fn hyper_main() {
    let listener = TcpListener::bind(([0, 0, 0, 0], PORT)).expect("bind");
    while let Ok((stream, _)) = listener.accept().await {
        rt::spawn_local(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

/// Sends `total` requests one at a time and counts complete responses.
struct Client {
    stack: Stack,
    server: SocketAddrV4,
    close: bool,
    total: u32,
    done: u32,
    conn: Option<ConnHandle>,
    in_flight: bool,
    buf: Vec<u8>,
}

impl Host for Client {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.receive(now, link);
        let mut peer_closed = false;
        while let Some((h, e)) = self.stack.poll_event() {
            if Some(h) == self.conn && matches!(e, Event::Reset | Event::TimedOut) {
                panic!("connection {e:?} after {} responses", self.done);
            }
            peer_closed |= Some(h) == self.conn && e == Event::PeerClosed;
        }
        if let Some(h) = self.conn {
            while let Ok(data @ [_, ..]) = self.stack.recv_slice(h) {
                let n = data.len();
                self.buf.extend_from_slice(data);
                let _ = self.stack.consume(h, n);
            }
            if self.in_flight && self.buf.ends_with(BODY.as_bytes()) {
                self.buf.clear();
                self.in_flight = false;
                self.done += 1;
            }
            if peer_closed {
                let _ = self.stack.close(h);
                self.conn = None;
            }
        }
        if !self.in_flight && self.done < self.total && (self.conn.is_none() || !self.close) {
            let h = match self.conn {
                Some(h) => h,
                None => {
                    let h = self.stack.connect(now, None, self.server).expect("connect");
                    self.conn = Some(h);
                    h
                }
            };
            let req: &[u8] = if self.close {
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            } else {
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            };
            // Queued until the handshake completes.
            assert_eq!(self.stack.send(h, req), Ok(req.len()));
            self.in_flight = true;
        }
        self.stack.flush(now, link);
    }

    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: rt_cost_sim callback|hyper keepalive|close REQUESTS";
    let [_, variant, mode, n] = &args[..] else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let close = match mode.as_str() {
        "keepalive" => false,
        "close" => true,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let total: u32 = n.parse().unwrap_or_else(|_| {
        eprintln!("{usage}");
        std::process::exit(2)
    });
    let mut sim = Simulation::with_seed(1, 2);
    sim.set_link_both(0, 1, LinkConfig::with_latency(Duration::from_micros(20)));
    let addr = SocketAddrV4::new(sim.ipv4(0), PORT);
    let mut server: Box<dyn Host> = match variant.as_str() {
        "callback" => Box::new(
            SimCore::new(
                stack_for(&sim, 0),
                &[addr],
                Callback {
                    keep_alive: response(false),
                    close: response(true),
                },
            )
            .expect("listen"),
        ),
        "hyper" => Box::new(
            SimCore::new(stack_for(&sim, 0), &[addr], RtApp::new(hyper_main())).expect("listen"),
        ),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let mut client = Client {
        stack: stack_for(&sim, 1),
        server: addr,
        close,
        total,
        done: 0,
        conn: None,
        in_flight: false,
        buf: Vec::new(),
    };
    let limit = Instant::from_secs(3600);
    while client.done < total {
        let more = sim.step(&mut [&mut *server, &mut client as &mut dyn Host], limit);
        assert!(more, "stalled after {} responses", client.done);
    }
    println!(
        "{variant} {mode}: {total} responses in {:?} simulated",
        sim.now()
    );
}
