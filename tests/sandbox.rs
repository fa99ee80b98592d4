//! The sandbox worker pool against the real `mutask sandbox` binary: µTask's result conversion
//! rules, the JS of the conformance templates, hostile programs that each end as an error within
//! their budget while other evaluations keep running, and the pool's process management
//! (concurrency, respawn after a kill, no orphans after drop or shutdown).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mutask::sandbox::{ErrorKind, SandboxConfig, SandboxError, SandboxPool, eval_js_in_process};

const BIN: &str = env!("CARGO_BIN_EXE_mutask");

fn pool(workers: usize) -> SandboxPool {
    let mut config = SandboxConfig::new(PathBuf::from(BIN));
    config.workers = workers;
    SandboxPool::new(config).expect("pool")
}

fn alive(pid: u32) -> bool {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
    nix::sys::signal::kill(pid, None).is_ok()
}

/// Waits (letting the runtime reap children) until none of `pids` exists any more.
async fn assert_all_gone(pids: &[u32]) {
    let start = Instant::now();
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "workers {pids:?} still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// The exact expression text of the conformance templates (YAML `>` folds keep a final newline).
const VARIABLES_TRUC: &str = "2 + 2; // javascript\n";
const VARIABLES_CACHED: &str = "4 + 2; // javascript\n";
const JSON_PARSING: &str = "var o = {\"a\":\"utask\",\"b\":666,\"c\":{\"k\":\"v\"},\"d\":[\"1\",\"2\",\"3\"]}; JSON.stringify(o);\n";
const RAW_DECODED: &str = "\"raw message\";";
const RAW_ENCODED: &str = "\"cmF3IG1lc3NhZ2U\";";

fn expected_template_values() -> Vec<(&'static str, &'static str)> {
    vec![
        (VARIABLES_TRUC, "4"),
        (VARIABLES_CACHED, "6"),
        (
            JSON_PARSING,
            r#"{"a":"utask","b":666,"c":{"k":"v"},"d":["1","2","3"]}"#,
        ),
        (RAW_DECODED, "raw message"),
        (RAW_ENCODED, "cmF3IG1lc3NhZ2U"),
    ]
}

#[test]
fn conversion_rules_follow_otto_string() {
    let cases = [
        ("1+3", "4"),
        ("'a'+'b'", "ab"),
        ("JSON.stringify({a:1,b:[1,2]})", r#"{"a":1,"b":[1,2]}"#),
        ("[1,2,3]", "1,2,3"),
        ("({})", "[object Object]"),
        ("undefined", "undefined"),
        ("null", "null"),
        ("5/2", "2.5"),
        ("1e21", "1e+21"),
        ("true", "true"),
        ("var x = 2; x * 3", "6"),
        ("var nothing;", "undefined"),
        ("'abcdef'.substr(2, 2)", "cd"),
        (
            "typeof console + typeof require + typeof process",
            "undefinedundefinedundefined",
        ),
    ];
    for (code, want) in cases {
        assert_eq!(
            eval_js_in_process(code, Duration::from_secs(5)).as_deref(),
            Ok(want),
            "{code}"
        );
    }
    for (code, want) in expected_template_values() {
        assert_eq!(
            eval_js_in_process(code, Duration::from_secs(5)).as_deref(),
            Ok(want),
            "{code}"
        );
    }
    let err =
        eval_js_in_process("undefinedFunction()", Duration::from_secs(5)).expect_err("throws");
    assert!(
        err.starts_with("ReferenceError: undefinedFunction is not defined"),
        "{err}"
    );
    let err = eval_js_in_process("var = 1", Duration::from_secs(5)).expect_err("bad syntax");
    assert!(err.starts_with("SyntaxError"), "{err}");
}

#[tokio::test]
async fn template_expressions_and_errors_through_the_pool() {
    let pool = pool(1);
    for (code, want) in expected_template_values() {
        assert_eq!(
            pool.eval_js(code, Duration::from_secs(10)).await.as_deref(),
            Ok(want),
            "{code}"
        );
    }
    let err = pool
        .eval_js("throw new TypeError('bad input')", Duration::from_secs(10))
        .await;
    assert!(
        matches!(&err, Err(SandboxError::Script { kind: ErrorKind::Exception, message })
            if message.starts_with("TypeError: bad input")),
        "{err:?}"
    );
    let err = pool.eval_js("1 +", Duration::from_secs(10)).await;
    assert!(
        matches!(
            &err,
            Err(SandboxError::Script {
                kind: ErrorKind::Syntax,
                ..
            })
        ),
        "{err:?}"
    );
    // Nothing from the server's environment reaches the worker, and nothing is injected.
    let globals = pool.eval_js("Object.getOwnPropertyNames(this).filter(function(n){ return /utask|mutask|env/i.test(n) }).length", Duration::from_secs(10)).await;
    assert_eq!(globals.as_deref(), Ok("0"));
    pool.shutdown().await;
}

#[tokio::test]
async fn hostile_programs_end_as_errors_within_budget_while_others_run() {
    let pool = pool(2);
    pool.warm_up().await.expect("workers start");
    let budget = Duration::from_secs(1);
    // kill, reap and respawn take a moment; a loaded CI machine needs headroom
    let slack = Duration::from_secs(4);
    let hostile = [
        "while(true){}",
        "function f(){return f()} f()",
        "'x'.repeat(1e9)",
        "/(a+)+$/.test('a'.repeat(40)+'b')",
        "new Array(5e7).fill(1)",
        "var s='x'; while(true){ s = s + s }",
        "function g(){ for(var i=0;i<1e5;i++){} } for(var j=0;j<1e6;j++){ g() }",
    ];
    for code in hostile {
        let started = Instant::now();
        let bad = async {
            let result = pool.eval_js(code, budget).await;
            (result, started.elapsed())
        };
        let good = async {
            for i in 0..3u32 {
                // a generous budget: this one only has to prove the pool still serves
                let got = pool
                    .eval_js(&format!("{i} * 10 + 1"), Duration::from_secs(10))
                    .await;
                assert_eq!(
                    got,
                    Ok(format!("{}", i * 10 + 1)),
                    "normal evaluation next to {code}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let ((result, elapsed), ()) = tokio::join!(bad, good);
        eprintln!("{code:60} -> {elapsed:?} {result:?}");
        let err = result.expect_err(code);
        assert!(elapsed < budget + slack, "{code} took {elapsed:?}");
        match code {
            // the VM's own limit usually stops these first; on a loaded machine (debug build,
            // busy CI) the deadline may come first — both end as an error within the budget
            "while(true){}" | "function f(){return f()} f()" => assert!(
                matches!(&err, SandboxError::Script { kind: ErrorKind::Limit, message }
                    if message.starts_with("RuntimeLimitError: reached the maximum number of"))
                    || matches!(&err, SandboxError::Timeout { .. }),
                "{code}: {err:?}"
            ),
            "'x'.repeat(1e9)" => assert!(
                matches!(
                    &err,
                    SandboxError::Crashed { .. }
                        | SandboxError::Script {
                            kind: ErrorKind::Exception,
                            ..
                        }
                ),
                "{code}: {err:?}"
            ),
            c if c.contains("(a+)+$") || c.contains("function g") => {
                assert_eq!(err, SandboxError::Timeout { timeout: budget }, "{code}");
            }
            _ => {}
        }
    }
    assert_eq!(pool.eval_js("1+1", budget).await.as_deref(), Ok("2"));
    let crash = pool
        .eval_js("'x'.repeat(1e9)", budget)
        .await
        .expect_err("crashes");
    if let SandboxError::Crashed { .. } = crash {
        assert!(
            crash
                .to_string()
                .starts_with("the expression used too much memory or crashed ("),
            "{crash}"
        );
    }
    assert_eq!(pool.eval_js("1+1", budget).await.as_deref(), Ok("2"));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_jobs_than_workers_all_complete() {
    let pool = pool(2);
    let jobs: Vec<_> = (0..12u32)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.eval_js(&format!("var n = {i}; n * n"), Duration::from_secs(10))
                    .await
            })
        })
        .collect();
    for (i, job) in (0..12u32).zip(jobs) {
        assert_eq!(job.await.expect("join"), Ok((i * i).to_string()));
    }
    assert!(
        pool.idle_worker_pids().len() <= 2,
        "{:?}",
        pool.idle_worker_pids()
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn a_killed_worker_is_respawned() {
    let pool = pool(1);
    assert_eq!(
        pool.eval_js("1+1", Duration::from_secs(10))
            .await
            .as_deref(),
        Ok("2")
    );
    let pids = pool.idle_worker_pids();
    assert_eq!(pids.len(), 1);
    let victim = nix::unistd::Pid::from_raw(i32::try_from(pids[0]).expect("pid"));
    nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGKILL).expect("kill");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        pool.eval_js("2+2", Duration::from_secs(10))
            .await
            .as_deref(),
        Ok("4")
    );
    let respawned = pool.idle_worker_pids();
    assert_eq!(respawned.len(), 1);
    assert_ne!(respawned, pids);

    // A job cancelled by its caller takes its worker down with it; the next job gets a new one.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        pool.eval_js(
            "function g(){ for(var i=0;i<1e5;i++){} } for(;;){ g() }",
            Duration::from_secs(10),
        ),
    )
    .await;
    assert!(cancelled.is_err(), "{cancelled:?}");
    assert_all_gone(&respawned).await;
    assert_eq!(
        pool.eval_js("3+3", Duration::from_secs(10))
            .await
            .as_deref(),
        Ok("6")
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn workers_are_recycled_after_max_jobs() {
    let mut config = SandboxConfig::new(PathBuf::from(BIN));
    config.workers = 1;
    config.max_jobs_per_worker = 2;
    let pool = SandboxPool::new(config).expect("pool");
    assert_eq!(
        pool.eval_js("1", Duration::from_secs(10)).await.as_deref(),
        Ok("1")
    );
    let first = pool.idle_worker_pids();
    assert_eq!(
        pool.eval_js("2", Duration::from_secs(10)).await.as_deref(),
        Ok("2")
    );
    assert!(pool.idle_worker_pids().is_empty(), "retired after 2 jobs");
    assert_all_gone(&first).await;
    assert_eq!(
        pool.eval_js("3", Duration::from_secs(10)).await.as_deref(),
        Ok("3")
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn dropping_or_shutting_down_the_pool_leaves_no_children() {
    let dropped = pool(2);
    dropped.warm_up().await.expect("workers start");
    let pids = dropped.idle_worker_pids();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    drop(dropped);
    assert_all_gone(&pids).await;

    let stopped = pool(2);
    stopped.warm_up().await.expect("workers start");
    let pids = stopped.idle_worker_pids();
    stopped.shutdown().await;
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "shutdown reaps its workers"
    );
    assert_eq!(
        stopped.eval_js("1", Duration::from_secs(1)).await,
        Err(SandboxError::Closed)
    );
}

/// `VmRSS` and `VmSize` (bytes) of a process, from /proc.
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmSize:")?))
}

/// The workers started from `program`: children of this process whose command line begins
/// with it. Other tests of the binary run beside this one, and their instances' sandbox
/// workers and `mutask serve` processes are children of this process too.
fn workers_started_from(program: &std::path::Path) -> Vec<u32> {
    let me = std::process::id().to_string();
    let program = program.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let child = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid …: comm may hold spaces, so split after ')'
                    let rest = s.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(1).map(|p| p == me)
                })
                .unwrap_or(false);
            child
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|&b| b == 0).next() == Some(program))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_bombs_stay_within_the_memory_limit() {
    // the pool's program is a link of its own, so that its workers can be told apart
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("bomb-pool-mutask");
    std::os::unix::fs::symlink(BIN, &program).unwrap();
    let mut config = SandboxConfig::new(program.clone());
    config.workers = 1;
    let pool = SandboxPool::new(config).expect("pool");
    pool.warm_up().await.expect("workers start");
    let limit = pool.config().memory_limit_bytes;
    let idle = pool.idle_worker_pids();
    let (_, idle_size) = memory_of(idle[0]).expect("the worker's memory");
    // RLIMIT_AS is what the worker mapped at startup plus the limit: nothing it does can
    // make it bigger than that
    let ceiling = idle_size + limit;
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut rss, mut size) = (0u64, 0u64);
            while !stop.is_cancelled() {
                for pid in workers_started_from(&program) {
                    if let Some((r, s)) = memory_of(pid) {
                        rss = rss.max(r);
                        size = size.max(s);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (rss, size)
        })
    };
    let bombs = [
        "'x'.repeat(1e9)",
        "new Array(5e7).fill(1)",
        "var a = []; while (true) { a.push(new Array(1e5).fill(1)) }",
        "var s = 'x'; while (true) { s = s + s }",
        "var o = {}; for (var i = 0; ; i++) { o['k' + i] = 'v'.repeat(1000) }",
    ];
    for code in bombs {
        let err = pool
            .eval_js(code, Duration::from_secs(5))
            .await
            .expect_err(code);
        eprintln!("{code:70} -> {err}");
        // the pool still serves after each bomb
        assert_eq!(
            pool.eval_js("6*7", Duration::from_secs(10))
                .await
                .as_deref(),
            Ok("42"),
            "after {code}"
        );
    }
    stop.cancel();
    let (peak_rss, peak_size) = sampler.await.unwrap();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "sandbox memory: limit {:.0} MiB over a startup mapping of {:.0} MiB; peak worker RSS {:.0} MiB, \
         peak address space {:.0} MiB (ceiling {:.0} MiB)",
        mib(limit),
        mib(idle_size),
        mib(peak_rss),
        mib(peak_size),
        mib(ceiling)
    );
    assert!(peak_rss > 0, "the sampler saw the workers");
    assert!(
        peak_size <= ceiling,
        "a worker mapped {:.0} MiB, over its ceiling of {:.0} MiB",
        mib(peak_size),
        mib(ceiling)
    );
    assert!(peak_rss <= ceiling);
    pool.shutdown().await;
}
