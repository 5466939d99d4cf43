//! Where the trials of a tuning run live: a [`Study`] in this process's memory, in a file, or in
//! Redis, where any number of processes on any hosts share it.
//!
//! A tuner asks its study for trials and tells it their results. The study hands out a trial
//! only while the finished trials and the running ones stay within the asker's budget, never
//! an assignment it holds already, and leases every trial to its asker: the asker renews the
//! lease while the trial runs, and a trial whose lease runs out (its process died) is marked
//! failed; its assignment is proposed again (at most [`MAX_ATTEMPTS`] times in all) to the
//! next asker. Every such decision is one atomic step: a mutex for the memory study, an
//! exclusive lock of the file for the file study, a Lua script for Redis.
//!
//! A study records what it was created for (the program's declaration, the search space and
//! the objectives) and refuses a tuner that differs, naming the difference.

mod file;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dspex_core::program::ProgramSpec;
use dspex_core::{Value, VarType};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use self::record::MAX_ATTEMPTS;
pub(crate) use self::record::{
    Ask, Asked, Assignment, Outcome, Record, RecordState, assignment_json, key_of,
};
use self::state::StudyState;
use super::objective::{Direction, Objectives, SavedObjective};
use super::space::{Held, SearchSpace};
use super::trial::{Trial, TrialState};
use crate::error::{Error, Result};

use crate::program::declaration::{DeclaredVariable, variable_differences};
use crate::util::value_json;

/// How long a trial is leased unless [`Study::lease`] says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The shortest lease a study accepts.
pub const MIN_LEASE: Duration = Duration::from_millis(100);

/// The longest lease a study accepts.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest study name, in bytes.
pub const MAX_STUDY_NAME_BYTES: usize = 128;

/// How often a tuner that waits for other processes' trials asks its study again (at most;
/// sooner when a lease runs out before).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The `format` of a study's header.
const STUDY_FORMAT: &str = "dspex.tune.study";

/// The version of the study format this build writes and reads.
const STUDY_VERSION: u32 = 1;

/// Where the trials of tuning runs live.
///
/// A tuner asks its study for trials and tells it their results. The study hands out a trial
/// only while its finished trials and running ones stay within the asker's budget, never an
/// assignment it holds already, and leases every trial to its asker: the asker renews the
/// lease while the trial runs, and a trial whose lease runs out (its process died) is marked
/// [failed](super::TrialState::Failed); its assignment is proposed again to the next asker, at
/// most [`MAX_ATTEMPTS`] times in all. Every such decision is one atomic step: a mutex for the
/// memory study, an exclusive lock of the file for the file study, a Lua script for Redis.
/// A study records what it was created for (the program's declaration, the search space and
/// the objectives) and refuses a tuner that differs, naming the difference.
///
/// `Study::memory()`, `Study::file(path)` and `Study::redis(url, name)` only describe the
/// study: nothing is read, written or connected until a tuner (or [`trials`](Self::trials))
/// uses it. Clones share the study.
///
/// - **Memory**: this process only; gone with the last clone. A tuner without a study uses a
///   fresh one per run; give it one with [`Tuner::study`](super::Tuner::study) to resume.
///   With a seed, a memory study is reproducible.
/// - **File**: a journal of JSON lines (a header, then one line per change of a trial),
///   locked for every change, so that processes on one host can share it; it survives them.
/// - **Redis**: any number of processes on any hosts share it (keys under the hash tag
///   `{dspex:study:NAME}`); it survives them.
///
/// Shared studies are not reproducible: which process gets which trial depends on timing.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use std::time::Duration;
/// use dspex::tune::Study;
///
/// let study = Study::redis("redis://127.0.0.1:6390/0", "qa-tuning").lease(Duration::from_secs(30));
/// for trial in study.trials().await? {
///     println!("#{} {:?} {:?}", trial.index, trial.state, trial.values);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Study {
    backend: Arc<dyn Backend>,
    lease: Duration,
}

impl fmt::Debug for Study {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Study")
            .field("where", &self.backend.describe())
            .field("lease", &self.lease)
            .finish()
    }
}

impl fmt::Display for Study {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.backend.describe())
    }
}

impl Default for Study {
    fn default() -> Self {
        Self::memory()
    }
}

impl Study {
    /// A new study in this process's memory.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
    /// use dspex::prelude::*;
    /// use dspex::eval::{Dataset, ExactMatch, Example};
    /// use dspex::tune::{SearchSpace, Study, TrialState, Tuner};
    ///
    /// #[derive(Default)]
    /// struct Guess;
    /// impl Module for Guess {
    ///     async fn forward(&self, _: &Fields, params: &Params) -> Result<Fields> {
    ///         Ok(Fields::from([("answer", params.get::<f64>("x")?.to_string())]))
    ///     }
    /// }
    ///
    /// dspex_program! {
    ///     program Guesser: "question -> answer" {
    ///         variables { x: float = 0.0 { min: 0.0, max: 1.0 } }
    ///         chain { guess: native Guess("question -> answer") { x } }
    ///     }
    /// }
    ///
    /// let program = Guesser::start().await?;
    /// let dev = Dataset::from_examples([Example::new().with_input("question", "?").with_expected("answer", "0.5")]);
    /// let study = Study::memory();
    /// assert_eq!(study.to_string(), "memory study");
    /// let tuner = |n| Tuner::new(SearchSpace::of(&program).unwrap(), ExactMatch::new("answer")).trials(n).study(study.clone());
    /// tuner(5).run(&program, &dev).await?;
    /// // Running again resumes the study: 3 more trials, 8 in all.
    /// let result = tuner(8).run(&program, &dev).await?;
    /// assert_eq!(result.trials.len(), 8);
    /// assert_eq!(study.trials().await?.iter().filter(|t| t.state == TrialState::Finished).count(), 8);
    /// # Ok(()) }
    /// ```
    pub fn memory() -> Self {
        Self {
            backend: Arc::new(MemoryBackend::default()),
            lease: DEFAULT_LEASE,
        }
    }

    /// The study journaled in the file at `path` (created by the first tuner that uses it; its
    /// directory must exist).
    ///
    /// ```
    /// let study = dspex::tune::Study::file("/tmp/qa-study.jsonl");
    /// assert_eq!(study.to_string(), "study file `/tmp/qa-study.jsonl`");
    /// ```
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            backend: Arc::new(file::FileBackend::new(path.into())),
            lease: DEFAULT_LEASE,
        }
    }

    /// The study `name` in the Redis at `url` (`redis://host:port/db`). The name is 1 to
    /// [`MAX_STUDY_NAME_BYTES`] bytes of ASCII letters, digits, `_`, `-`, `.` and `:`; it is
    /// checked, and Redis connected, when the study is first used.
    ///
    /// ```
    /// let study = dspex::tune::Study::redis("redis://:secret@127.0.0.1:6390/0", "qa");
    /// assert_eq!(study.to_string(), "study `qa` at redis://:***@127.0.0.1:6390/0");
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            backend: Arc::new(redis::RedisBackend::new(url.into(), name.into())),
            lease: DEFAULT_LEASE,
        }
    }

    /// A study in Redis: this needs dspex's `redis` feature, so without it a call is a
    /// compile error that says so.
    #[cfg(not(feature = "redis"))]
    pub fn redis<U: crate::util::feature::RedisFeature>(url: U, name: impl Into<String>) -> Self {
        let _ = name.into();
        url.unreachable()
    }

    /// How long a trial is leased (default [`DEFAULT_LEASE`]; [`MIN_LEASE`] to
    /// [`MAX_LEASE`], checked when a tuner uses the study). A tuner renews the leases of its
    /// running trials every third of it; a trial whose process stopped renewing it is marked
    /// failed once it ran out, and its assignment proposed again.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    pub(crate) fn check_lease(&self) -> Result<()> {
        if (MIN_LEASE..=MAX_LEASE).contains(&self.lease) {
            Ok(())
        } else {
            Err(Error::InvalidOption {
                option: "study lease".to_owned(),
                message: format!(
                    "{:?} is outside {MIN_LEASE:?}..={MAX_LEASE:?} (MIN_LEASE, MAX_LEASE)",
                    self.lease
                ),
            })
        }
    }

    pub(crate) fn backend(&self) -> Arc<dyn Backend> {
        Arc::clone(&self.backend)
    }

    /// Every trial of the study, in trial order: finished, running and failed ones (empty for
    /// a study no tuner has used yet). Readable while tuners run, from any process.
    pub async fn trials(&self) -> Result<Vec<Trial>> {
        let backend = self.backend();
        let read = call(&backend, |b| Ok((b.header()?, b.read(0)?.0))).await?;
        let (Some(header), records) = read else {
            return Ok(Vec::new());
        };
        let header = Header::decode(&header, &backend.header_location())?;
        let types = header.types();
        records
            .iter()
            .map(|r| {
                let assignment =
                    decode_assignment(&r.assignment, &types, &backend.location(r.number))?;
                Ok(r.trial(assignment))
            })
            .collect()
    }

    /// Whether the study's first objective is maximized or minimized; `None` for a study no
    /// tuner has used yet.
    pub async fn direction(&self) -> Result<Option<Direction>> {
        let backend = self.backend();
        let Some(header) = call(&backend, |b| b.header()).await? else {
            return Ok(None);
        };
        let header = Header::decode(&header, &backend.header_location())?;
        Ok(Some(
            header
                .objectives
                .first()
                .map_or(Direction::Maximize, |o| o.direction),
        ))
    }

    /// The best finished trial on the first objective among those evaluated in full (the
    /// earliest on ties), or `None`.
    pub async fn best(&self) -> Result<Option<Trial>> {
        let Some(direction) = self.direction().await? else {
            return Ok(None);
        };
        let trials = self.trials().await?;
        Ok(trials
            .into_iter()
            .filter(|t| t.state == TrialState::Finished && t.complete)
            .fold(None::<Trial>, |best, t| match best {
                Some(b) if direction.loss(b.score) <= direction.loss(t.score) => Some(b),
                _ => Some(t),
            }))
    }
}

/// Runs `f` on the backend: on a blocking thread when it does I/O, in place for memory.
pub(crate) async fn call<T: Send + 'static>(
    backend: &Arc<dyn Backend>,
    f: impl FnOnce(&dyn Backend) -> Result<T> + Send + 'static,
) -> Result<T> {
    if backend.blocking() {
        let backend = Arc::clone(backend);
        tokio::task::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|e| Error::Internal(format!("a study operation panicked: {e}")))?
    } else {
        f(backend.as_ref())
    }
}

/// Where a study lives, and its atomic operations.
pub(crate) trait Backend: Send + Sync {
    /// "memory study", "study file `PATH`", "study `NAME` at URL".
    fn describe(&self) -> String;
    /// Whether its operations do I/O (and run on a blocking thread).
    fn blocking(&self) -> bool;
    /// Where trial `n` is stored, for errors ("`KEY` field `N:assign`", "`PATH` line 3").
    fn location(&self, n: usize) -> String;
    /// Where the header is stored, for errors.
    fn header_location(&self) -> String;
    /// Creates the study with `header` unless it exists; returns the header it held before.
    fn open(&self, header: &str) -> Result<Option<String>>;
    /// The study's header, if it exists.
    fn header(&self) -> Result<Option<String>>;
    /// The trials changed since `cursor` (0: all), and the next cursor.
    fn read(&self, cursor: u64) -> Result<(Vec<Record>, u64)>;
    fn ask(&self, ask: &Ask) -> Result<Asked>;
    /// Records a running trial's outcome; `false` when its lease was lost (the trial failed).
    fn tell(&self, number: usize, owner: &str, outcome: &Outcome) -> Result<bool>;
    /// Renews the leases of `numbers` held by `owner`.
    fn renew(&self, numbers: &[usize], owner: &str, lease_ms: u64) -> Result<()>;
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The memory study.
#[derive(Default)]
struct MemoryBackend {
    state: Mutex<StudyState>,
}

impl Backend for MemoryBackend {
    fn describe(&self) -> String {
        "memory study".to_owned()
    }

    fn blocking(&self) -> bool {
        false
    }

    fn location(&self, n: usize) -> String {
        format!("trial {n} of the memory study")
    }

    fn header_location(&self) -> String {
        "the memory study's header".to_owned()
    }

    fn open(&self, header: &str) -> Result<Option<String>> {
        let mut state = self.state.lock();
        let before = state.header.clone();
        if before.is_none() {
            state.header = Some(header.to_owned());
        }
        Ok(before)
    }

    fn header(&self) -> Result<Option<String>> {
        Ok(self.state.lock().header.clone())
    }

    fn read(&self, cursor: u64) -> Result<(Vec<Record>, u64)> {
        Ok(self.state.lock().since(cursor))
    }

    fn ask(&self, ask: &Ask) -> Result<Asked> {
        Ok(self.state.lock().ask(ask, now_ms()).0)
    }

    fn tell(&self, number: usize, owner: &str, outcome: &Outcome) -> Result<bool> {
        Ok(self.state.lock().tell(number, owner, outcome))
    }

    fn renew(&self, numbers: &[usize], owner: &str, lease_ms: u64) -> Result<()> {
        self.state.lock().renew(numbers, owner, now_ms() + lease_ms);
        Ok(())
    }
}

/// What a study was created for: the program's declaration, the search space and the
/// objectives. A tuner whose header differs is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    format: String,
    version: u32,
    program: String,
    variables: Vec<DeclaredVariable>,
    space: Vec<SpaceEntry>,
    objectives: Vec<SavedObjective>,
}

/// A variable of the search space: searched over a domain, fixed at a value, or held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceEntry {
    name: String,
    /// `searched over 0.0..=2.0`, `fixed at 0.7`, `held`.
    what: String,
}

impl Header {
    /// The header of a tuner over `space` with `objectives`, for `spec`.
    pub(crate) fn new(spec: &ProgramSpec, space: &SearchSpace, objectives: &Objectives) -> Self {
        let space = spec
            .variables
            .iter()
            .map(|var| {
                let what = if let Some(d) = space.dimensions().iter().find(|d| d.name == var.name) {
                    format!("searched over {}", d.domain)
                } else {
                    match space.held().get(&var.name) {
                        Some(Held::Fixed(v)) => format!("fixed at {v}"),
                        _ => "held".to_owned(),
                    }
                };
                SpaceEntry {
                    name: var.name.clone(),
                    what,
                }
            })
            .collect();
        Self {
            format: STUDY_FORMAT.to_owned(),
            version: STUDY_VERSION,
            program: spec.name.clone(),
            variables: spec.variables.iter().map(DeclaredVariable::of).collect(),
            space,
            objectives: objectives
                .list()
                .iter()
                .map(|o| SavedObjective {
                    direction: o.direction(),
                    measure: o.measure().name().to_owned(),
                })
                .collect(),
        }
    }

    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored header; `location` names where it is stored.
    pub(crate) fn decode(text: &str, location: &str) -> Result<Self> {
        let header: Header = serde_json::from_str(text).map_err(|e| {
            Error::tuning(format!("the study header at {location} is corrupt: {e}"))
        })?;
        if header.format != STUDY_FORMAT || header.version != STUDY_VERSION {
            return Err(Error::tuning(format!(
                "the study at {location} is of format `{}` version {}; this build reads `{STUDY_FORMAT}` version {STUDY_VERSION}",
                header.format, header.version
            )));
        }
        Ok(header)
    }

    /// The type of each variable, by name.
    fn types(&self) -> BTreeMap<String, VarType> {
        self.variables
            .iter()
            .filter_map(|v| Some((v.name.clone(), VarType::from_str(&v.ty).ok()?)))
            .collect()
    }

    /// What differs between the study's header (`self`) and a tuner's, one line each.
    pub(crate) fn differences(&self, tuner: &Header, spec: &ProgramSpec) -> Vec<String> {
        let mut out = variable_differences("the study", &self.program, &self.variables, spec);
        for entry in &self.space {
            match tuner.space.iter().find(|e| e.name == entry.name) {
                Some(mine) if mine.what != entry.what => out.push(format!(
                    "`{}` is {} in the study, {} here",
                    entry.name, entry.what, mine.what
                )),
                _ => {}
            }
        }
        if self.objectives != tuner.objectives {
            let list = |o: &[SavedObjective]| {
                o.iter()
                    .map(|o| format!("{} {}", o.direction, o.measure))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(format!(
                "the objectives are [{}] in the study, [{}] here",
                list(&self.objectives),
                list(&tuner.objectives)
            ));
        }
        out
    }
}

/// A stored assignment as values of the declared types; `location` names where it is
/// stored.
pub(crate) fn decode_assignment(
    assignment: &Assignment,
    types: &BTreeMap<String, VarType>,
    location: &str,
) -> Result<BTreeMap<String, Value>> {
    assignment
        .iter()
        .map(|(name, json)| {
            let ty = types.get(name).ok_or_else(|| {
                Error::tuning(format!(
                    "the study record at {location} is corrupt: it sets `{name}`, which the study's program does not declare"
                ))
            })?;
            let value = value_json::from_json(*ty, json).map_err(|e| {
                Error::tuning(format!("the study record at {location} is corrupt: `{name}`: {e}"))
            })?;
            Ok((name.clone(), value))
        })
        .collect()
}

#[cfg(feature = "redis")]
/// A study name: 1 to [`MAX_STUDY_NAME_BYTES`] bytes of ASCII letters, digits, `_`, `-`, `.`
/// and `:` (no braces, which delimit the Redis hash tag).
pub(crate) fn check_name(name: &str) -> Result<()> {
    crate::state::shared::check_key_name(
        "study name",
        name,
        MAX_STUDY_NAME_BYTES,
        "MAX_STUDY_NAME_BYTES",
    )
}
