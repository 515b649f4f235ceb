//! A minimal HTTP/1.1 responder on the xtcp engine: every request gets the same `200 OK`
//! with a `Content-Length`; connections stay open (keep-alive) unless the request says
//! `Connection: close` (or is HTTP/1.0 without `Connection: keep-alive`). Pipelined and
//! partial requests are handled: requests are answered in order as they complete, and only
//! while the send buffer takes their responses (a response that does not fit whole is
//! finished on `Writable` before the next request is looked at). Request
//! bodies announced by `Content-Length` are skipped. Good enough for wrk and curl.
//!
//! ```text
//! http --iface IFACE --ip A.B.C.D --port P [--queues N] [--xdp-mode auto|native|skb]
//!      [--cores LIST] [--stats FILE] [--stats-interval-ms MS]
//!      [--poll-mode prefer-busy|busy|idle] [--idle-spins N] [--prefill-time-wait N]
//! ```
//!
//! (`xtcp::engine::cli`; `--help` lists every flag.)

use xtcp::ConnHandle;
use xtcp::engine::cli::{self, ServerArgs};
use xtcp::engine::{App, AppEvent, Engine, Io};

const BODY: &str = "Hello from xtcp\n";
/// Largest request head accepted; a longer one gets 431 and the connection closes.
const MAX_HEAD: usize = 8192;

fn response(close: bool) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nServer: xtcp\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{BODY}",
        BODY.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes()
}

const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// One parsed request head.
#[derive(Debug, PartialEq, Eq)]
enum Parse {
    /// More bytes needed.
    Partial,
    /// The head is longer than `MAX_HEAD`.
    TooLarge,
    /// A complete request of `len` bytes (head and body).
    Request { len: usize, close: bool },
}

fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    if !line[..colon].eq_ignore_ascii_case(name) {
        return None;
    }
    Some(line[colon + 1..].trim_ascii())
}

fn parse(data: &[u8]) -> Parse {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if data.len() > MAX_HEAD {
            Parse::TooLarge
        } else {
            Parse::Partial
        };
    };
    if end > MAX_HEAD {
        return Parse::TooLarge;
    }
    let head = &data[..end];
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.trim_ascii_end());
    let request_line = lines.next().unwrap_or_default();
    let http10 = request_line.ends_with(b"HTTP/1.0");
    let (mut close, mut keep_alive, mut body) = (false, false, 0usize);
    for line in lines {
        if let Some(v) = header_value(line, b"connection") {
            for token in v.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if let Some(v) = header_value(line, b"content-length") {
            body = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        }
    }
    let len = end + 4 + body;
    if data.len() < len {
        return Parse::Partial;
    }
    Parse::Request {
        len,
        close: close || (http10 && !keep_alive),
    }
}

/// Per connection slot.
#[derive(Clone, Copy, Default)]
struct ConnState {
    /// The peer sent FIN.
    peer_closed: bool,
    /// A response the send buffer could not take whole: bytes already sent, and whether it
    /// is the closing one. The rest goes out on `Writable`, before any further request.
    partial: Option<(usize, bool)>,
}

/// One core's HTTP server.
struct Http {
    keep_alive: Vec<u8>,
    close: Vec<u8>,
    conns: Vec<ConnState>,
}

impl Http {
    fn state(&mut self, c: ConnHandle) -> &mut ConnState {
        let i = c.index();
        if self.conns.len() <= i {
            self.conns.resize(i + 1, ConnState::default());
        }
        &mut self.conns[i]
    }

    /// Closes after dropping unread bytes (closing with unread bytes would reset).
    fn finish(&mut self, io: &mut Io<'_>, c: ConnHandle) {
        let rest = io.recv_queue(c);
        io.consume(c, rest);
        *self.state(c) = ConnState::default();
        let _ = io.close(c);
    }

    /// Sends `resp[from..]`; returns false (and remembers the rest) if it did not all fit.
    /// The short send arms `Writable`.
    fn send_response(&mut self, io: &mut Io<'_>, c: ConnHandle, from: usize, close: bool) -> bool {
        let resp = if close { &self.close } else { &self.keep_alive };
        let sent = io.send(c, &resp[from..]).unwrap_or(0);
        let done = from + sent == resp.len();
        self.state(c).partial = (!done).then_some((from + sent, close));
        if done && close {
            self.finish(io, c);
        }
        done
    }

    fn serve(&mut self, io: &mut Io<'_>, c: ConnHandle) {
        if io.state(c).is_none() {
            return;
        }
        if let Some((from, close)) = self.state(c).partial
            && (!self.send_response(io, c, from, close) || close)
        {
            return;
        }
        loop {
            match parse(io.recv_slice(c)) {
                Parse::Partial => break,
                Parse::TooLarge => {
                    let _ = io.send(c, TOO_LARGE);
                    self.finish(io, c);
                    return;
                }
                Parse::Request { len, close } => {
                    io.consume(c, len);
                    if !self.send_response(io, c, 0, close) || close {
                        return;
                    }
                }
            }
        }
        // Every complete request is answered; a peer that is done gets our FIN too.
        if self.state(c).peer_closed {
            self.finish(io, c);
        }
    }
}

impl App for Http {
    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        match ev {
            AppEvent::Accepted(c) => *self.state(c) = ConnState::default(),
            AppEvent::Readable(c) | AppEvent::Writable(c) => self.serve(io, c),
            AppEvent::PeerClosed(c) => {
                self.state(c).peer_closed = true;
                self.serve(io, c);
            }
            AppEvent::Closed(c) | AppEvent::Reset(c) | AppEvent::TimedOut(c) => {
                *self.state(c) = ConnState::default()
            }
            AppEvent::Connected(_) => {}
        }
    }
}

fn main() {
    let args = ServerArgs::from_env_or_exit();
    init_tracing();
    let make = |_queue| Http {
        keep_alive: response(false),
        close: response(true),
        conns: Vec::new(),
    };
    let engine = match Engine::start(args.engine_config(), make) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("http: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", cli::ready_line("http", &args, engine.info()));
    match engine.run_until_signal() {
        Ok(stats) => {
            let t = stats.totals();
            eprintln!(
                "http: stopped; {} connections accepted, {} rx frames, {} tx frames",
                t.passive_opens, t.rx_frames, t.tx_frames
            );
        }
        Err(e) => {
            eprintln!("http: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            parse(get),
            Parse::Request {
                len: get.len(),
                close: false
            }
        );
        assert_eq!(parse(&get[..10]), Parse::Partial);
        let close = b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\nGET /";
        assert_eq!(
            parse(close),
            Parse::Request {
                len: close.len() - 5,
                close: true
            }
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.0\r\n\r\n"),
            Parse::Request { close: true, .. }
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            Parse::Request { close: false, .. }
        ));
        let post = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
        assert_eq!(parse(post), Parse::Partial);
        let mut full = post.to_vec();
        full.push(b'c');
        assert_eq!(
            parse(&full),
            Parse::Request {
                len: full.len(),
                close: false
            }
        );
        assert_eq!(parse(&vec![b'a'; MAX_HEAD + 1]), Parse::TooLarge);
        let r = response(false);
        assert!(r.ends_with(BODY.as_bytes()));
        assert!(
            String::from_utf8(response(true))
                .unwrap()
                .contains("Connection: close")
        );
    }
}

/// `RUST_LOG` filtering of xtcp's control-path events (e.g. `RUST_LOG=xtcp=debug`: state
/// transitions and drops with their reason), on stderr. Without `RUST_LOG`, errors only.
fn init_tracing() {
    #[cfg(feature = "trace")]
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
