//! A load client as light as wrk's: keep-alive HTTP/1.1 GETs whose request
//! bytes are made before the clock, answers parsed with `httparse`, nothing
//! else per request (no URL parsing, header maps, pool, cookie jar or timer).
//!
//! Why the bench has one beside reqwest: the bench shares the machine's two
//! CPUs with the service it measures, and reqwest's own work per request
//! (measured with `perf`: about two thirds of all CPU during a `/healthz` run)
//! then sets the pace, more so for a larger answer. "jssdkConfig / `/healthz`
//! of the same process" (issue #16 goal 1, first measured with `oha`) is a
//! figure about the service, so it is measured with this client; reqwest's
//! figures stay in the table beside it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::load::{LoadResult, drive};

/// Answers above this are refused (a bench answer is a few hundred bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// One GET, as the bytes sent.
pub fn get(addr: SocketAddr, path_and_query: &str) -> Vec<u8> {
    format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

/// Sends `requests(i)` for i in 0..n over `c` kept-alive connections to
/// `addr`; a request succeeds when its answer is a 200. With `keep`, each
/// answer's body is handed back (by index) for checking after the clock.
pub async fn drive_gets<F>(
    addr: SocketAddr,
    c: usize,
    n: usize,
    requests: F,
    keep: bool,
) -> (LoadResult, Vec<Option<Vec<u8>>>)
where
    F: Fn(usize) -> Arc<[u8]> + Send + Sync + 'static,
{
    let idle: Arc<Mutex<Vec<Connection>>> = Arc::new(Mutex::new(Vec::new()));
    let bodies: Arc<Vec<Mutex<Option<Vec<u8>>>>> = Arc::new(
        (0..if keep { n } else { 0 })
            .map(|_| Mutex::new(None))
            .collect(),
    );
    let (pool, kept) = (idle.clone(), bodies.clone());
    let requests = Arc::new(requests);
    let load = drive(c, n, move |i| {
        let (pool, kept, request) = (pool.clone(), kept.clone(), requests(i));
        async move {
            let taken = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut conn = match taken {
                Some(conn) => conn,
                None => match Connection::open(addr).await {
                    Ok(conn) => conn,
                    Err(_) => return false,
                },
            };
            let Ok((status, body)) = conn.exchange(&request).await else {
                return false;
            };
            if let Some(slot) = kept.get(i) {
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(body.to_vec());
            }
            pool.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            status == 200
        }
    })
    .await;
    let bodies = match Arc::try_unwrap(bodies) {
        Ok(bodies) => bodies
            .into_iter()
            .map(|b| b.into_inner().unwrap_or_else(PoisonError::into_inner))
            .collect(),
        Err(_) => Vec::new(),
    };
    (load, bodies)
}

/// One kept-alive connection and what it has read past the last answer.
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Writes `request` and reads its answer: the status and the body.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, &[u8])> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let (status, head, length) = loop {
            if let Some(parsed) = head_of(&self.buf)? {
                break parsed;
            }
            self.read_more().await?;
        };
        while self.buf.len() < head + length {
            self.read_more().await?;
        }
        Ok((status, &self.buf[head..head + length]))
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        if self.buf.len() > MAX_ANSWER {
            return Err(std::io::Error::other("answer too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// The status, the head's length and the body's (`Content-Length`) once
/// the head is complete. The services always send a length (no chunked
/// answers), and a request never gets more than one answer.
fn head_of(buf: &[u8]) -> std::io::Result<Option<(u16, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut answer = httparse::Response::new(&mut headers);
    let head = match answer.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let length = answer
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("an answer without Content-Length"))?;
    Ok(Some((answer.code.unwrap_or(0), head, length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_and_the_body_length() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx: y\r\n\r\nok";
        let (status, head, length) = head_of(answer).unwrap().unwrap();
        assert_eq!((status, length), (200, 2));
        assert_eq!(&answer[head..], b"ok");
        assert!(head_of(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap().is_none());
        assert!(head_of(b"HTTP/1.1 200 OK\r\n\r\n").is_err(), "no length");
        assert!(head_of(b"NOT HTTP\r\n\r\n").is_err());
    }

    /// Against a real server: every request answered, on kept-alive
    /// connections, bodies handed back by index.
    #[tokio::test]
    async fn drives_a_real_server() {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HttpServer::new(|| {
            App::new().route(
                "/echo/{n}",
                web::get().to(|n: web::Path<u32>| async move {
                    match *n {
                        13 => HttpResponse::NotFound().body("no"),
                        n => HttpResponse::Ok().body(format!("n={n}")),
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let (load, bodies) = drive_gets(
            addr,
            3,
            20,
            move |i| Arc::from(get(addr, &format!("/echo/{i}"))),
            true,
        )
        .await;
        assert_eq!((load.requests, load.errors), (20, 1));
        assert_eq!(bodies[7].as_deref(), Some(&b"n=7"[..]));
        assert_eq!(bodies[13].as_deref(), Some(&b"no"[..]));
        handle.stop(true).await;
    }
}
