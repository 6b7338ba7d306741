//! The socket's limit, for the load test (issue 17, item 5): a trivial HTTP/1.1
//! server on a Unix socket that answers every request with the same bytes,
//! read once from a file. It parses nothing but the end of each request's
//! headers and writes one prepared response, so what a client measures
//! against it is what the socket (and the client) can carry; `rgmerge serve`
//! answering the same body is compared with it in the same run.
//!
//! `cargo run --release --example raw_serve -- SOCKET BODY_FILE`

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(socket), Some(body)) = (args.next(), args.next()) else {
        eprintln!("usage: raw_serve SOCKET BODY_FILE");
        std::process::exit(2);
    };
    let socket = PathBuf::from(socket);
    let body = std::fs::read(&body).map_err(|e| {
        std::io::Error::other(format!(
            "can't read {}: {e}",
            PathBuf::from(&body).display()
        ))
    })?;
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let response: Arc<[u8]> = response.into();
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    println!("listening on {}", socket.display());
    loop {
        let (stream, _) = listener.accept().await?;
        let response = response.clone();
        tokio::spawn(async move {
            let _ = serve(stream, &response).await;
        });
    }
}

/// Answers each request on one kept-alive connection until the client closes it.
async fn serve(mut stream: UnixStream, response: &[u8]) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut held = 0;
    loop {
        let n = stream.read(&mut buf[held..]).await?;
        if n == 0 {
            return Ok(());
        }
        held += n;
        // Every complete request head in the buffer gets one response.
        while let Some(end) = buf[..held].windows(4).position(|w| w == b"\r\n\r\n") {
            stream.write_all(response).await?;
            buf.copy_within(end + 4..held, 0);
            held -= end + 4;
        }
        if held == buf.len() {
            return Ok(()); // a head larger than the buffer: not ours to serve
        }
    }
}
