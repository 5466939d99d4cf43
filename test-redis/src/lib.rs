//! A private `redis-server` for the tests, benchmarks and examples of dspex: started from
//! `PATH` (or the binary [`REDIS_SERVER`](ENV_REDIS_SERVER) names) on a free loopback port with
//! a temporary directory of its own, and stopped, its directory removed, when it is dropped or
//! when the process that started it dies. It never connects to, or stops, a server it did not
//! start (the machine's own Redis on port 6379 is never used).
//!
//! ```no_run
//! use dspex_test_redis::RedisServer;
//!
//! let server = RedisServer::start()?;
//! println!("a private Redis at {}", server.url());
//! drop(server); // stopped, its directory removed
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How it never leaves a server behind
//!
//! The server runs under a small `sh` watchdog whose standard input is a pipe from this
//! process. When the pipe closes (the [`RedisServer`] is dropped, or this process exits or is
//! killed, even by SIGKILL), the watchdog kills the server and removes its directory. So a
//! test that panics, or a test binary that keeps a server in a `static`, leaves nothing
//! running.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable that names the `redis-server` binary (default: `redis-server`
/// from `PATH`).
pub const ENV_REDIS_SERVER: &str = "REDIS_SERVER";

/// How long a server may take to accept connections after it was started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a server may take to exit once it was told to.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How many free ports are tried before giving up (another process may take a free port
/// between the moment it is found and the moment the server binds it).
pub const MAX_START_ATTEMPTS: usize = 5;

/// The line `redis-server` logs once it accepts connections.
const READY_LINE: &str = "Ready to accept connections";

/// The line the watchdog prints with the server's process id.
const PID_LINE: &str = "dspex-test-redis pid ";

/// The watchdog: starts the server in the background, prints its pid, waits for the end of
/// its standard input, then kills the server and removes its directory (unless told `keep`,
/// for a restart on the same directory).
const WATCHDOG: &str = r#"dir=$1; shift
"$@" &
pid=$!
echo "dspex-test-redis pid $pid"
keep=
while read -r line; do [ "$line" = keep ] && keep=1; done
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ -n "$keep" ] || rm -rf "$dir"
"#;

/// How a server is configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisOptions {
    /// Keep an append-only file with `appendfsync always`: every acknowledged write is on disk
    /// before the reply, so it survives a crash and restart on the same directory.
    pub append_only: bool,
}

/// A running (or stopped, restartable) private `redis-server`.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    options: RedisOptions,
    process: Option<Process>,
}

struct Process {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    output: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("pid", &self.pid())
            .finish()
    }
}

impl RedisServer {
    /// Starts a server without persistence.
    ///
    /// # Errors
    ///
    /// If `redis-server` cannot be found or started, or does not get ready within
    /// [`READY_TIMEOUT`]; the message says which binary and what it printed.
    pub fn start() -> io::Result<Self> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with `options`.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with(options: RedisOptions) -> io::Result<Self> {
        let mut server = Self {
            port: 0,
            dir: temp_dir()?,
            options,
            process: None,
        };
        let mut last_error = None;
        for _ in 0..MAX_START_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    // Try another port on the same directory.
                    server.stop_process(true);
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// The URL of the server's database 0: `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (its append-only file, if any).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// What the server logged so far.
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .and_then(|p| p.output.lock().ok().map(|o| o.clone()))
            .unwrap_or_default()
    }

    /// Kills the server with SIGKILL (a crash) and waits until it is gone; its directory
    /// stays, for [`restart`](Self::restart).
    ///
    /// # Errors
    ///
    /// If the server does not exit within [`STOP_TIMEOUT`].
    pub fn kill(&mut self) -> io::Result<()> {
        self.signal(rustix::process::Signal::KILL)
    }

    /// Asks the server to shut down (SIGTERM: it writes what it must and exits) and waits
    /// until it is gone; its directory stays, for [`restart`](Self::restart).
    ///
    /// # Errors
    ///
    /// If the server does not exit within [`STOP_TIMEOUT`].
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.signal(rustix::process::Signal::TERM)
    }

    /// Freezes the server (SIGSTOP): it keeps its port but answers nothing until
    /// [`resume`](Self::resume).
    ///
    /// # Errors
    ///
    /// If the server is not running or cannot be signalled.
    pub fn pause(&self) -> io::Result<()> {
        self.send_signal(rustix::process::Signal::STOP)
    }

    /// Resumes a server frozen by [`pause`](Self::pause).
    ///
    /// # Errors
    ///
    /// If the server is not running or cannot be signalled.
    pub fn resume(&self) -> io::Result<()> {
        self.send_signal(rustix::process::Signal::CONT)
    }

    /// Starts the server again on the same port and directory (after [`kill`](Self::kill) or
    /// [`shutdown`](Self::shutdown)); with an append-only file it loads what was written.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start); also if the server is still running.
    pub fn restart(&mut self) -> io::Result<()> {
        if self.process.is_some() {
            return Err(io::Error::other("the server is still running"));
        }
        self.spawn()
    }

    fn send_signal(&self, signal: rustix::process::Signal) -> io::Result<()> {
        let pid = self
            .pid()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| io::Error::other("the server is not running"))?;
        rustix::process::kill_process(pid, signal).map_err(io::Error::from)
    }

    fn signal(&mut self, signal: rustix::process::Signal) -> io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| io::Error::other("the server is not running"))?;
        // A frozen server must run again to handle SIGTERM.
        let _ = self.send_signal(rustix::process::Signal::CONT);
        self.send_signal(signal)?;
        let gone = wait_gone(pid, STOP_TIMEOUT);
        self.stop_process(true);
        if gone {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "redis-server (pid {pid}) did not exit within {STOP_TIMEOUT:?}"
            )))
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let binary = std::env::var_os(ENV_REDIS_SERVER).unwrap_or_else(|| "redis-server".into());
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(&self.dir)
            .arg(&binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""])
            .args(["--daemonize", "no"])
            .args(["--logfile", ""])
            .args(["--protected-mode", "yes"]);
        if self.options.append_only {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let mut watchdog = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start sh: {e}")))?;
        let stdin = watchdog.stdin.take();
        let output = Arc::new(Mutex::new(String::new()));
        let (events, ready) = mpsc::channel();
        let mut readers = Vec::new();
        for stream in [
            watchdog
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn io::Read + Send>),
            watchdog
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            let events = events.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(pid) = line.strip_prefix(PID_LINE) {
                        let _ = events.send(Event::Pid(pid.trim().parse().unwrap_or(0)));
                    } else if line.contains(READY_LINE) {
                        let _ = events.send(Event::Ready);
                    }
                    if let Ok(mut o) = output.lock() {
                        o.push_str(&line);
                        o.push('\n');
                    }
                }
                let _ = events.send(Event::Closed);
            }));
        }
        drop(events);
        let reader = std::thread::spawn(move || {
            for r in readers {
                let _ = r.join();
            }
        });
        let mut process = Process {
            watchdog,
            stdin,
            pid: 0,
            output,
            reader: Some(reader),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut is_ready = false;
        let mut closed = 0;
        while !(is_ready && process.pid != 0) {
            let left = deadline.saturating_duration_since(Instant::now());
            match ready.recv_timeout(left) {
                Ok(Event::Pid(pid)) => process.pid = pid,
                Ok(Event::Ready) => is_ready = true,
                Ok(Event::Closed) if closed == 0 => closed += 1,
                Ok(Event::Closed) | Err(_) => {
                    let output = process.output.lock().map(|o| o.clone()).unwrap_or_default();
                    self.process = Some(process);
                    let what = if closed > 0 {
                        "exited before it accepted connections"
                    } else {
                        "did not accept connections in time"
                    };
                    return Err(io::Error::other(format!(
                        "{} {what} (port {}); it printed:\n{output}",
                        binary.to_string_lossy(),
                        self.port
                    )));
                }
            }
        }
        self.process = Some(process);
        Ok(())
    }

    /// Closes the watchdog's input (after `keep`, the directory stays) and reaps it.
    fn stop_process(&mut self, keep_dir: bool) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        let mut stdin = process.stdin.take();
        if keep_dir && let Some(stdin) = stdin.as_mut() {
            let _ = writeln!(stdin, "keep").and_then(|()| stdin.flush());
        }
        // The end of its input tells the watchdog to stop the server.
        drop(stdin);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match process.watchdog.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = process.watchdog.kill();
                    let _ = process.watchdog.wait();
                    break;
                }
                // The watchdog exits right after the server: wait on its pid, then reap.
                Ok(None) => {
                    wait_gone(process.watchdog.id(), STOP_TIMEOUT);
                }
            }
        }
        if let Some(reader) = process.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop_process(false);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Event {
    Pid(u32),
    Ready,
    Closed,
}

/// A new, empty directory under the system's temporary directory.
fn temp_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    loop {
        let dir = std::env::temp_dir().join(format!(
            "dspex-redis-{}-{stamp}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until process `pid` (not necessarily a child) has exited; `false` on timeout. The
/// wait is an event: the process's pidfd becomes readable when it exits.
fn wait_gone(pid: u32, timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};

    let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    let Ok(pidfd) = pidfd_open(raw, PidfdFlags::empty()) else {
        return true;
    };
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Err(rustix::io::Errno::INTR) => {}
            Ok(n) => return n > 0,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(port: u16) -> io::Result<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(READY_TIMEOUT))?;
        stream.write_all(b"PING\r\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line)
    }

    #[test]
    fn a_server_starts_answers_and_leaves_nothing_behind() {
        let server = RedisServer::start().unwrap();
        assert_ne!(server.port(), 6379);
        assert_eq!(ping(server.port()).unwrap(), "+PONG\r\n");
        let (pid, dir, port) = (
            server.pid().unwrap(),
            server.dir().to_owned(),
            server.port(),
        );
        assert!(dir.is_dir());
        drop(server);
        assert!(wait_gone(pid, STOP_TIMEOUT));
        assert!(!dir.exists());
        assert!(ping(port).is_err());
    }

    #[test]
    fn a_killed_server_restarts_on_its_directory() {
        let mut server = RedisServer::start_with(RedisOptions { append_only: true }).unwrap();
        let first = server.pid().unwrap();
        server.kill().unwrap();
        assert!(server.pid().is_none());
        assert!(server.dir().is_dir());
        assert!(ping(server.port()).is_err());
        server.restart().unwrap();
        assert_ne!(server.pid(), Some(first));
        assert_eq!(ping(server.port()).unwrap(), "+PONG\r\n");
    }
}
