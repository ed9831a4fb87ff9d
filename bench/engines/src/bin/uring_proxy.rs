//! `uring_proxy LISTEN UPSTREAM`: a minimal HTTP/1.1 reverse proxy on io_uring, for
//! bench/bare-proxy.sh: the `monoio` thread-per-core runtime (0.2, io_uring driver only, the
//! epoll fallback compiled out) with `httparse` for the message heads.
//!
//! Every request is forwarded to `http://UPSTREAM` byte for byte (method, path, query, headers,
//! Content-Length body), and the upstream's response goes back byte for byte (status, headers,
//! body framed by Content-Length, chunked encoding or connection close). Client connections stay
//! open (HTTP/1.1 keep-alive, pipelined requests answered in order) unless the client or the
//! upstream says `Connection: close`. It is a bench engine, not a product: no chunked request
//! bodies (501), no upgrades, no HTTP/1.0 keep-alive, a response is held whole in memory before it
//! is written, and errors answer 502.
//!
//! Tuning: one thread (MONOIO_THREADS, else BENCH_WORKERS, else 1; each thread its own ring and
//! SO_REUSEPORT listener); a ring of 1024 entries; an upstream keep-alive pool per thread of up to
//! 256 idle connections (enough for 256 clients); 16 KiB initial read buffers that grow as a
//! message needs; TCP_NODELAY on both sides; a request on a pooled connection that the upstream had
//! closed is retried once on a new one.
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

const POOL_MAX: usize = 256;
const READ_CHUNK: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

type Pool = Rc<RefCell<Vec<TcpStream>>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: uring_proxy LISTEN UPSTREAM (e.g. 127.0.0.1:8080 127.0.0.1:9000)");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse().expect("LISTEN must be ip:port");
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM must be ip:port");
    let threads: usize = ["MONOIO_THREADS", "BENCH_WORKERS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
        .max(1);
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || worker(listen, upstream)))
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
}

fn worker(listen: SocketAddr, upstream: SocketAddr) {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .build()
        .expect("io_uring runtime (is io_uring allowed here?)");
    rt.block_on(async move {
        let opts = ListenerOpts::new().reuse_port(true).reuse_addr(true).backlog(4096);
        let listener = TcpListener::bind_with_config(listen, &opts).expect("bind LISTEN");
        let pool: Pool = Rc::new(RefCell::new(Vec::with_capacity(POOL_MAX)));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(serve(stream, upstream, pool.clone()));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
}

/// Reads more bytes onto the end of `buf`; Ok(false) at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    let len = buf.len();
    let (res, slice) = stream.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    Ok(res? > 0)
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A parsed head: its length, the body's framing and whether the connection closes after it.
struct Head {
    len: usize,
    body: Framing,
    close: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn framing(headers: &[httparse::Header]) -> Result<(Option<Framing>, bool), ()> {
    let (mut body, mut close) = (None, false);
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok().and_then(|s| s.trim().parse().ok()).ok_or(())?;
            body = Some(Framing::Length(n));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") && has_token(h.value, "chunked") {
            body = Some(Framing::Chunked);
        } else if h.name.eq_ignore_ascii_case("connection") && has_token(h.value, "close") {
            close = true;
        }
    }
    Ok((body, close))
}

fn parse_request(buf: &[u8]) -> Result<Option<(Head, bool)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf).map_err(|_| ())? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => {
            let (body, close) = framing(req.headers)?;
            let close = close || req.version != Some(1);
            let head_only = req.method == Some("HEAD");
            Ok(Some((Head { len, body: body.unwrap_or(Framing::Length(0)), close }, head_only)))
        }
    }
}

fn parse_response(buf: &[u8], head_request: bool) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf).map_err(|_| ())? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => {
            let code = resp.code.unwrap_or(0);
            let (body, close) = framing(resp.headers)?;
            let body = if head_request || code / 100 == 1 || code == 204 || code == 304 {
                Framing::Length(0)
            } else {
                body.unwrap_or(Framing::UntilClose)
            };
            let close = close || resp.version != Some(1) || body == Framing::UntilClose;
            Ok(Some(Head { len, body, close }))
        }
    }
}

/// Length of a complete chunked body at the start of `buf` (trailers included), if complete.
fn chunked_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let line = |from: usize| buf[from..].windows(2).position(|w| w == b"\r\n").map(|p| from + p);
    let mut pos = 0;
    loop {
        let Some(end) = line(pos) else { return Ok(None) };
        let size_hex = buf[pos..end].split(|&b| b == b';').next().unwrap_or_default();
        let size = usize::from_str_radix(std::str::from_utf8(size_hex).map_err(|_| ())?.trim(), 16)
            .map_err(|_| ())?;
        pos = end + 2;
        if size == 0 {
            loop {
                let Some(end) = line(pos) else { return Ok(None) };
                if end == pos {
                    return Ok(Some(pos + 2));
                }
                pos = end + 2;
            }
        }
        pos += size + 2;
        if pos > buf.len() {
            return Ok(None);
        }
    }
}

/// Reads one complete response into `buf` from `up`. Err if the upstream failed or was closed.
async fn read_response(up: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> io::Result<Head> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad upstream response");
    loop {
        if let Some(head) = parse_response(buf, head_request).map_err(|_| bad())? {
            loop {
                let body = &buf[head.len..];
                let done = match head.body {
                    Framing::Length(n) => body.len() >= n,
                    Framing::Chunked => chunked_len(body).map_err(|_| bad())?.is_some(),
                    Framing::UntilClose => false,
                };
                if done {
                    return Ok(head);
                }
                if !fill(up, buf).await? {
                    return if head.body == Framing::UntilClose {
                        Ok(head)
                    } else {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    };
                }
            }
        }
        if !fill(up, buf).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Sends `req` upstream and reads the response into `resp`, on a pooled connection if any
/// (retried once on a new connection if that one had gone stale), else on a new one.
async fn exchange(
    pool: &Pool,
    upstream: SocketAddr,
    req: Vec<u8>,
    resp: &mut Vec<u8>,
    head_request: bool,
) -> io::Result<(Vec<u8>, Head)> {
    let mut req = req;
    let pooled = pool.borrow_mut().pop();
    let tries = if pooled.is_some() { 2 } else { 1 };
    let mut pooled = pooled;
    for attempt in 0..tries {
        let mut up = match pooled.take() {
            Some(up) => up,
            None => {
                let up = TcpStream::connect_addr(upstream).await?;
                let _ = up.set_nodelay(true);
                up
            }
        };
        resp.clear();
        let (res, back) = up.write_all(req).await;
        req = back;
        let outcome = match res {
            Ok(_) => read_response(&mut up, resp, head_request).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(head) => {
                if !head.close {
                    let mut p = pool.borrow_mut();
                    if p.len() < POOL_MAX {
                        p.push(up);
                    }
                }
                return Ok((req, head));
            }
            // A pooled connection the upstream closed meanwhile: nothing came back, try a new one.
            Err(e) if attempt + 1 < tries && resp.is_empty() => {
                let _ = e;
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n";
const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

async fn serve(mut client: TcpStream, upstream: SocketAddr, pool: Pool) {
    let mut inbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut req: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut resp: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        // One complete request (head and Content-Length body) at the start of inbuf.
        let (head, head_request) = loop {
            match parse_request(&inbuf) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) => {}
                Err(()) => {
                    let _ = client.write_all(BAD_REQUEST).await;
                    return;
                }
            }
            match fill(&mut client, &mut inbuf).await {
                Ok(true) => {}
                _ => return,
            }
        };
        let Framing::Length(body_len) = head.body else {
            let _ = client.write_all(NOT_IMPLEMENTED).await;
            return;
        };
        let total = head.len + body_len;
        while inbuf.len() < total {
            match fill(&mut client, &mut inbuf).await {
                Ok(true) => {}
                _ => return,
            }
        }
        req.clear();
        req.extend_from_slice(&inbuf[..total]);
        inbuf.drain(..total);

        let (out, close) = match exchange(&pool, upstream, std::mem::take(&mut req), &mut resp, head_request).await {
            Ok((back, rhead)) => {
                req = back;
                (std::mem::take(&mut resp), head.close || rhead.close)
            }
            Err(_) => {
                let (res, _) = client.write_all(BAD_GATEWAY).await;
                if res.is_err() || head.close {
                    return;
                }
                continue;
            }
        };
        let (res, back) = client.write_all(out).await;
        resp = back;
        if res.is_err() || close {
            return;
        }
    }
}
