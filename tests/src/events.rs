//! What the end-to-end tests wait for instead of sleeping: a process's exit (a pidfd becomes
//! readable), a marker line a Python module sends when it reaches a point, and the `tracing`
//! events dspex emits (a supervisor that stopped, a restart that failed).
//!
//! Every wait has a liveness bound ([`PYTHON_TIMEOUT`](crate::PYTHON_TIMEOUT) unless given),
//! never a timing assertion: a wait that runs out fails the test with what it waited for.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use crate::PYTHON_TIMEOUT;

/// Whether process `pid` is alive (exists and is not a zombie waiting to be reaped).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesized command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits until process `pid` has exited; `false` if it is still alive after `timeout`. The
/// wait is an event (the process's pidfd becomes readable when it exits), waited for on a
/// blocking thread so that the test's runtime keeps running.
pub async fn wait_gone(pid: u32, timeout: Duration) -> bool {
    tokio::task::spawn_blocking(move || wait_gone_blocking(pid, timeout))
        .await
        .unwrap_or(false)
}

/// [`wait_gone`] for tests that run outside an async runtime: blocks the thread.
pub fn wait_gone_blocking(pid: u32, timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};

    let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return !process_alive(pid);
    };
    // No pidfd: the process is gone already (or never existed).
    let Ok(pidfd) = pidfd_open(raw, PidfdFlags::empty()) else {
        return !process_alive(pid);
    };
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    // Interrupted by a signal: wait again (the timeout restarts, which only makes it longer).
    while let Err(rustix::io::Errno::INTR) = rustix::event::poll(&mut fds, Some(&timeout)) {}
    !process_alive(pid)
}

/// A place a Python module reports to: it connects to [`address`](Self::address) and sends a
/// line when it reaches the point the test waits for (`sample_modules.Sleeper` sends
/// `call started` when its call is under way).
pub struct Marker {
    listener: TcpListener,
    address: String,
}

impl Marker {
    /// Listens on a free loopback port.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the marker");
        let address = listener
            .local_addr()
            .expect("the marker's address")
            .to_string();
        Self { listener, address }
    }

    /// `127.0.0.1:PORT`, what the module connects to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The next line a module sends.
    ///
    /// # Panics
    ///
    /// If no module connects and sends a line within [`PYTHON_TIMEOUT`].
    pub async fn line(&self) -> String {
        let received = async {
            let (stream, _) = self.listener.accept().await?;
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).await?;
            Ok::<_, std::io::Error>(line.trim_end().to_owned())
        };
        match tokio::time::timeout(PYTHON_TIMEOUT, received).await {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("the marker at {} failed: {e}", self.address),
            Err(_) => panic!(
                "no module reported to the marker at {} within {PYTHON_TIMEOUT:?}",
                self.address
            ),
        }
    }
}

/// The `tracing` events of dspex that contain a given text, as one line each (the message,
/// then `field=value` pairs), from the moment [`LogEvents::containing`] is called.
///
/// The first call installs a global subscriber for the test binary that records events of
/// targets starting with `dspex`.
pub struct LogEvents {
    rx: mpsc::UnboundedReceiver<String>,
    needle: String,
}

impl LogEvents {
    /// Events whose line contains `needle` (a path, a pid, a message).
    ///
    /// # Panics
    ///
    /// If another global `tracing` subscriber is installed in the test binary.
    pub fn containing(needle: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        capture()
            .listeners
            .lock()
            .expect("the listeners' lock")
            .push((needle.to_owned(), tx));
        Self {
            rx,
            needle: needle.to_owned(),
        }
    }

    /// The next event that also contains `text`; the events before it are skipped.
    ///
    /// # Panics
    ///
    /// If none arrives within [`PYTHON_TIMEOUT`].
    pub async fn next_with(&mut self, text: &str) -> String {
        let found = async {
            while let Some(line) = self.rx.recv().await {
                if line.contains(text) {
                    return Some(line);
                }
            }
            None
        };
        match tokio::time::timeout(PYTHON_TIMEOUT, found).await {
            Ok(Some(line)) => line,
            _ => panic!(
                "no event with `{text}` about `{}` within {PYTHON_TIMEOUT:?}",
                self.needle
            ),
        }
    }
}

/// The global subscriber: forwards each dspex event to the listeners whose text it contains.
#[derive(Default)]
struct Capture {
    listeners: Mutex<Vec<(String, mpsc::UnboundedSender<String>)>>,
}

fn capture() -> &'static Arc<Capture> {
    static CAPTURE: OnceLock<Arc<Capture>> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Arc::new(Capture::default());
        tracing::subscriber::set_global_default(Forward(Arc::clone(&capture)))
            .expect("no other global tracing subscriber in the test binary");
        capture
    })
}

struct Forward(Arc<Capture>);

impl Subscriber for Forward {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("dspex")
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let Ok(mut listeners) = self.0.listeners.lock() else {
            return;
        };
        listeners.retain(|(_, tx)| !tx.is_closed());
        for (needle, tx) in listeners.iter() {
            if line.0.contains(needle.as_str()) {
                let _ = tx.send(line.0.clone());
            }
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event as one line: the message, then `field=value` pairs.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}
