//! Uploads stream to disk: a 300 MiB body does not grow the server's memory by more than a
//! few buffers, arrives intact, and an upload over the limit is refused with nothing left behind.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::multipart::{Form, Part};
use reqwest::Method;
use sha2::{Digest, Sha256};
use sortie_tests::{rss_kib, send, Coordinator, ServeOptions};

const BIG: u64 = 300 * 1024 * 1024;
/// How much the server's resident memory may grow while it receives [`BIG`] bytes.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

/// The 8 bytes at `8 * index` of the generated content (splitmix64 of the index), so any range
/// can be recomputed without generating what comes before it.
fn word(index: u64) -> [u8; 8] {
    let mut z = index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).to_le_bytes()
}

/// Fills `out` with the generated content starting at byte `start`.
fn fill(start: u64, out: &mut [u8]) {
    let mut pos = start;
    let mut i = 0;
    while i < out.len() {
        if pos.is_multiple_of(8) && out.len() - i >= 8 {
            out[i..i + 8].copy_from_slice(&word(pos / 8));
            i += 8;
            pos += 8;
        } else {
            out[i] = word(pos / 8)[(pos % 8) as usize];
            i += 1;
            pos += 1;
        }
    }
}

/// `len` bytes of deterministic content, produced as they are read (nothing is held in
/// memory), hashed on the way; the SHA-256 is published when the end is reached.
struct Generated {
    pos: u64,
    len: u64,
    hasher: Option<Sha256>,
    digest: Arc<Mutex<Option<String>>>,
}

impl Generated {
    fn new(len: u64) -> (Generated, Arc<Mutex<Option<String>>>) {
        let digest = Arc::new(Mutex::new(None));
        let reader = Generated {
            pos: 0,
            len,
            hasher: Some(Sha256::new()),
            digest: Arc::clone(&digest),
        };
        (reader, digest)
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        if n == 0 {
            if let Some(hasher) = self.hasher.take() {
                *self.digest.lock().unwrap() = Some(hex::encode(hasher.finalize()));
            }
            return Ok(0);
        }
        fill(self.pos, &mut buf[..n]);
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Polls the resident memory of `pid` every 20 ms until stopped; returns the largest seen.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::Builder::new()
        .name("rss-sampler".into())
        .spawn(move || {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            max
        })
        .expect("spawning the sampler")
}

fn blob_files(server: &Coordinator) -> Vec<String> {
    std::fs::read_dir(server.data_dir().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "tmp")
        .collect()
}

fn tmp_files(server: &Coordinator) -> usize {
    std::fs::read_dir(server.data_dir().join("blobs/tmp"))
        .unwrap()
        .count()
}

#[test]
fn a_300_mib_upload_streams_to_disk() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    // Warm up the paths an upload takes, so the baseline includes their one-time allocations.
    let warm = Form::new().part("w", Part::bytes(vec![7u8; 64 * 1024]).file_name("w.bin"));
    api.post_form("/api/v2/blobs/", warm).expect(200);

    let baseline = rss_kib(server.pid()).expect("the server's VmRSS");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(server.pid(), Arc::clone(&stop));
    let (body, digest) = Generated::new(BIG);
    let started = Instant::now();
    let form = Form::new().part("big", Part::reader(body).file_name("big.bin"));
    let reply = send(
        api.request(Method::POST, "/api/v2/blobs/")
            .timeout(Duration::from_secs(600))
            .multipart(form),
    );
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().expect("the sampler");
    let ids = reply.expect(200);
    println!(
        "uploaded {} MiB in {:.1} s ({:.0} MiB/s); server VmRSS {} KiB before, {} KiB at most (+{} KiB)",
        BIG >> 20,
        elapsed.as_secs_f64(),
        (BIG >> 20) as f64 / elapsed.as_secs_f64(),
        baseline,
        peak,
        peak.saturating_sub(baseline)
    );
    assert!(
        peak.saturating_sub(baseline) < MAX_GROWTH_KIB,
        "the server grew from {baseline} KiB to {peak} KiB while receiving {BIG} bytes"
    );

    let id = ids["big"].as_str().expect("a blob id");
    let sha256 = digest
        .lock()
        .unwrap()
        .clone()
        .expect("the whole body was read");
    let head = send(api.request(Method::HEAD, &format!("/api/v2/blobs/{id}")));
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(BIG.to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(format!("\"{sha256}\"").as_str()));
    // Spot checks of the stored bytes, at the start, across a chunk boundary and at the end.
    for (start, len) in [(0, 64), (8 * 1024 * 1024 - 5, 10), (BIG - 16, 16)] {
        let range = send(
            api.request(Method::GET, &format!("/api/v2/blobs/{id}"))
                .header("range", format!("bytes={start}-{}", start + len - 1)),
        );
        assert_eq!(range.status, 206, "range at {start}: {}", range.text());
        let mut expected = vec![0; len as usize];
        fill(start, &mut expected);
        assert_eq!(range.body, expected, "bytes {start}..{}", start + len);
    }
    assert_eq!(
        tmp_files(&server),
        0,
        "a staged upload was left in blobs/tmp"
    );
}

/// The answer to a request written by hand on a raw socket: status and body. `write_body`
/// runs on its own thread, so the answer is read while the body is still being sent (the
/// server may answer and close before taking it all); its write errors are ignored.
fn raw_exchange(
    server: &Coordinator,
    head: String,
    write_body: impl FnOnce(&mut TcpStream) -> std::io::Result<()> + Send + 'static,
) -> (u16, serde_json::Value) {
    let url = reqwest::Url::parse(server.base_url()).expect("a base URL");
    let address = (url.host_str().unwrap(), url.port().unwrap());
    let mut stream = TcpStream::connect(address).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(head.as_bytes())
        .expect("writing the request head");
    let mut writer = stream.try_clone().unwrap();
    let body = std::thread::spawn(move || {
        let _ = write_body(&mut writer);
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let (status, body_start, length) = loop {
        let n = stream.read(&mut buf).expect("reading the answer");
        assert!(
            n > 0,
            "the server closed without answering: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
        let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
        if head.starts_with("http/1.1 100") {
            received.drain(..end + 4);
            continue;
        }
        let status = head[9..12].parse::<u16>().expect("a status code");
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .expect("a Content-Length");
        break (status, end + 4, length);
    };
    while received.len() < body_start + length {
        let n = stream.read(&mut buf).expect("reading the answer's body");
        assert!(n > 0, "the answer's body was cut short");
        received.extend_from_slice(&buf[..n]);
    }
    let _ = stream.shutdown(Shutdown::Both);
    body.join().expect("the body writer");
    let json =
        serde_json::from_slice(&received[body_start..body_start + length]).expect("a JSON answer");
    (status, json)
}

const BOUNDARY: &str = "sortie-e2e-boundary";

fn multipart_head(server: &Coordinator, token: &str, framing: &str) -> String {
    let url = reqwest::Url::parse(server.base_url()).expect("a base URL");
    let path = format!("{}/api/v2/blobs/", url.path().trim_end_matches('/'));
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n"
    )
}

fn multipart_parts(size: usize) -> (Vec<u8>, Vec<u8>) {
    let start = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let mut body = start.into_bytes();
    body.resize(body.len() + size, 1);
    (body, format!("\r\n--{BOUNDARY}--\r\n").into_bytes())
}

#[track_caller]
fn assert_too_large(status: u16, body: &serde_json::Value) {
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large", "{body}");
    assert!(body["message"].is_string(), "{body}");
}

#[test]
fn an_upload_over_the_limit_is_refused() {
    let server = Coordinator::start(ServeOptions::demo().max_upload("1MiB"));
    let api = server.demo_api();
    let token = api.token().unwrap().to_owned();
    let (body, end) = multipart_parts(2 * 1024 * 1024);

    // With a Content-Length the server refuses before reading; as curl does for big bodies,
    // ask first with `Expect: 100-continue`, so the refusal is the whole exchange.
    let framing = format!(
        "Content-Length: {}\r\nExpect: 100-continue\r\n",
        body.len() + end.len()
    );
    let (status, answer) = raw_exchange(&server, multipart_head(&server, &token, &framing), |_| {
        Ok(())
    });
    assert_too_large(status, &answer);

    // Without a length (chunked), it reads until the limit is crossed.
    let framing = "Transfer-Encoding: chunked\r\n";
    let (status, answer) = raw_exchange(
        &server,
        multipart_head(&server, &token, framing),
        move |w| {
            for chunk in body.chunks(64 * 1024).chain([end.as_slice()]) {
                write!(w, "{:x}\r\n", chunk.len())?;
                w.write_all(chunk)?;
                w.write_all(b"\r\n")?;
            }
            w.write_all(b"0\r\n\r\n")
        },
    );
    assert_too_large(status, &answer);
    assert_eq!(
        tmp_files(&server),
        0,
        "a staged upload was left in blobs/tmp"
    );
    assert!(
        blob_files(&server).is_empty(),
        "blob files: {:?}",
        blob_files(&server)
    );

    // Up to the limit is fine, and the server is none the worse.
    let exactly = Form::new().part("f", Part::bytes(vec![2u8; 1024 * 1024]).file_name("ok.bin"));
    let ids = api.post_form("/api/v2/blobs/", exactly).expect(200);
    let head = send(api.request(
        Method::HEAD,
        &format!("/api/v2/blobs/{}", ids["f"].as_str().unwrap()),
    ));
    assert_eq!(head.header("content-length"), Some("1048576"));
}
