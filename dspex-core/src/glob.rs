//! Anchored glob patterns for `list`: `*` (any run of chars), `?` (one char) and `[...]`
//! classes (`[abc]`, `[a-z]`, `[!0-9]`). A pattern must match the whole name.

/// A compiled, anchored glob pattern.
///
/// ```
/// use dspex_core::Glob;
///
/// let g = Glob::new("llm.*").unwrap();
/// assert!(g.is_match("llm.temperature"));
/// assert!(!g.is_match("my.llm.temperature")); // anchored at the start
/// assert!(Glob::new("temp[").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A malformed glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob pattern `{pattern}`: {reason}")]
pub struct GlobError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Glob {
    /// Compiles a pattern.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let error = |reason| GlobError {
            pattern: pattern.to_owned(),
            reason,
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => {
                    // `**` means the same as `*`.
                    if tokens.last() == Some(&Token::AnyRun) {
                        continue;
                    }
                    Token::AnyRun
                }
                '?' => Token::AnyOne,
                '[' => {
                    let negated = chars.next_if(|c| matches!(c, '!' | '^')).is_some();
                    let mut ranges = Vec::new();
                    loop {
                        let Some(lo) = chars.next() else {
                            return Err(error("unclosed `[`"));
                        };
                        if lo == ']' && !ranges.is_empty() {
                            break;
                        }
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            match chars.next() {
                                Some(']') | None => {
                                    return Err(error("unfinished range in `[...]`"));
                                }
                                Some(hi) => hi,
                            }
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(error("reversed range in `[...]`"));
                        }
                        ranges.push((lo, hi));
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Literal(c),
            });
        }
        Ok(Glob {
            source: pattern.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches the whole of `name`.
    pub fn is_match(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        // Iterative matching with a single backtrack point for the last `*` seen: linear in
        // practice, never exponential.
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(t) {
                Some(Token::AnyRun) => {
                    star = Some((t, n));
                    t += 1;
                }
                Some(tok) if tok.matches_one(name[n]) => {
                    t += 1;
                    n += 1;
                }
                _ => match star {
                    Some((st, sn)) => {
                        t = st + 1;
                        n = sn + 1;
                        star = Some((st, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[t..].iter().all(|tok| *tok == Token::AnyRun)
    }
}

impl Token {
    fn matches_one(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyOne => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        Glob::new(p).unwrap().is_match(n)
    }

    #[test]
    fn matches_whole_names() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("temp*", "temperature"));
        assert!(!m("temp", "temperature"));
        assert!(m("*ture", "temperature"));
        assert!(!m("ture", "temperature"));
        assert!(m("t?p", "top"));
        assert!(!m("t?p", "tp"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("v[0-9]", "v7"));
        assert!(!m("v[!0-9]", "v7"));
        assert!(m("v[]x]", "v]"));
        assert!(m("a**b", "ab"));
    }

    #[test]
    fn rejects_malformed_classes() {
        assert!(Glob::new("a[").is_err());
        assert!(Glob::new("a[b-").is_err());
        assert!(Glob::new("a[z-a]").is_err());
    }
}
