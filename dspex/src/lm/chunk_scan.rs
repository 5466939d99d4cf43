//! The JSON of one chunk of an OpenAI-compatible stream, read into the text of the deltas of
//! choice 0 and the usage: by a scanner, in one pass without building any value, and by
//! serde_json for what the scanner does not vouch for. The scanner accepts only
//! what it reads whole and gives up on anything else (an `error` key, a repeated key, an
//! escaped key, a lone surrogate, a number that is not a plain `u64`, deep nesting, bad JSON),
//! leaving the event to serde_json: what it accepts, it reads as serde_json does.

/// Values nested deeper than this are left to serde_json (whose own bound is 128).
pub(super) const MAX_SCAN_DEPTH: usize = 64;

/// Reads the chunk `data`, appending the delta text of choice 0 to `text`; the chunk's usage.
/// `None`, with `text` as it was, if the scanner cannot vouch for its reading.
pub(super) fn scan_chunk(data: &str, text: &mut String) -> Option<Option<Usage>> {
    let before = text.len();
    let mut scanner = Scanner {
        data,
        bytes: data.as_bytes(),
        at: 0,
    };
    let usage = scanner.chunk(text);
    if usage.is_none() {
        text.truncate(before);
    }
    usage
}

struct Scanner<'a> {
    data: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// Where the text of a string stops: the first `"`, `\\` or control character in `bytes`,
/// found eight bytes at a time.
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // A byte of `v` is flagged if it is below `n` (bytes above a flagged one may be flagged
    // too: the first flagged byte is exact).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let stops = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(at + rest)
}

/// Marks a key of an object as seen; `None` if it was already.
fn once(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

impl<'a> Scanner<'a> {
    fn chunk(&mut self, text: &mut String) -> Option<Option<Usage>> {
        let (mut choices, mut seen_usage, mut usage) = (false, false, None);
        self.object(|s, key| match key {
            b"choices" => {
                once(&mut choices)?;
                s.choices(text)
            }
            b"usage" => {
                once(&mut seen_usage)?;
                usage = s.usage()?;
                Some(())
            }
            // An error reported in the stream is serde_json's to read.
            b"error" => None,
            _ => s.skip(1),
        })?;
        self.space();
        (self.at == self.bytes.len()).then_some(usage)
    }

    fn choices(&mut self, text: &mut String) -> Option<()> {
        self.expect(b'[')?;
        self.items(b']', |s| s.choice(text))
    }

    /// A choice: its delta's text stays in `text` only if its index is 0.
    fn choice(&mut self, text: &mut String) -> Option<()> {
        let start = text.len();
        let (mut index, mut seen_index, mut seen_delta) = (0, false, false);
        self.object(|s, key| match key {
            b"index" => {
                once(&mut seen_index)?;
                index = s.number()?;
                Some(())
            }
            b"delta" => {
                once(&mut seen_delta)?;
                if s.null() {
                    return Some(());
                }
                let mut content = false;
                s.object(|s, key| match key {
                    b"content" => {
                        once(&mut content)?;
                        if s.null() {
                            return Some(());
                        }
                        s.string(Some(&mut *text))
                    }
                    _ => s.skip(2),
                })
            }
            _ => s.skip(2),
        })?;
        if index != 0 {
            text.truncate(start);
        }
        Some(())
    }

    fn usage(&mut self) -> Option<Option<Usage>> {
        if self.null() {
            return Some(None);
        }
        let mut usage = Usage::default();
        let (mut prompt, mut completion) = (false, false);
        self.object(|s, key| {
            let (seen, count) = match key {
                b"prompt_tokens" => (&mut prompt, &mut usage.prompt_tokens),
                b"completion_tokens" => (&mut completion, &mut usage.completion_tokens),
                _ => return s.skip(2),
            };
            once(seen)?;
            *count = if s.null() { None } else { Some(s.number()?) };
            Some(())
        })?;
        Some(Some(usage))
    }

    /// An object, each value read by `value` from its (unescaped) key.
    fn object(&mut self, mut value: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        self.items(b'}', |s| {
            let key = s.plain_key()?;
            s.expect(b':')?;
            s.space();
            value(s, key)
        })
    }

    /// The items of an object or a list, after its opening bracket, up to `close`: each read
    /// by `item`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.space();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            self.space();
            item(self)?;
            self.space();
            match self.next()? {
                b',' => {}
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// A key without escapes (one with escapes is left to serde_json).
    fn plain_key(&mut self) -> Option<&'a [u8]> {
        if self.next()? != b'"' {
            return None;
        }
        let from = self.at;
        let len = string_stop(&self.bytes[from..])?;
        self.at = from + len;
        let bytes = self.bytes;
        (self.next()? == b'"').then(|| &bytes[from..from + len])
    }

    /// A string, unescaped into `out` if given.
    fn string(&mut self, mut out: Option<&mut String>) -> Option<()> {
        if self.next()? != b'"' {
            return None;
        }
        loop {
            let from = self.at;
            let len = string_stop(&self.bytes[from..])?;
            self.at = from + len;
            if let Some(out) = out.as_deref_mut() {
                // Cut at ASCII bytes: whole characters.
                out.push_str(self.data.get(from..from + len)?);
            }
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => {
                    let c = self.escape()?;
                    if let Some(out) = out.as_deref_mut() {
                        out.push(c);
                    }
                }
                _ => return None,
            }
        }
    }

    /// The character of an escape, after its `\`.
    fn escape(&mut self) -> Option<char> {
        Some(match self.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        if self.next()? != b'\\' || self.next()? != b'u' {
                            return None;
                        }
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        self.at += 4;
        digits
            .iter()
            .try_fold(0, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
    }

    /// A `u64` written as plain digits.
    fn number(&mut self) -> Option<u64> {
        let from = self.at;
        let len = self.bytes[from..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(self.bytes.len() - from);
        let digits = &self.bytes[from..from + len];
        if digits.is_empty() || (digits[0] == b'0' && len > 1) {
            return None;
        }
        self.at += len;
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        digits.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }

    /// Any JSON value, checked and passed over, at nesting `depth`.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_SCAN_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => {
                self.at += 1;
                self.items(b'}', |s| {
                    s.string(None)?;
                    s.expect(b':')?;
                    s.space();
                    s.skip(depth + 1)
                })
            }
            b'[' => {
                self.at += 1;
                self.items(b']', |s| s.skip(depth + 1))
            }
            b'"' => self.string(None),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.skip_number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// A JSON number: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
    fn skip_number(&mut self) -> Option<()> {
        self.take(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.take(b'.') {
            self.some_digits()?;
        }
        if self.take(b'e') || self.take(b'E') {
            if !self.take(b'+') {
                self.take(b'-');
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn some_digits(&mut self) -> Option<()> {
        self.peek().filter(u8::is_ascii_digit)?;
        self.digits();
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// Takes `byte` if it comes next.
    fn take(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    fn null(&mut self) -> bool {
        self.literal(b"null").is_some()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// `byte`, after any whitespace.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.next()? == byte).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }
}

/// Token usage as an OpenAI-compatible endpoint reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub(super) struct Usage {
    pub(super) prompt_tokens: Option<u64>,
    pub(super) completion_tokens: Option<u64>,
}

#[derive(serde::Deserialize)]
struct StreamChunk<'a> {
    #[serde(default, borrow)]
    choices: FirstChoiceText<'a>,
    usage: Option<Usage>,
    error: Option<serde_json::Value>,
}

/// The delta text of the choices of index 0 in a chunk's `choices` (no list is kept).
#[derive(Default)]
struct FirstChoiceText<'a>(Option<std::borrow::Cow<'a, str>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for FirstChoiceText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Choices<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Choices<'a> {
            type Value = FirstChoiceText<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of choices")
            }

            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut choices: S,
            ) -> Result<Self::Value, S::Error> {
                let mut text: Option<std::borrow::Cow<'a, str>> = None;
                while let Some(choice) = choices.next_element::<StreamChoice<'a>>()? {
                    let Some(DeltaText(delta)) = choice.delta.and_then(|d| d.content) else {
                        continue;
                    };
                    if choice.index != 0 {
                        continue;
                    }
                    text = Some(match text {
                        None => delta,
                        Some(before) => std::borrow::Cow::Owned(before.into_owned() + &delta),
                    });
                }
                Ok(FirstChoiceText(text))
            }
        }
        deserializer.deserialize_seq(Choices(std::marker::PhantomData))
    }
}

#[derive(serde::Deserialize)]
struct StreamChoice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<StreamDelta<'a>>,
}

#[derive(serde::Deserialize)]
struct StreamDelta<'a> {
    #[serde(borrow)]
    content: Option<DeltaText<'a>>,
}

/// A delta's text, borrowed from the event unless it holds escapes.
#[derive(serde::Deserialize)]
struct DeltaText<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

/// Reads the chunk `data` with serde_json, appending the delta text of choice 0 to `text`;
/// the chunk's usage, or what to quote (the data, or the error it reports) and why it is no
/// chunk.
pub(super) fn parse_chunk(
    data: &str,
    text: &mut String,
) -> Result<Option<Usage>, (String, String)> {
    let chunk: StreamChunk<'_> =
        serde_json::from_str(data).map_err(|e| (data.to_owned(), e.to_string()))?;
    if let Some(error) = chunk.error {
        return Err((
            error.to_string(),
            "the endpoint reported an error".to_owned(),
        ));
    }
    if let Some(delta) = chunk.choices.0 {
        text.push_str(&delta);
    }
    Ok(chunk.usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The scanner's reading of `data`: its text and usage.
    fn scanned(data: &str) -> Option<(String, Option<Usage>)> {
        let mut text = "before".to_owned();
        let scanned = scan_chunk(data, &mut text);
        if scanned.is_none() {
            assert_eq!(text, "before", "a scan given up leaves the text as it was");
        }
        Some((text["before".len()..].to_owned(), scanned?))
    }

    /// serde_json's reading of `data`.
    fn parsed(data: &str) -> Option<(String, Option<Usage>)> {
        let mut text = String::new();
        let usage = parse_chunk(data, &mut text).ok()?;
        Some((text, usage))
    }

    /// Writes JSON, its whitespace and escapes picked by `style` (used round and round).
    struct Writer<'s> {
        out: String,
        style: &'s [u8],
        at: usize,
    }

    impl Writer<'_> {
        fn pick(&mut self) -> u8 {
            self.at += 1;
            self.style[self.at % self.style.len()]
        }

        fn space(&mut self) {
            let space = [" ", "", "\n\t ", "\r\n", "", ""][usize::from(self.pick()) % 6];
            self.out.push_str(space);
        }

        fn string(&mut self, text: &str) {
            self.out.push('"');
            for c in text.chars() {
                let how = self.pick();
                let short = match c {
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '/' => Some('/'),
                    '\u{8}' => Some('b'),
                    '\u{c}' => Some('f'),
                    '\n' => Some('n'),
                    '\r' => Some('r'),
                    '\t' => Some('t'),
                    _ => None,
                };
                let must = c < ' ' || c == '"' || c == '\\';
                match (short, how % 3) {
                    (Some(short), 0) => {
                        self.out.push('\\');
                        self.out.push(short);
                    }
                    (_, 1) => self.unicode(c, how),
                    _ if must => self.unicode(c, how),
                    _ => self.out.push(c),
                }
            }
            self.out.push('"');
        }

        /// `c` as `\uXXXX` escapes, a surrogate pair beyond the basic plane.
        fn unicode(&mut self, c: char, how: u8) {
            let mut units = [0; 2];
            for unit in c.encode_utf16(&mut units) {
                let hex = if how & 8 == 0 {
                    format!("\\u{unit:04x}")
                } else {
                    format!("\\u{unit:04X}")
                };
                self.out.push_str(&hex);
            }
        }

        /// An object of `entries`, in an order picked by `style`.
        fn object(&mut self, mut entries: Entries<'_>) {
            for i in (1..entries.len()).rev() {
                let j = usize::from(self.pick()) % (i + 1);
                entries.swap(i, j);
            }
            self.out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.space();
                // Keys are written plain: the scanner leaves escaped ones to serde_json.
                self.out.push('"');
                self.out.push_str(key);
                self.out.push('"');
                self.space();
                self.out.push(':');
                self.space();
                value(self);
                self.space();
            }
            self.out.push('}');
        }

        fn value(&mut self, value: &Value) {
            match value {
                Value::String(text) => self.string(text),
                Value::Array(items) => {
                    self.out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            self.out.push(',');
                        }
                        self.space();
                        self.value(item);
                        self.space();
                    }
                    self.out.push(']');
                }
                Value::Object(fields) => {
                    self.out.push('{');
                    for (i, (key, item)) in fields.iter().enumerate() {
                        if i > 0 {
                            self.out.push(',');
                        }
                        self.space();
                        self.string(key);
                        self.out.push(':');
                        self.space();
                        self.value(item);
                    }
                    self.space();
                    self.out.push('}');
                }
                other => self.out.push_str(&other.to_string()),
            }
        }
    }

    /// A key present or not; `Some(None)` is `null`.
    type Slot<T> = Option<Option<T>>;

    /// Keys of a known object other than its own.
    type Others = Vec<(String, Value)>;

    #[derive(Debug, Clone)]
    struct Choice {
        index: Option<u64>,
        delta: Slot<(Slot<String>, Others)>,
        other: Vec<(String, Value)>,
    }

    #[derive(Debug, Clone)]
    struct Event {
        choices: Option<Vec<Choice>>,
        usage: Slot<(Slot<u64>, Slot<u64>, Others)>,
        other: Vec<(String, Value)>,
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// Other keys of a known object (written plain, never one of its own).
    fn others() -> impl Strategy<Value = Vec<(String, Value)>> {
        proptest::collection::vec(("x[a-z_é😀 ]{0,6}", json()), 0..3)
    }

    fn slot<T: std::fmt::Debug + Clone>(
        value: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Slot<T>> {
        proptest::option::of(proptest::option::of(value))
    }

    fn event() -> impl Strategy<Value = Event> {
        let delta = (slot(any::<String>()), others());
        let choice = (proptest::option::of(0u64..3), slot(delta), others()).prop_map(
            |(index, delta, other)| Choice {
                index,
                delta,
                other,
            },
        );
        let usage = (slot(any::<u64>()), slot(any::<u64>()), others());
        (
            proptest::option::of(proptest::collection::vec(choice, 0..4)),
            slot(usage),
            others(),
        )
            .prop_map(|(choices, usage, other)| Event {
                choices,
                usage,
                other,
            })
    }

    /// Writes one value.
    type Write<'e> = Box<dyn Fn(&mut Writer<'_>) + 'e>;
    type Entries<'e> = Vec<(String, Write<'e>)>;

    fn other_entries(other: &[(String, Value)]) -> Entries<'_> {
        other
            .iter()
            .map(|(key, value)| {
                let write: Write<'_> = Box::new(move |w: &mut Writer<'_>| w.value(value));
                (key.clone(), write)
            })
            .collect()
    }

    fn slot_entry<'e, T>(
        key: &str,
        slot: &'e Slot<T>,
        write: impl Fn(&mut Writer<'_>, &'e T) + 'e,
    ) -> Option<(String, Write<'e>)> {
        let value = slot.as_ref()?;
        let write: Write<'e> = Box::new(move |w: &mut Writer<'_>| match value {
            None => w.out.push_str("null"),
            Some(value) => write(w, value),
        });
        Some((key.to_owned(), write))
    }

    fn write_event(event: &Event, style: &[u8]) -> String {
        let mut w = Writer {
            out: String::new(),
            style,
            at: 0,
        };
        w.space();
        let mut entries = other_entries(&event.other);
        if let Some(choices) = &event.choices {
            let write: Write<'_> = Box::new(move |w: &mut Writer<'_>| {
                w.out.push('[');
                for (i, choice) in choices.iter().enumerate() {
                    if i > 0 {
                        w.out.push(',');
                    }
                    w.space();
                    let mut entries = other_entries(&choice.other);
                    if let Some(index) = choice.index {
                        let write: Write<'_> =
                            Box::new(move |w: &mut Writer<'_>| w.value(&index.into()));
                        entries.push(("index".into(), write));
                    }
                    entries.extend(slot_entry("delta", &choice.delta, |w, (content, other)| {
                        let mut entries = other_entries(other);
                        entries.extend(slot_entry("content", content, |w, text| w.string(text)));
                        w.object(entries);
                    }));
                    w.object(entries);
                }
                w.out.push(']');
            });
            entries.push(("choices".into(), write));
        }
        entries.extend(slot_entry(
            "usage",
            &event.usage,
            |w, (prompt, completion, other)| {
                let mut entries = other_entries(other);
                let count = |w: &mut Writer<'_>, n: &u64| w.value(&(*n).into());
                entries.extend(slot_entry("prompt_tokens", prompt, count));
                entries.extend(slot_entry("completion_tokens", completion, count));
                w.object(entries);
            },
        ));
        w.object(entries);
        w.space();
        w.out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_scanner_reads_every_generated_chunk_as_serde_json_does(
            event in event(),
            style in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let data = write_event(&event, &style);
            let parsed = parsed(&data);
            prop_assert!(parsed.is_some(), "serde_json reads {}", data);
            prop_assert_eq!(scanned(&data), parsed, "{}", data);
        }

        #[test]
        fn what_the_scanner_reads_of_damaged_chunks_serde_json_reads_alike(
            event in event(),
            style in proptest::collection::vec(any::<u8>(), 1..64),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..12), 1..4),
        ) {
            let mut data = write_event(&event, &style);
            for (at, edit) in edits {
                let mut at = at.index(data.len() + 1);
                while !data.is_char_boundary(at) {
                    at -= 1;
                }
                match ["\"", "\\", "{", "}", "[", "]", ",", ":", "-", "e", "u", "0"].get(edit) {
                    Some(insert) if edit % 2 == 0 => data.insert_str(at, insert),
                    _ => {
                        if let Some(c) = data[at..].chars().next() {
                            data.replace_range(at..at + c.len_utf8(), "");
                        }
                    }
                }
            }
            if let Some(scanned) = scanned(&data) {
                prop_assert_eq!(Some(scanned), parsed(&data), "{}", data);
            }
        }
    }

    #[test]
    fn escapes_surrogate_pairs_and_other_choices_read_right() {
        let data = r#" {"id":"x","choices":[{"delta":{"role":"assistant","content":"\ud83d\ude00 \u00E9\n\t\"\\\/\b\f\r"},"index":0},{"index":1,"delta":{"content":"no"}},{"delta":{"content":null}},{"index":0,"delta":null}],"usage":{"prompt_tokens":3,"completion_tokens":null,"details":{"a":[1.5e-3,-0,true,false,null,"\u00e9"]}}} "#;
        let (text, usage) = scanned(data).unwrap();
        assert_eq!(text, "😀 é\n\t\"\\/\u{8}\u{c}\r");
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: Some(3),
                completion_tokens: None
            })
        );
        assert_eq!(parsed(data), Some((text, usage)));
    }

    #[test]
    fn what_the_scanner_does_not_vouch_for_is_left_to_serde_json() {
        let read = Some(("a".to_owned(), None));
        for (data, by_serde) in [
            // Lone surrogates, in the text and elsewhere.
            (r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#, None),
            (r#"{"choices":[{"delta":{"content":"\udc00"}}]}"#, None),
            (
                r#"{"choices":[{"delta":{"content":"\ud800\u0041"}}]}"#,
                None,
            ),
            // Repeated, escaped and error keys.
            (
                r#"{"choices":[{"delta":{"content":"a"}}],"choices":[]}"#,
                None,
            ),
            (
                r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
                None,
            ),
            (
                r#"{"choices":[{"index":0,"index":0,"delta":{"content":"a"}}]}"#,
                None,
            ),
            (
                r#"{"cho\u0069ces":[{"delta":{"content":"a"}}]}"#,
                read.clone(),
            ),
            (
                r#"{"choices":[{"delta":{"content":"a"}}],"error":null}"#,
                read.clone(),
            ),
            (r#"{"error":{"message":"overloaded"}}"#, None),
            // Types serde_json refuses, and bad JSON.
            (
                r#"{"choices":[{"index":1.0,"delta":{"content":"a"}}]}"#,
                None,
            ),
            (
                r#"{"choices":[{"index":-1,"delta":{"content":"a"}}]}"#,
                None,
            ),
            (
                r#"{"choices":[{"index":01,"delta":{"content":"a"}}]}"#,
                None,
            ),
            (r#"{"choices":[{"index":18446744073709551616}]}"#, None),
            (r#"{"choices":null}"#, None),
            (r#"{"choices":[{"delta":{"content":7}}]}"#, None),
            (r#"{"choices":[{"delta":{"content":"a"}}]} x"#, None),
            (r#"{"choices":[{"delta":{"content":"a"}}],}"#, None),
            (r#"{"choices":[{"delta":{"content":"a\u00"}}]}"#, None),
            (r#"{"choices":[{"delta":{"content":"a\x"}}]}"#, None),
            ("{\"choices\":[{\"delta\":{\"content\":\"a\u{1}\"}}]}", None),
            (r#"{"usage":{"prompt_tokens":1e2}}"#, None),
            (r#"[[{"delta":{"content":"a"}}],null,null]"#, read.clone()),
        ] {
            assert_eq!(scanned(data), None, "{data}");
            assert_eq!(parsed(data), by_serde, "{data}");
        }
    }

    proptest! {
        #[test]
        fn a_string_stops_at_its_first_quote_backslash_or_control_character(
            chars in proptest::collection::vec(
                prop_oneof![
                    4 => any::<char>(),
                    1 => Just('"'),
                    1 => Just('\\'),
                    1 => (0u8..0x20).prop_map(char::from),
                ],
                0..40,
            ),
        ) {
            let text: String = chars.into_iter().collect();
            let expected = text.bytes().position(|b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(string_stop(text.as_bytes()), expected);
        }
    }

    #[test]
    fn values_nested_to_the_bound_are_scanned_and_deeper_ones_left_to_serde_json() {
        let nested = |depth: usize| {
            format!(
                r#"{{"x":{}{},"choices":[{{"delta":{{"content":"a"}}}}]}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        let read = Some(("a".to_owned(), None));
        assert_eq!(scanned(&nested(MAX_SCAN_DEPTH)), read);
        assert_eq!(scanned(&nested(MAX_SCAN_DEPTH + 1)), None);
        assert_eq!(parsed(&nested(MAX_SCAN_DEPTH + 1)), read);
    }
}
