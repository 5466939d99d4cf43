//! Recorded LM traffic: [`LmConfig::record`](super::LmConfig::record) appends each request and
//! reply as one JSON line, [`LmConfig::replay`](super::LmConfig::replay) answers from such a
//! file.
//!
//! A line is `{"lane": "native" | "python", "request": {...}, "reply": {...}}`. The request is
//! what the program asked for, not what the configuration adds to it: the model the call bound
//! (`null` for the configuration's), the messages, and the settings the call bound
//! (`temperature`, `max_tokens`, ...). So a file recorded against one endpoint replays whatever
//! the replaying configuration's defaults are. The reply is the text of the first choice and
//! the token usage reported.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

/// The largest file [`LmConfig::replay`](super::LmConfig::replay) reads.
pub const MAX_LM_TAPE_BYTES: u64 = 256 * 1024 * 1024;

/// The longest line of a recording: [`LmConfig::record`](super::LmConfig::record) refuses to
/// write a longer one and [`LmConfig::replay`](super::LmConfig::replay) to read one.
pub const MAX_LM_TAPE_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The most exchanges [`LmConfig::replay`](super::LmConfig::replay) reads from one file.
pub const MAX_LM_TAPE_ENTRIES: usize = 100_000;

/// Where a configuration's LM traffic goes or comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tape {
    /// Every exchange is appended to the file.
    Record(PathBuf),
    /// Every request is answered from the file.
    Replay(PathBuf),
    /// `record` or `replay` wrapped in `record`: an error when the configuration is checked.
    Nested,
}

/// Which lane made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Lane {
    Native,
    Python,
}

/// A recorded reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TapeReply {
    pub(crate) text: String,
    #[serde(default)]
    pub(crate) prompt_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) completion_tokens: Option<u64>,
}

/// One line of a recording.
#[derive(Debug, Serialize, Deserialize)]
struct Exchange {
    lane: Lane,
    request: Json,
    reply: TapeReply,
}

/// The request of a native call as a recording keys it.
pub(crate) fn recorded_request(
    model: Option<&str>,
    messages: &Json,
    settings: Map<String, Json>,
) -> Json {
    serde_json::json!({"model": model, "messages": messages, "settings": settings})
}

/// The form two requests are compared in: the JSON text of the request after one trip through
/// JSON text, so that a request read from a file and one made live compare alike.
fn request_key(request: &Json) -> String {
    let text = request.to_string();
    serde_json::from_str::<Json>(&text).map_or(text, |v| v.to_string())
}

/// A file being recorded to.
#[derive(Debug)]
pub(crate) struct Recorder {
    path: PathBuf,
    file: Mutex<File>,
}

impl Recorder {
    /// Opens (creates) `path` for appending; an error names the file.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::lm_with(
                    format!(
                        "cannot open the LM recording {} for appending",
                        path.display()
                    ),
                    e,
                )
            })?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Appends one exchange as one line (one write, so that processes appending to the same
    /// file do not interleave lines).
    pub(crate) fn append(&self, lane: Lane, request: Json, reply: TapeReply) -> Result<()> {
        let exchange = Exchange {
            lane,
            request,
            reply,
        };
        let mut line = serde_json::to_vec(&exchange)
            .map_err(|e| Error::lm_with("cannot encode an LM exchange", e))?;
        if line.len() > MAX_LM_TAPE_LINE_BYTES {
            return Err(Error::lm(format!(
                "an LM exchange of {} bytes is over the limit of {MAX_LM_TAPE_LINE_BYTES} bytes (MAX_LM_TAPE_LINE_BYTES) for one line of {}",
                line.len(),
                self.path.display()
            )));
        }
        line.push(b'\n');
        self.file.lock().write_all(&line).map_err(|e| {
            Error::lm_with(
                format!("cannot append to the LM recording {}", self.path.display()),
                e,
            )
        })
    }
}

/// A recording being replayed: the replies of each request, in the order they were recorded.
#[derive(Debug)]
pub(crate) struct Player {
    path: PathBuf,
    replies: Mutex<HashMap<String, Replies>>,
}

#[derive(Debug)]
struct Replies {
    recorded: Vec<TapeReply>,
    next: usize,
}

impl Player {
    /// Reads `path`; an error names the file, and the line if one is truncated, corrupt or
    /// too long.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let file_error = |what: &str, e: std::io::Error| {
            Error::lm_with(
                format!("cannot {what} the LM recording {}", path.display()),
                e,
            )
        };
        let file = File::open(path).map_err(|e| file_error("open", e))?;
        let size = file.metadata().map_err(|e| file_error("read", e))?.len();
        if size > MAX_LM_TAPE_BYTES {
            return Err(Error::lm(format!(
                "the LM recording {} takes {size} bytes, over the limit of {MAX_LM_TAPE_BYTES} (MAX_LM_TAPE_BYTES)",
                path.display()
            )));
        }
        let mut reader = BufReader::new(file);
        let mut replies: HashMap<String, Replies> = HashMap::new();
        let mut line = Vec::new();
        let mut entries = 0usize;
        for number in 1.. {
            line.clear();
            let limit = u64::try_from(MAX_LM_TAPE_LINE_BYTES + 1).unwrap_or(u64::MAX);
            let read = (&mut reader)
                .take(limit)
                .read_until(b'\n', &mut line)
                .map_err(|e| file_error("read", e))?;
            if read == 0 {
                break;
            }
            let at = |problem: String| {
                Error::lm(format!(
                    "the LM recording {} line {number}: {problem}",
                    path.display()
                ))
            };
            if line.last() != Some(&b'\n') {
                return Err(at(if line.len() > MAX_LM_TAPE_LINE_BYTES {
                    format!("longer than {MAX_LM_TAPE_LINE_BYTES} bytes (MAX_LM_TAPE_LINE_BYTES)")
                } else {
                    "truncated (no end of line)".to_owned()
                }));
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            entries += 1;
            if entries > MAX_LM_TAPE_ENTRIES {
                return Err(at(format!(
                    "more than {MAX_LM_TAPE_ENTRIES} exchanges (MAX_LM_TAPE_ENTRIES)"
                )));
            }
            let exchange: Exchange = serde_json::from_slice(&line).map_err(|e| {
                at(format!(
                    "no recorded exchange ({e}): {}",
                    dspex_core::excerpt(&String::from_utf8_lossy(&line))
                ))
            })?;
            replies
                .entry(request_key(&exchange.request))
                .or_insert_with(|| Replies {
                    recorded: Vec::new(),
                    next: 0,
                })
                .recorded
                .push(exchange.reply);
        }
        Ok(Self {
            path: path.to_owned(),
            replies: Mutex::new(replies),
        })
    }

    /// The reply to `request`: the recorded replies of an equal request in the order they were
    /// recorded, the last one again once they are used up; an error naming the file and the
    /// request when none was recorded.
    pub(crate) fn reply(&self, request: &Json) -> Result<TapeReply> {
        let mut replies = self.replies.lock();
        let Some(found) = replies.get_mut(&request_key(request)) else {
            return Err(Error::lm(format!(
                "the LM recording {} holds no reply to the request {}",
                self.path.display(),
                describe(request)
            )));
        };
        let reply = found.recorded[found.next.min(found.recorded.len() - 1)].clone();
        found.next += 1;
        Ok(reply)
    }
}

/// A request as an error shows it: its model, its settings and the start of its last message.
fn describe(request: &Json) -> String {
    let model = match request.get("model") {
        Some(Json::String(model)) => format!("`{model}`"),
        _ => "(the configuration's)".to_owned(),
    };
    let settings = request
        .get("settings")
        .map_or_else(String::new, Json::to_string);
    let last = request
        .get("messages")
        .and_then(Json::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .and_then(Json::as_str)
        .unwrap_or("");
    format!(
        "(model {model}, settings {settings}, last message {:?})",
        dspex_core::excerpt(last)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("dspex-tape-{}-{name}.jsonl", std::process::id()))
    }

    fn request(text: &str) -> Json {
        recorded_request(
            None,
            &serde_json::json!([{"role": "user", "content": text}]),
            Map::new(),
        )
    }

    fn reply(text: &str) -> TapeReply {
        TapeReply {
            text: text.to_owned(),
            prompt_tokens: Some(3),
            completion_tokens: None,
        }
    }

    #[test]
    fn replies_come_back_in_order_then_the_last_again() {
        let path = temp("order");
        let _ = std::fs::remove_file(&path);
        let recorder = Recorder::open(&path).unwrap();
        recorder
            .append(Lane::Native, request("a"), reply("1"))
            .unwrap();
        recorder
            .append(Lane::Native, request("a"), reply("2"))
            .unwrap();
        recorder
            .append(Lane::Python, request("b"), reply("3"))
            .unwrap();
        let player = Player::load(&path).unwrap();
        let texts: Vec<String> = (0..3)
            .map(|_| player.reply(&request("a")).unwrap().text)
            .collect();
        assert_eq!(texts, ["1", "2", "2"]);
        assert_eq!(player.reply(&request("b")).unwrap(), reply("3"));
        let err = player.reply(&request("c")).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("last message \"c\""), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_truncated_or_corrupt_line_is_named() {
        let path = temp("corrupt");
        let good = serde_json::to_string(&Exchange {
            lane: Lane::Native,
            request: request("a"),
            reply: reply("1"),
        })
        .unwrap();
        std::fs::write(&path, format!("{good}\n{}", &good[..good.len() / 2])).unwrap();
        let err = Player::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: truncated"), "{err}");
        std::fs::write(&path, format!("{good}\n\n{{\"lane\": 7}}\n")).unwrap();
        let err = Player::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 3: no recorded exchange"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = Player::load(&path).unwrap_err().to_string();
        assert!(err.contains("cannot open the LM recording"), "{err}");
    }

    #[test]
    fn the_line_bound_holds_at_and_over_its_limit() {
        let path = temp("line");
        let _ = std::fs::remove_file(&path);
        let recorder = Recorder::open(&path).unwrap();
        // The JSON around the text: the line without it.
        let frame = serde_json::to_vec(&Exchange {
            lane: Lane::Native,
            request: request("a"),
            reply: reply(""),
        })
        .unwrap()
        .len();
        let at = "x".repeat(MAX_LM_TAPE_LINE_BYTES - frame);
        recorder
            .append(Lane::Native, request("a"), reply(&at))
            .unwrap();
        let err = recorder
            .append(Lane::Native, request("b"), reply(&format!("{at}x")))
            .unwrap_err();
        assert!(err.to_string().contains("MAX_LM_TAPE_LINE_BYTES"), "{err}");
        assert_eq!(
            Player::load(&path)
                .unwrap()
                .reply(&request("a"))
                .unwrap()
                .text,
            at
        );
        // A line one byte longer, written by someone else, is refused on reading.
        let mut long = std::fs::read(&path).unwrap();
        long.pop();
        long.extend_from_slice(b" \n");
        std::fs::write(&path, &long).unwrap();
        let err = Player::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1: longer than"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_entry_and_size_bounds_hold_at_and_over_their_limits() {
        let path = temp("entries");
        let line = serde_json::to_string(&Exchange {
            lane: Lane::Native,
            request: request("a"),
            reply: reply("1"),
        })
        .unwrap();
        let mut text = format!("{line}\n").repeat(MAX_LM_TAPE_ENTRIES);
        std::fs::write(&path, &text).unwrap();
        assert!(Player::load(&path).is_ok());
        text.push_str(&line);
        text.push('\n');
        std::fs::write(&path, &text).unwrap();
        let err = Player::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("line {}", MAX_LM_TAPE_ENTRIES + 1))
                && err.contains("MAX_LM_TAPE_ENTRIES"),
            "{err}"
        );
        // Sparse files: the size is checked before anything is read.
        let file = File::create(&path).unwrap();
        file.set_len(MAX_LM_TAPE_BYTES + 1).unwrap();
        let err = Player::load(&path).unwrap_err().to_string();
        assert!(err.contains("MAX_LM_TAPE_BYTES"), "{err}");
        file.set_len(MAX_LM_TAPE_BYTES).unwrap();
        let err = Player::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1: longer than"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
