//! A tiny stand-in for the Hugging Face hub on 127.0.0.1: `resolve` answers 302 with the file's
//! sha256 in `X-Linked-Etag`, and the "CDN" serves the bytes with range support.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub struct Hub {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Hub {
    /// Serves `file` as `{repo}/resolve/main/{name}`.
    pub fn serve(file: PathBuf, name: &'static str) -> Hub {
        let bytes = Arc::new(std::fs::read(&file).unwrap());
        let sha = format!("{:x}", Sha256::digest(&*bytes));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let (bytes, sha) = (bytes.clone(), sha.clone());
                        std::thread::spawn(move || answer(stream, &bytes, &sha, name, port));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Hub { port, requests, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn answer(mut stream: TcpStream, bytes: &[u8], sha: &str, name: &str, port: u16) {
    stream.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range_start = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range_start = value.trim().trim_end_matches('-').parse::<usize>().ok();
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head = method == "HEAD";
    let response = if path.ends_with(&format!("/resolve/main/{name}")) {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/cdn/{sha}\r\nX-Linked-Etag: \"{sha}\"\r\nX-Linked-Size: {}\r\nETag: \"{sha}\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            bytes.len()
        )
    } else if path.starts_with("/cdn/") {
        let start = range_start.unwrap_or(0).min(bytes.len());
        let status = if range_start.is_some() { "206 Partial Content" } else { "200 OK" };
        let mut headers = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nETag: \"cdn-etag\"\r\nConnection: close\r\n",
            bytes.len() - start
        );
        if range_start.is_some() {
            headers.push_str(&format!("Content-Range: bytes {start}-{}/{}\r\n", bytes.len() - 1, bytes.len()));
        }
        headers.push_str("\r\n");
        let _ = stream.write_all(headers.as_bytes());
        if !head {
            let _ = stream.write_all(&bytes[start..]);
        }
        return;
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
    };
    let _ = stream.write_all(response.as_bytes());
}
