//! The shared (Redis) backend beside bare `redis` commands, against a private redis-server the
//! bench starts (targets: get <= 100 ns from the mirror; validated set <= 1.5 x a bare EVALSHA
//! of a trivial script; a write on host A seen by a watcher on host B, p50 <= 2 x a bare XADD ->
//! XREAD BLOCK). The floor of a validated set is a bare EVALSHA of a script that runs only the
//! commands a write needs (check the head, count the sequence, append to the stream, store
//! record, head and history entry, drop the oldest entry), with the same arguments as the
//! backend's last write, on keys nobody waits on. The README lists the figures measured.
//!
//! `cargo bench -p dspex --bench shared`
//!
//! - `shared/...`: criterion's figures for each operation.
//! - At the end, the same-run ratios: each pair is measured interleaved, one operation of each
//!   in turn, and compared by their medians (p50), so that the noise of a shared machine hits
//!   both sides alike.
//!
//! "Two hosts" are two contexts in this process, each with its own connections and reader
//! thread, exactly as two processes have them; the bare baseline is two connections, one
//! writing (XADD), one blocked in XREAD and handing the entry to the measuring thread, as the
//! backend's reader does.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use dspex::wire::proto;
use dspex::{Constraints, Context, Var, WatchEvent, Watcher};
use dspex_test_redis::RedisServer;
use prost::Message;
use redis::{Connection, Script};

const SESSION: &str = "bench";
const BARE_KEY: &str = "bench:bare";
const BARE_STREAM: &str = "bench:stream";

struct Setup {
    _redis: RedisServer,
    _runtime: tokio::runtime::Runtime,
    a: Context,
    _b: Context,
    t: Var<f64>,
    watcher: Watcher,
    bare: Connection,
    trivial: Script,
    floor: Floor,
    xread: BareReader,
}

/// A script doing only a write's necessary commands, on keys of its own.
struct Floor {
    script: Script,
    record: Vec<u8>,
    entry: Vec<u8>,
    old: Vec<u8>,
    version: u64,
}

const FLOOR_KEYS: [&str; 4] = [
    "{bench:floor}:vars",
    "{bench:floor}:heads",
    "{bench:floor}:meta",
    "{bench:floor}:changes",
];
const FLOOR_HISTORY: &str = "{bench:floor}:history";

impl Floor {
    fn new(bare: &mut Connection) -> Self {
        let vars = format!("{{dspex:{SESSION}}}:vars");
        let history = format!("{{dspex:{SESSION}}}:history");
        let heads = format!("{{dspex:{SESSION}}}:heads");
        let record: Vec<u8> = redis::cmd("HGET")
            .arg(&vars)
            .arg("temperature")
            .query(bare)
            .unwrap();
        let head: String = redis::cmd("HGET")
            .arg(&heads)
            .arg("temperature")
            .query(bare)
            .unwrap();
        let entry: Vec<u8> = redis::cmd("HGET")
            .arg(&history)
            .arg(&head)
            .query(bare)
            .unwrap();
        let old = proto::Value {
            kind: Some(proto::value::Kind::FloatValue(0.7)),
        }
        .encode_to_vec();
        let script = Script::new(
            r#"
local cur = redis.call('HGET', KEYS[2], 'temperature')
if cur and cur ~= ARGV[1] then return -1 end
local s = redis.call('HINCRBY', KEYS[3], 'seq', 1)
redis.call('XADD', KEYS[4], 'MAXLEN', 10000, '0-' .. s, 'kind', 'updated', 'record', ARGV[3], 'old', ARGV[4])
redis.call('HSET', KEYS[1], 'temperature', ARGV[3])
redis.call('HSET', KEYS[2], 'temperature', ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[5])
redis.call('HDEL', KEYS[5], ARGV[6])
return s
"#,
        );
        Self {
            script,
            record,
            entry,
            old,
            version: 0,
        }
    }

    fn write(&mut self, bare: &mut Connection) -> i64 {
        let v = self.version;
        self.version += 1;
        let mut call = self.script.prepare_invoke();
        for key in FLOOR_KEYS {
            call.key(key);
        }
        call.key(FLOOR_HISTORY)
            .arg(if v == 0 {
                String::new()
            } else {
                format!("1:{v}")
            })
            .arg(format!("1:{}", v + 1))
            .arg(&self.record[..])
            .arg(&self.old[..])
            .arg(&self.entry[..])
            .arg(format!("1:{}", (v + 1).saturating_sub(100)));
        call.invoke(bare).unwrap()
    }
}

fn setup() -> Setup {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let open = || {
        runtime
            .block_on(Context::builder().shared(&url).session(SESSION).build())
            .unwrap()
    };
    let (a, b) = (open(), open());
    let t = a
        .defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))
        .unwrap();
    b.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))
        .unwrap();
    let watcher = b.watch(&["temperature"]).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut bare = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg(BARE_KEY)
        .arg("0.7")
        .query(&mut bare)
        .unwrap();
    let trivial = Script::new("return 1");
    let floor = Floor::new(&mut bare);
    let xread = BareReader::start(&client);
    Setup {
        _redis: redis,
        _runtime: runtime,
        a,
        _b: b,
        t,
        watcher,
        bare,
        trivial,
        floor,
        xread,
    }
}

/// A second connection blocked in XREAD on the bare stream, handing each entry over a channel.
struct BareReader {
    entries: mpsc::Receiver<()>,
}

impl BareReader {
    fn start(client: &redis::Client) -> Self {
        let mut conn = client.get_connection().unwrap();
        let (tx, entries) = mpsc::channel();
        std::thread::spawn(move || {
            let mut last = "$".to_owned();
            loop {
                // The server stops at the end of the bench: so does this reader.
                let Ok(reply) = redis::cmd("XREAD")
                    .arg("BLOCK")
                    .arg(0)
                    .arg("STREAMS")
                    .arg(BARE_STREAM)
                    .arg(&last)
                    .query::<redis::Value>(&mut conn)
                else {
                    return;
                };
                // [[stream, [[id, fields]...]]]: remember the last id, report each entry.
                let redis::Value::Array(streams) = reply else {
                    continue;
                };
                for stream in streams {
                    let redis::Value::Array(pair) = stream else {
                        continue;
                    };
                    let Some(redis::Value::Array(items)) = pair.get(1) else {
                        continue;
                    };
                    for item in items {
                        if let redis::Value::Array(parts) = item
                            && let Some(redis::Value::BulkString(id)) = parts.first()
                        {
                            last = String::from_utf8_lossy(id).into_owned();
                        }
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Self { entries }
    }
}

impl Setup {
    fn next_value(x: &mut f64) -> f64 {
        *x = if *x > 1.9 { 0.0 } else { *x + 0.1 };
        *x
    }

    fn bare_get(&mut self) -> String {
        redis::cmd("GET")
            .arg(BARE_KEY)
            .query(&mut self.bare)
            .unwrap()
    }

    /// What a read from Redis would cost: fetch the stored record and decode it.
    fn redis_read(&mut self) -> f64 {
        let bytes: Vec<u8> = redis::cmd("HGET")
            .arg(format!("{{dspex:{SESSION}}}:vars"))
            .arg("temperature")
            .query(&mut self.bare)
            .unwrap();
        match proto::Variable::decode(bytes.as_slice()).unwrap().value {
            Some(proto::Value {
                kind: Some(proto::value::Kind::FloatValue(x)),
            }) => x,
            _ => f64::NAN,
        }
    }

    fn bare_evalsha(&mut self) -> i64 {
        self.trivial.invoke(&mut self.bare).unwrap()
    }

    fn floor_write(&mut self) -> i64 {
        self.floor.write(&mut self.bare)
    }

    /// One bare XADD on one connection, until the other connection's XREAD hands it over.
    fn bare_round(&mut self) -> Duration {
        let started = Instant::now();
        let _: String = redis::cmd("XADD")
            .arg(BARE_STREAM)
            .arg("MAXLEN")
            .arg(1000)
            .arg("*")
            .arg("v")
            .arg("1")
            .query(&mut self.bare)
            .unwrap();
        self.xread.entries.recv().unwrap();
        started.elapsed()
    }

    /// One write on A, until B's watcher has it.
    fn shared_round(&mut self, x: &mut f64) -> Duration {
        let value = Self::next_value(x);
        let started = Instant::now();
        self.t.set(value).unwrap();
        loop {
            match self.watcher.blocking_recv() {
                Some(WatchEvent::Updated(c)) if c.new.as_f64() == Some(value) => break,
                Some(_) => {}
                None => panic!("the watcher ended"),
            }
        }
        started.elapsed()
    }
}

fn shared(c: &mut Criterion) {
    let mut s = setup();
    let mut g = c.benchmark_group("shared");
    g.bench_function("bare redis GET", |b| b.iter(|| s.bare_get()));
    g.bench_function("read from Redis (HGET + decode)", |b| {
        b.iter(|| s.redis_read());
    });
    let t = s.t.clone();
    g.bench_function("get by typed handle (mirror)", |b| {
        b.iter(|| black_box(&t).get().unwrap());
    });
    let a = s.a.clone();
    g.bench_function("get by name (mirror)", |b| {
        b.iter(|| a.get::<f64>(black_box("temperature")).unwrap());
    });
    g.bench_function("bare EVALSHA (trivial script)", |b| {
        b.iter(|| s.bare_evalsha());
    });
    g.bench_function("floor: EVALSHA of a write's necessary commands", |b| {
        b.iter(|| s.floor_write());
    });
    let mut x = 0.0;
    g.bench_function("validated set by handle", |b| {
        b.iter(|| t.set(black_box(Setup::next_value(&mut x))).unwrap());
    });
    g.bench_function("update by handle", |b| {
        b.iter(|| t.update(|v| if v > 1.9 { 0.0 } else { v + 0.1 }).unwrap());
    });
    g.bench_function("bare XADD -> XREAD BLOCK", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| s.bare_round()).sum());
    });
    g.bench_function("write on A seen by a watcher on B", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| s.shared_round(&mut x)).sum());
    });
    g.finish();
    ratios(&mut s);
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Each pair interleaved, one operation of each in turn; medians and their ratio.
fn ratios(s: &mut Setup) {
    const ROUNDS: usize = 2_000;
    let mut x = 0.0;
    let (mut get, mut bare_get, mut read) = (Vec::new(), Vec::new(), Vec::new());
    let (mut set, mut evalsha, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let (mut seen, mut xread) = (Vec::new(), Vec::new());
    let t = s.t.clone();
    for _ in 0..ROUNDS {
        // Mirror reads are too fast to time one by one: 1,000 per sample.
        let started = Instant::now();
        for _ in 0..1_000 {
            black_box(black_box(&t).get().unwrap());
        }
        get.push(started.elapsed() / 1_000);
        let started = Instant::now();
        black_box(s.bare_get());
        bare_get.push(started.elapsed());
        let started = Instant::now();
        black_box(s.redis_read());
        read.push(started.elapsed());
        let started = Instant::now();
        t.set(Setup::next_value(&mut x)).unwrap();
        set.push(started.elapsed());
        let started = Instant::now();
        black_box(s.bare_evalsha());
        evalsha.push(started.elapsed());
        let started = Instant::now();
        black_box(s.floor_write());
        floor.push(started.elapsed());
        seen.push(s.shared_round(&mut x));
        xread.push(s.bare_round());
    }
    let (get, bare_get, read) = (median(&mut get), median(&mut bare_get), median(&mut read));
    let (set, evalsha, floor) = (median(&mut set), median(&mut evalsha), median(&mut floor));
    let (seen, xread) = (median(&mut seen), median(&mut xread));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("same-run medians, {ROUNDS} interleaved rounds:");
    println!(
        "  shared get (mirror) {get:.1?} (target <= 100 ns); a bare GET {bare_get:.1?}; a read from Redis (HGET + decode) {read:.1?}"
    );
    println!(
        "  shared validated set {set:.1?} / bare EVALSHA {evalsha:.1?} = {:.2} (target <= 1.5); floor: EVALSHA of a write's necessary commands {floor:.1?} = {:.2}",
        ratio(set, evalsha),
        ratio(floor, evalsha)
    );
    println!(
        "  write on A seen by a watcher on B, p50 {seen:.1?} / bare XADD -> XREAD p50 {xread:.1?} = {:.2} (target <= 2)",
        ratio(seen, xread)
    );
    server_time(s);
}

/// Where a set's time goes on the server: every command Redis runs during `ROUNDS` sets (and
/// as many trivial and floor EVALSHAs), from its slow log with a threshold of 0 (a separate
/// phase: the log costs every command a little). Medians of the server's own time per command
/// (a script's time includes the commands it calls), and how many of each ran per set.
fn server_time(s: &mut Setup) {
    const ROUNDS: usize = 300;
    let config = |conn: &mut Connection, name: &str, value: &str| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(conn)
            .unwrap();
    };
    config(&mut s.bare, "slowlog-max-len", "100000");
    config(&mut s.bare, "slowlog-log-slower-than", "0");
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query(&mut s.bare)
        .unwrap();
    let mut x = 0.0;
    let t = s.t.clone();
    for _ in 0..ROUNDS {
        t.set(Setup::next_value(&mut x)).unwrap();
        black_box(s.bare_evalsha());
        black_box(s.floor_write());
    }
    config(&mut s.bare, "slowlog-log-slower-than", "-1");
    let log: Vec<(i64, i64, i64, Vec<Vec<u8>>)> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query::<Vec<redis::Value>>(&mut s.bare)
        .unwrap()
        .into_iter()
        .map(|entry| {
            let (id, at, micros, args, ..): (i64, i64, i64, Vec<Vec<u8>>, String, String) =
                redis::FromRedisValue::from_redis_value(entry).unwrap();
            (id, at, micros, args)
        })
        .collect();
    let trivial = s.trivial.get_hash().to_owned();
    let floor = s.floor.script.get_hash().to_owned();
    let mut by_name: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (_, _, micros, args) in log {
        let command = String::from_utf8_lossy(args.first().map_or(&[][..], |a| a)).to_uppercase();
        let name = if command == "EVALSHA" || command == "EVAL" {
            let sha = String::from_utf8_lossy(args.get(1).map_or(&[][..], |a| a)).into_owned();
            if sha == trivial {
                "EVALSHA trivial".to_owned()
            } else if sha == floor {
                "EVALSHA floor".to_owned()
            } else {
                "EVALSHA the backend's scripts".to_owned()
            }
        } else {
            command
        };
        by_name.entry(name).or_default().push(micros);
    }
    println!("server time per command over {ROUNDS} sets (Redis slow log, threshold 0):");
    for (name, mut micros) in by_name {
        micros.sort_unstable();
        println!(
            "  {name}: {:.2} per set, median {} us",
            micros.len() as f64 / ROUNDS as f64,
            micros[micros.len() / 2]
        );
    }
}

criterion_group!(benches, shared);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
