//! The writer thread: drains the channel, formats into one buffer, writes it in batches.
//!
//! It polls the channel (every 2 ms while records flow) rather than waiting on it, so that a
//! sender never has to wake it: a request's send is a few atomics, never a system call. After
//! 100 ms without records it blocks on the channel until the next one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::mpsc::{self, TryRecvError};

use super::format::Formatter;
use super::{Format, Msg, Shared};

/// Bytes buffered before a write even while records keep coming.
const FLUSH_AT: usize = 64 * 1024;
/// Pause between polls of an empty channel.
const POLL: Duration = Duration::from_millis(2);
/// Empty polls before the writer blocks on the channel.
const IDLE_POLLS: u32 = 50;
/// How often a file destination checks that its path still names the open file.
const ROTATION_CHECK: Duration = Duration::from_secs(1);

/// Where the writer writes.
pub(super) enum Sink {
    Stdout,
    Custom(Box<dyn Write + Send>),
    File(FileSink),
}

pub(super) struct FileSink {
    path: PathBuf,
    file: File,
    checked: Instant,
}

impl Sink {
    /// A file opened for appending.
    pub fn file(path: PathBuf) -> io::Result<Sink> {
        let file = open(&path)?;
        Ok(Sink::File(FileSink {
            path,
            file,
            checked: Instant::now(),
        }))
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            Sink::Custom(w) => {
                w.write_all(buf)?;
                w.flush()
            }
            Sink::File(f) => f.file.write_all(buf),
        }
    }

    /// Reopens a file destination: on request, or when its path names another file (or none).
    fn reopen(&mut self, forced: bool) {
        let Sink::File(f) = self else {
            return;
        };
        if !forced {
            if f.checked.elapsed() < ROTATION_CHECK {
                return;
            }
            f.checked = Instant::now();
            if same_file(f) {
                return;
            }
        }
        match open(&f.path) {
            Ok(file) => f.file = file,
            Err(e) => tracing::warn!("access log {}: cannot reopen: {e}", f.path.display()),
        }
    }
}

fn open(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(unix)]
fn same_file(f: &FileSink) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(&f.path), f.file.metadata()) {
        (Ok(at_path), Ok(open)) => at_path.dev() == open.dev() && at_path.ino() == open.ino(),
        // Nothing at the path any more: reopen creates it.
        (Err(_), _) => false,
        (_, Err(_)) => true,
    }
}

#[cfg(not(unix))]
fn same_file(_: &FileSink) -> bool {
    true
}

/// The writer thread's state.
pub(super) struct Writer {
    sink: Sink,
    formatter: Formatter,
    rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    reported_drops: u64,
    last_report: Option<Instant>,
}

impl Writer {
    pub fn new(sink: Sink, format: Format, rx: mpsc::Receiver<Msg>, shared: Arc<Shared>) -> Writer {
        Writer {
            sink,
            formatter: Formatter::new(format),
            rx,
            shared,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            reported_drops: 0,
            last_report: None,
        }
    }

    /// Runs until every sender is gone, then writes what is left.
    pub fn run(mut self) {
        let mut idle = 0;
        loop {
            match self.rx.try_recv() {
                Ok(msg) => {
                    idle = 0;
                    self.take(msg);
                    if self.buf.len() >= FLUSH_AT {
                        self.flush();
                    }
                }
                Err(TryRecvError::Empty) => {
                    self.flush();
                    if idle < IDLE_POLLS {
                        idle += 1;
                        std::thread::sleep(POLL);
                        continue;
                    }
                    match self.rx.recv() {
                        Ok(msg) => {
                            idle = 0;
                            self.take(msg);
                        }
                        Err(mpsc::RecvError) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
        self.flush();
    }

    fn take(&mut self, msg: Msg) {
        // Formatted where it lies: a record is large, and moving it out would copy it.
        if let Msg::Record(record) = &msg {
            self.formatter.write(&mut self.buf, record);
            return;
        }
        match msg {
            Msg::Record(_) => {}
            // The reopen flag is read at the next flush, which follows at once.
            Msg::Reopen => {}
            Msg::Flush(done) => {
                self.flush();
                let _ = done.send(());
            }
        }
    }

    fn flush(&mut self) {
        let forced = self.shared.reopen.swap(false, Ordering::AcqRel);
        if forced || !self.buf.is_empty() {
            self.sink.reopen(forced);
        }
        if !self.buf.is_empty() {
            if let Err(e) = self.sink.write(&self.buf) {
                tracing::warn!(
                    "access log: write failed, {} bytes lost: {e}",
                    self.buf.len()
                );
            }
            self.buf.clear();
        }
        self.report_drops();
    }

    /// Warns about dropped records, at most every 10 seconds.
    fn report_drops(&mut self) {
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        if dropped == self.reported_drops
            || self
                .last_report
                .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        tracing::warn!(
            "access log: {} records dropped (writer behind), {dropped} in all",
            dropped - self.reported_drops
        );
        self.reported_drops = dropped;
        self.last_report = Some(Instant::now());
    }
}
