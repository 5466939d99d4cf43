//! The file study: a journal of JSON lines, the study's header first, then one line per change
//! of a trial (its whole record). Every operation locks the file (an exclusive `flock` for a
//! change, a shared one for a read), catches up with the lines other processes appended, and
//! appends what it changed, so that processes on one host share the study. Over a network
//! file system, whose locks may not hold, use a Redis study.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::PathBuf;

use parking_lot::Mutex;

use super::state::StudyState;
use super::{Ask, Asked, Backend, Outcome, Record, now_ms};
use crate::error::{Error, Result};

/// The file study.
pub(crate) struct FileBackend {
    path: PathBuf,
    /// This process's replay of the journal, and how far into the file it got (bytes, lines).
    replay: Mutex<Replay>,
}

#[derive(Default)]
struct Replay {
    state: StudyState,
    offset: u64,
    lines: usize,
}

impl FileBackend {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            replay: Mutex::new(Replay::default()),
        }
    }

    fn failed(&self, what: &str, e: &std::io::Error) -> Error {
        Error::tuning(format!(
            "cannot {what} the study file {}: {e}",
            self.path.display()
        ))
    }

    /// Opens the file (`create`: creating it if absent; else `None` when absent), locks it
    /// (exclusively for `write`), catches up with its lines, runs `f` on the state; then
    /// appends the records `f` names as changed (and `header`, for a new file).
    fn with<T>(
        &self,
        create: bool,
        write: bool,
        f: impl FnOnce(&mut StudyState) -> (T, Vec<usize>),
    ) -> Result<Option<T>> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .open(&self.path);
        let mut file = match file {
            Ok(file) => file,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.failed("open", &e)),
        };
        if write {
            file.lock()
        } else {
            file.lock_shared()
        }
        .map_err(|e| self.failed("lock", &e))?;
        let mut replay = self.replay.lock();
        self.catch_up(&mut file, &mut replay)?;
        let header_before = replay.state.header.is_some();
        let (answer, changed) = f(&mut replay.state);
        let mut text = String::new();
        if !header_before && let Some(header) = &replay.state.header {
            text.push_str(header);
            text.push('\n');
        }
        for n in changed {
            if let Some(record) = replay.state.record(n) {
                // Only strings and numbers: serializing cannot fail.
                text.push_str(&serde_json::to_string(record).unwrap_or_default());
                text.push('\n');
            }
        }
        if !text.is_empty() {
            file.write_all(text.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|e| self.failed("write", &e))?;
            replay.offset += text.len() as u64;
            replay.lines += text.lines().count();
        }
        Ok(Some(answer))
    }

    /// Reads the lines appended since this process last read the file.
    fn catch_up(&self, file: &mut File, replay: &mut Replay) -> Result<()> {
        file.seek(SeekFrom::Start(replay.offset))
            .map_err(|e| self.failed("read", &e))?;
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .map_err(|e| self.failed("read", &e))?;
            if read == 0 || !line.ends_with('\n') {
                // The end, or a line whose writer died before finishing it: ignored until whole.
                return Ok(());
            }
            let number = replay.lines + 1;
            let location = format!("{} line {number}", self.path.display());
            if replay.state.header.is_none() {
                // The first line is the header, checked by whoever opens the study.
                replay.state.header = Some(line.trim_end().to_owned());
            } else {
                let record: Record = serde_json::from_str(&line).map_err(|e| {
                    Error::tuning(format!("the study record at {location} is corrupt: {e}"))
                })?;
                if record.number > replay.state.len() {
                    return Err(Error::tuning(format!(
                        "the study record at {location} is corrupt: trial {} follows trial {}",
                        record.number,
                        replay.state.len().saturating_sub(1)
                    )));
                }
                replay.state.put(record);
            }
            replay.offset += read as u64;
            replay.lines += 1;
        }
    }

    fn absent(&self) -> Error {
        Error::tuning(format!(
            "the study file {} does not exist",
            self.path.display()
        ))
    }
}

impl Backend for FileBackend {
    fn describe(&self) -> String {
        format!("study file `{}`", self.path.display())
    }

    fn blocking(&self) -> bool {
        true
    }

    fn location(&self, n: usize) -> String {
        format!("{} (trial {n})", self.path.display())
    }

    fn header_location(&self) -> String {
        format!("{} line 1", self.path.display())
    }

    fn open(&self, header: &str) -> Result<Option<String>> {
        let before = self.with(true, true, |state| {
            let before = state.header.clone();
            if before.is_none() {
                state.header = Some(header.to_owned());
            }
            (before, Vec::new())
        })?;
        Ok(before.flatten())
    }

    fn header(&self) -> Result<Option<String>> {
        Ok(self
            .with(false, false, |state| (state.header.clone(), Vec::new()))?
            .flatten())
    }

    fn read(&self, cursor: u64) -> Result<(Vec<Record>, u64)> {
        Ok(self
            .with(false, false, |state| (state.since(cursor), Vec::new()))?
            .unwrap_or((Vec::new(), cursor)))
    }

    fn ask(&self, ask: &Ask) -> Result<Asked> {
        self.with(false, true, |state| state.ask(ask, now_ms()))?
            .ok_or_else(|| self.absent())
    }

    fn tell(&self, number: usize, owner: &str, outcome: &Outcome) -> Result<bool> {
        self.with(false, true, |state| {
            let told = state.tell(number, owner, outcome);
            (told, if told { vec![number] } else { Vec::new() })
        })?
        .ok_or_else(|| self.absent())
    }

    fn renew(&self, numbers: &[usize], owner: &str, lease_ms: u64) -> Result<()> {
        self.with(false, true, |state| {
            ((), state.renew(numbers, owner, now_ms() + lease_ms))
        })?
        .ok_or_else(|| self.absent())
    }
}
