//! Replies read as they arrive: [`ReplyStream`] reads `ChatAdapter`'s `[[ ## field ## ]]`
//! sections from text deltas and hands out the text of each `str` output field as soon as it
//! is certain, with [`parse_reply`](super::parse_reply)'s rules (one source: the marker and
//! section rules of the chat module), and, with the `lm` feature, an OpenAI-compatible stream
//! of server-sent events read into text deltas.

use dspex_core::{FieldType, Signature};

use super::chat::{LineStart, line_start, section_start};
#[cfg(feature = "lm")]
use super::chunk_scan::{Usage, parse_chunk, scan_chunk};

/// Text of one output field, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChunk {
    /// The output field.
    pub field: String,
    /// The next piece of its text.
    pub text: String,
}

/// Reads a `ChatAdapter` reply delta by delta. A chunk holds text of one `str` output field
/// (`reasoning` included) and nothing else: no marker, and no text that may still turn out to
/// be one (a line is held back while it may be a `[[ ## field ## ]]` marker); leading and
/// trailing whitespace of a field is held back as [`parse_reply`](super::parse_reply) trims
/// it, so the chunks of a field, concatenated, equal the field's text in the parsed reply.
/// Other output types are read from the whole reply only.
///
/// ```
/// use dspex::lm::ReplyStream;
/// use dspex::Signature;
///
/// let sig: Signature = "question -> answer".parse()?;
/// let mut reply = ReplyStream::new(&sig);
/// let mut text = String::new();
/// for delta in ["[[ ## ans", "wer ## ]]\nPar", "is\n\n[[ ## comp", "leted ## ]]"] {
///     for chunk in reply.push(delta) {
///         assert_eq!(chunk.field, "answer");
///         text.push_str(&chunk.text);
///     }
/// }
/// reply.finish();
/// assert_eq!(text, "Paris");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReplyStream<'s> {
    signature: &'s Signature,
    /// Everything received.
    reply: String,
    /// Where the current line starts in `reply`.
    line: usize,
    /// What the current line is, as far as known.
    kind: LineStart,
    /// How much of the current line (a text line) was read already.
    read: usize,
    /// The last line ended with `\r`: a `\n` right after it ends no other line.
    after_cr: bool,
    /// The output fields whose section came already (a later section is ignored).
    seen: Vec<bool>,
    section: Section,
}

/// The section being read.
#[derive(Debug)]
enum Section {
    /// Text of no streamed field (before the first marker, another output type, an unknown or
    /// repeated field).
    Skipped,
    /// A `str` output field.
    Field {
        name: String,
        /// Whether text other than whitespace came.
        started: bool,
        /// Whitespace held back: it is handed out only if text follows.
        held: String,
    },
}

impl<'s> ReplyStream<'s> {
    /// A reader of a reply to a prompt for `signature` (with `reasoning` among its outputs
    /// for a `ChainOfThought`).
    pub fn new(signature: &'s Signature) -> Self {
        Self {
            signature,
            reply: String::new(),
            line: 0,
            kind: LineStart::Undecided,
            read: 0,
            after_cr: false,
            seen: vec![false; signature.outputs.len()],
            section: Section::Skipped,
        }
    }

    /// The reply received so far.
    pub fn text(&self) -> &str {
        &self.reply
    }

    /// Takes the next delta; the field text that became certain.
    pub fn push(&mut self, delta: &str) -> Vec<FieldChunk> {
        let mut chunks = Vec::new();
        let mut at = self.reply.len();
        self.reply.push_str(delta);
        while at < self.reply.len() {
            if self.after_cr {
                self.after_cr = false;
                if self.reply[at..].starts_with('\n') {
                    at += 1;
                    self.line = at;
                    continue;
                }
            }
            let mut breaks = self.reply.as_bytes()[at..].iter();
            match breaks.position(|&b| b == b'\n' || b == b'\r') {
                Some(offset) => {
                    let end = at + offset;
                    self.after_cr = self.reply[end..].starts_with('\r');
                    self.end_line(end, &mut chunks);
                    at = end + 1;
                    self.line = at;
                    self.read = at;
                    self.kind = LineStart::Undecided;
                }
                None => {
                    self.partial_line(&mut chunks);
                    at = self.reply.len();
                }
            }
        }
        chunks
    }

    /// Ends the reply: the last line, if it had no line break, is read; trailing whitespace
    /// stays held back.
    pub fn finish(&mut self) -> Vec<FieldChunk> {
        let mut chunks = Vec::new();
        if self.line < self.reply.len() {
            let end = self.reply.len();
            self.end_line(end, &mut chunks);
            self.line = end;
            self.read = end;
        }
        chunks
    }

    /// The current line, not complete yet: its text is handed out once it cannot be a marker.
    fn partial_line(&mut self, chunks: &mut Vec<FieldChunk>) {
        if self.kind == LineStart::Undecided {
            self.kind = line_start(&self.reply[self.line..]);
        }
        if self.kind == LineStart::Text {
            let end = self.reply.len();
            self.read_text(end, chunks);
        }
    }

    /// The current line ends at `end` (its break excluded).
    fn end_line(&mut self, end: usize, chunks: &mut Vec<FieldChunk>) {
        let start = self.line;
        if self.kind != LineStart::Text
            && let Some((name, rest)) = section_start(&self.reply[start..end])
        {
            let (name, rest) = (name.to_owned(), rest.to_owned());
            self.open_section(&name);
            self.section.feed(&rest, chunks);
        } else {
            self.read_text(end, chunks);
        }
        // A line break between two lines of a field; leading and trailing ones are held back.
        self.section.feed("\n", chunks);
    }

    fn read_text(&mut self, end: usize, chunks: &mut Vec<FieldChunk>) {
        let from = self.read.max(self.line);
        if from < end {
            self.section.feed(&self.reply[from..end], chunks);
        }
        self.read = end;
    }

    fn open_section(&mut self, name: &str) {
        self.section = Section::Skipped;
        let Some(index) = self.signature.outputs.iter().position(|f| f.name == name) else {
            return;
        };
        if std::mem::replace(&mut self.seen[index], true) {
            return;
        }
        if self.signature.outputs[index].ty == FieldType::Str {
            self.section = Section::Field {
                name: name.to_owned(),
                started: false,
                held: String::new(),
            };
        }
    }
}

impl Section {
    /// Text of the section, whitespace held back as `trim` needs.
    fn feed(&mut self, text: &str, chunks: &mut Vec<FieldChunk>) {
        let Section::Field {
            name,
            started,
            held,
        } = self
        else {
            return;
        };
        // The text up to its trailing whitespace goes out (after what was held, if any text
        // came before it); the trailing whitespace is held.
        let body = text.trim_end();
        let body = if *started { body } else { body.trim_start() };
        if body.is_empty() {
            if *started {
                held.push_str(text);
            }
            return;
        }
        *started = true;
        let out = match chunks.last_mut() {
            Some(last) if last.field == *name => &mut last.text,
            _ => {
                chunks.push(FieldChunk {
                    field: name.clone(),
                    text: String::new(),
                });
                let last = chunks.len() - 1;
                &mut chunks[last].text
            }
        };
        out.push_str(held);
        held.clear();
        out.push_str(body);
        held.push_str(&text[text.trim_end().len()..]);
    }
}

/// Why a stream of server-sent events is not a chat completion.
#[cfg(feature = "lm")]
#[derive(Debug)]
pub(super) enum SseError {
    /// More than [`MAX_LM_REPLY_BYTES`](super::MAX_LM_REPLY_BYTES) bytes.
    TooLong,
    /// An event whose data is no chunk of a chat completion: the data (bounded) and why.
    Malformed(String, String),
    /// The stream ended before `data: [DONE]` or a finished choice.
    EndedEarly,
}

#[cfg(feature = "lm")]
impl SseError {
    /// The error of a stream from `url`, quoting at most
    /// [`MAX_REPLY_EXCERPT_CHARS`](super::MAX_REPLY_EXCERPT_CHARS) of what it sent.
    pub(super) fn into_error(self, url: &str, text: &str) -> crate::error::Error {
        use super::chat::reply_excerpt;
        crate::error::Error::lm(match self {
            SseError::TooLong => format!(
                "{url} streamed more than {} bytes (MAX_LM_REPLY_BYTES)",
                super::MAX_LM_REPLY_BYTES
            ),
            SseError::Malformed(data, why) => format!(
                "{url} streamed an event that is no chat completion chunk ({why}): {}",
                reply_excerpt(&data)
            ),
            SseError::EndedEarly => format!(
                "{url} ended its stream before `data: [DONE]`; the reply so far: {}",
                reply_excerpt(text)
            ),
        })
    }
}

/// Reads an OpenAI-compatible stream of server-sent events (`data: {chunk}` events, then
/// `data: [DONE]`) into the text of the first choice and the usage of the final chunk. Each
/// event is read from the bytes as they came, into buffers that are reused, by a scanner of
/// just the delta's text and the usage (serde_json reads what the scanner does not vouch
/// for): reading an event allocates nothing.
#[cfg(feature = "lm")]
#[derive(Debug, Default)]
pub(super) struct SseReader {
    /// Bytes of a line not complete yet.
    line: Vec<u8>,
    /// The data lines of the event being read.
    data: String,
    /// Bytes read in all.
    read: usize,
    done: bool,
    /// Usage, from the chunk that reported it.
    pub(super) usage: Option<Usage>,
}

#[cfg(feature = "lm")]
impl SseReader {
    /// Reads `bytes`, appending the text deltas of the first choice in the events they end to
    /// `text`.
    pub(super) fn push(&mut self, bytes: &[u8], text: &mut String) -> Result<(), SseError> {
        self.read += bytes.len();
        if self.read > super::MAX_LM_REPLY_BYTES {
            return Err(SseError::TooLong);
        }
        let mut rest = bytes;
        while let Some(at) = memchr::memchr(b'\n', rest) {
            let (head, tail) = (&rest[..at], &rest[at + 1..]);
            rest = tail;
            if self.line.is_empty() {
                self.read_line(head, text)?;
            } else {
                // The line began in an earlier read: read it whole, and keep the buffer.
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let read = self.read_line(&line, text);
                line.clear();
                self.line = line;
                read?;
            }
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn read_line(&mut self, line: &[u8], text: &mut String) -> Result<(), SseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.data.is_empty() {
                return Ok(());
            }
            let data = std::mem::take(&mut self.data);
            let read = self.read_event(&data, text);
            self.data = data;
            self.data.clear();
            return read;
        }
        let Some(value) = line.strip_prefix(b"data:") else {
            // Comments (`:`), `event:`, `id:` and `retry:` say nothing of the completion.
            return Ok(());
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let value = std::str::from_utf8(value).map_err(|e| {
            SseError::Malformed(String::from_utf8_lossy(value).into_owned(), e.to_string())
        })?;
        if !self.data.is_empty() {
            self.data.push('\n');
        }
        self.data.push_str(value);
        Ok(())
    }

    fn read_event(&mut self, data: &str, text: &mut String) -> Result<(), SseError> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        // Most chunks are read by the scanner; what it does not vouch for, by serde_json.
        let usage = match scan_chunk(data, text) {
            Some(usage) => usage,
            None => {
                parse_chunk(data, text).map_err(|(data, why)| SseError::Malformed(data, why))?
            }
        };
        if usage.is_some() {
            self.usage = usage;
        }
        Ok(())
    }

    /// The stream ended: an error unless it said `[DONE]`.
    pub(super) fn end(&mut self, text: &mut String) -> Result<(), SseError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.read_line(&line, text)?;
        }
        self.read_line(&[], text)?;
        if self.done {
            Ok(())
        } else {
            Err(SseError::EndedEarly)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::parse_reply;
    use proptest::prelude::*;

    fn streamed(signature: &Signature, deltas: &[&str]) -> Vec<FieldChunk> {
        let mut reader = ReplyStream::new(signature);
        let mut chunks = Vec::new();
        for delta in deltas {
            chunks.extend(reader.push(delta));
        }
        chunks.extend(reader.finish());
        chunks
    }

    fn joined(chunks: &[FieldChunk], field: &str) -> String {
        chunks
            .iter()
            .filter(|c| c.field == field)
            .map(|c| c.text.as_str())
            .collect()
    }

    /// The reply cut at `cuts` (byte offsets, at character boundaries).
    fn split_at<'r>(reply: &'r str, cuts: &[usize]) -> Vec<&'r str> {
        let mut cuts: Vec<usize> = cuts
            .iter()
            .map(|&c| c % (reply.len() + 1))
            .filter(|&c| reply.is_char_boundary(c))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut parts = Vec::new();
        let mut from = 0;
        for cut in cuts {
            parts.push(&reply[from..cut]);
            from = cut;
        }
        parts.push(&reply[from..]);
        parts
    }

    const REPLIES: [&str; 6] = [
        "[[ ## reasoning ## ]]\nIt is [[ the capital ]].\n[[ ## x\n\n[[ ## answer ## ]]\nParis\n\n[[ ## n ## ]]\n3\n\n[[ ## completed ## ]]\n",
        "  [[ ## answer ## ]] inline  \n  second line \r\nthird\r[[ ## reasoning ## ]]\r\n\r\nwhy\n\n[[ ## n ## ]] 4",
        "preamble [[ ## answer ## ]]\n[[ ## answer ## ]]\nA\n[[ ## reasoning ## ]]r\n[[ ## answer ## ]]\nignored\n[[ ## n ## ]]\n1",
        "[[ ## answer ## ]]\n[[ ## n ## ]]\n2\n[[ ## reasoning ## ]]\n [[ ## not a marker\n[[ ##  ## ]] x\n[[ ## é_1 ## ]]",
        "[[ ## n ## ]]\n5\n[[ ## answer ## ]]\n«quoted» ünïcode\n\n\n[[ ## reasoning ## ]]\n#[[ ## ]]\n[[ ## reason ## ]x\n",
        "[[ ## reasoning ## ]]\n\n[[ ## answer ## ]]\n\n\n[[ ## n ## ]]\n0",
    ];

    fn signature() -> Signature {
        "question -> reasoning, answer, n: int".parse().unwrap()
    }

    #[test]
    fn markers_split_anywhere_never_leak_and_chunks_join_to_the_parsed_text() {
        let sig = signature();
        for reply in REPLIES {
            let parsed = parse_reply(&sig, reply).unwrap();
            for cut in 0..=reply.len() {
                if !reply.is_char_boundary(cut) {
                    continue;
                }
                let chunks = streamed(&sig, &[&reply[..cut], &reply[cut..]]);
                for field in ["reasoning", "answer"] {
                    assert_eq!(
                        joined(&chunks, field),
                        parsed.get::<&str>(field).unwrap(),
                        "{field} of {reply:?} cut at {cut}"
                    );
                }
                assert!(chunks.iter().all(|c| c.field != "n" && !c.text.is_empty()));
            }
        }
    }

    #[test]
    fn a_chunk_comes_as_soon_as_a_line_cannot_be_a_marker() {
        let sig = signature();
        let mut reader = ReplyStream::new(&sig);
        assert!(reader.push("[[ ## answer ## ]]\n[[ #").is_empty());
        assert!(reader.push("# x").is_empty());
        let chunks = reader.push(" y");
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "[[ ## x y");
        assert_eq!(reader.push(" and more  ")[0].text, " and more");
        assert!(reader.push("\n\n").is_empty());
        assert_eq!(reader.push("z")[0].text, "  \n\nz");
    }

    proptest! {
        #[test]
        fn no_split_of_any_reply_leaks_a_marker(
            which in 0..REPLIES.len(),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let sig = signature();
            let reply = REPLIES[which];
            let parsed = parse_reply(&sig, reply).unwrap();
            let chunks = streamed(&sig, &split_at(reply, &cuts));
            for chunk in &chunks {
                prop_assert!(!chunk.text.contains("[[ ## answer")
                    && !chunk.text.contains("[[ ## reasoning")
                    && !chunk.text.contains("[[ ## completed")
                    && !chunk.text.contains("[[ ## n ##"), "{:?}", chunk);
            }
            for field in ["reasoning", "answer"] {
                prop_assert_eq!(joined(&chunks, field), parsed.get::<&str>(field).unwrap());
            }
        }

        #[test]
        fn generated_replies_stream_to_their_parsed_text(
            reasoning in "[a-z \\[\\]#\n]{0,40}",
            answer in "[A-Za-z \\[\\]#\r\n]{0,40}",
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let sig = signature();
            let reply = format!(
                "[[ ## reasoning ## ]]\n{reasoning}\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## n ## ]]\n1\n\n[[ ## completed ## ]]"
            );
            let Ok(parsed) = parse_reply(&sig, &reply) else { return Ok(()) };
            let chunks = streamed(&sig, &split_at(&reply, &cuts));
            for field in ["reasoning", "answer"] {
                prop_assert_eq!(joined(&chunks, field), parsed.get::<&str>(field).unwrap());
            }
            for chunk in &chunks {
                prop_assert!(!chunk.text.contains("[[ ## n ## ]]") && !chunk.text.contains("[[ ## completed ## ]]"));
            }
        }
    }
}
