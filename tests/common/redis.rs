//! A real `redis-server` for tests: its own free loopback port, its own temp dir, no
//! persistence; killed on drop. Tests reach it as `common::redis::RedisServer`; the tiers
//! bench includes this file alone (`#[path = "../tests/common/redis.rs"]`), so it depends on
//! nothing else in `common`.
//!
//! A missing `redis-server` is a panic that says how to install it, never a skip.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer `PING` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A `redis-server` process on `127.0.0.1:{port}`.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Keeps an append-only file, synced on every write (see [`start_persistent`](Self::start_persistent)).
    persistent: bool,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    ///
    /// Panics if `redis-server` is not on `PATH` or does not come up in time.
    pub fn start() -> RedisServer {
        RedisServer::start_with(false)
    }

    /// Like [`start`](Self::start), with an append-only file synced on every write: a
    /// [`restart`](Self::restart) after a SIGKILL comes back with every acknowledged write.
    pub fn start_persistent() -> RedisServer {
        RedisServer::start_with(true)
    }

    fn start_with(persistent: bool) -> RedisServer {
        let dir = tempfile::Builder::new().prefix("larder-redis-").tempdir().expect("a temp dir for redis-server");
        // Another process may take the port between our probe and redis-server's bind:
        // try a few ports.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn(port, dir.path(), persistent) {
                Ok(child) => {
                    return RedisServer { port, dir, child: Some(child), persistent };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on (the same across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: like a crash) and waits for the process to end. Data is
    /// lost unless the server is persistent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, and starts a new one on the same port.
    ///
    /// Panics if it does not come up in time.
    pub fn restart(&mut self) {
        self.stop();
        match spawn(self.port, self.dir.path(), self.persistent) {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!("redis-server did not restart on port {}: {e}", self.port),
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open but nothing answers, like a
    /// hung server or a network black hole. [`thaw`](Self::thaw) resumes it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Sends one command (inline protocol): the reply's first line (`+OK`, `:3`, `-ERR …`),
    /// or the contents of a bulk string reply.
    pub fn command(&self, line: &str) -> Result<String, String> {
        command(self.port, line)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A frozen process ignores nothing but SIGKILL; thaw it anyway for a clean exit.
            let _ =
                Command::new("kill").args(["-CONT", &self.child.as_ref().map_or(0, Child::id).to_string()]).status();
        }
        self.stop();
    }
}

/// Spawns `redis-server` on `port` with `dir` as its working dir, and waits until it answers.
fn spawn(port: u16, dir: &Path, persistent: bool) -> Result<Child, String> {
    let log = dir.join("redis.log");
    let persistence: &[&str] =
        if persistent { &["--appendonly", "yes", "--appendfsync", "always"] } else { &["--appendonly", "no"] };
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--daemonize", "no"])
        .args(persistence)
        .arg("--logfile")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "redis-server is not on PATH: these tests need a real Redis. Install it \
             (`apt-get install redis-server`, `brew install redis`) or run `scripts/test`, which installs it"
        ),
        Err(e) => panic!("cannot run redis-server: {e}"),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return Err(format!("exited with {status}: {stderr} {}", read_log(&log)));
        }
        // Ours, not another server that took the port meanwhile: compare the process id.
        let pid = format!("process_id:{}", child.id());
        if command(port, "INFO server").is_ok_and(|info| info.lines().any(|line| line.trim() == pid)) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no PONG within {START_TIMEOUT:?}: {}", read_log(&log)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// One inline command on a fresh connection: the reply's first line, or the contents of a
/// bulk string reply.
fn command(port: u16, line: &str) -> Result<String, String> {
    let addr = (Ipv4Addr::LOCALHOST, port).into();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    stream.write_all(format!("{line}\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => return Err("connection closed".into()),
            Ok(_) => reply.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    reply.truncate(reply.len() - 2);
    let first = String::from_utf8_lossy(&reply).into_owned();
    if let Some(len) = first.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
        let mut bulk = vec![0u8; len + 2];
        stream.read_exact(&mut bulk).map_err(|e| e.to_string())?;
        bulk.truncate(len);
        return Ok(String::from_utf8_lossy(&bulk).into_owned());
    }
    Ok(first)
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
