#!/usr/bin/env bash
# mutask benchmark harness — see bench/README.md. `bash bench/run.sh --help` for the knobs.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash bench/run.sh [--help]

Starts a private PostgreSQL cluster, runs mutask instances against it and measures:
  (a) drain of N pre-created one-step no-op tasks with 1 and 2 worker instances (tasks/s)
  (b) create->DONE latency p50/p95, tasks created one at a time through the API, 2 instances
      (polling GET /task/{id} every 1 ms, then with one POST /task?wait= per task)
  (c) a 5-step linear DAG and a foreach of 10, pre-created then drained by 2 instances (steps/s)
  (d) API create rate with 4 and 50 concurrent clients (one --role api instance)
  (e) idle queries/s and RSS of one instance with nothing to do
  (f) throughput over a steady run (only with STEADY_MINUTES > 0)
In the same run it runs ../shared/bench/pg-limit.sh and ../shared/bench/peer-graphile.sh and
prints ratios (mutask / PostgreSQL queue limit, mutask / graphile-worker), one
"RESULT mutask-bench:" line and a table. Only 127.0.0.1 is used.

Environment (defaults in brackets):
  QUICK=1            short CI-sized run: N=2000, fewer samples, small reference runs [0]
  N                  one-step tasks per drain [20000; QUICK: 2000]
  SYNC               synchronous_commit of mutask's databases: on | off | both [both]
  STEADY_MINUTES     length of the steady run (f), per sync mode; 0 = skip [0]
  STEADY_CLIENTS     creating clients in the steady run [8]
  STEADY_BACKLOG     creation pauses while more than this many tasks are not DONE [5000]
  STEADY_ONLY        1 = run only (f) (with STEADY_MINUTES > 0; combine with PEERS=0) [0]
  STEADY_EXPIRATION  MUTASK_COMPLETED_TASK_EXPIRATION of the steady run's instances, e.g. 5m:
                     finished tasks are then deleted as they would be in production [720h]
  STEADY_WARMUP      minutes the steady run's load runs before the STEADY_MINUTES measured
                     (with STEADY_EXPIRATION, at least the expiration: the collector then
                     deletes from the first measured minute on) [0]
  ONLY               run only these of (a)-(e), space-separated: drain latency steps create idle
                     (a diagnostic for one figure; combine with PEERS=0) [all]
  LAT_M              latency samples [200; QUICK: 50]
  CREATE_M           tasks per API create-rate measurement [5000; QUICK: 1000]
  DAG_TASKS          5-step DAG tasks drained [2000; QUICK: 200]
  FOREACH_TASKS      foreach-of-10 tasks drained [1000; QUICK: 100]
  IDLE_SECONDS       idle measurement window [30; QUICK: 10]
  PGSS               1 = load pg_stat_statements (track_planning on) in the private cluster and
                     report statements per task / per idle second, and the busiest statements
                     with their calls, plans, execution and planning time (diagnostic; the
                     cluster then differs from initdb defaults) [0]
  PEERS              1 = run pg-limit.sh and peer-graphile.sh; 0 = mutask only (no ratios) [1]
  SHARED_BENCH       where pg-limit.sh / peer-graphile.sh are [<repo>/../shared/bench]
  MUTASK_BIN         use this binary instead of building target/release/mutask
  BENCH_COMMIT       label printed for a MUTASK_BIN binary [external-binary]
  BUILD              1 = `cargo build --release --locked` first (when MUTASK_BIN is unset) [1]
  BENCH_DIR          private cluster, logs, instance dirs (wiped at start) [/tmp/mutask-bench]
  BENCH_PG_PORT      private cluster port on 127.0.0.1 [55433] (the shared scripts use 55432)
  BENCH_HTTP_PORT    first HTTP port of the mutask instances [18431]
  PGBIN              PostgreSQL server binaries [/usr/lib/postgresql/15/bin or the newest found]
EOF
}
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  N=${N:-2000}; LAT_M=${LAT_M:-50}; CREATE_M=${CREATE_M:-1000}; DAG_TASKS=${DAG_TASKS:-200}
  FOREACH_TASKS=${FOREACH_TASKS:-100}; IDLE_SECONDS=${IDLE_SECONDS:-10}
else
  N=${N:-20000}; LAT_M=${LAT_M:-200}; CREATE_M=${CREATE_M:-5000}; DAG_TASKS=${DAG_TASKS:-2000}
  FOREACH_TASKS=${FOREACH_TASKS:-1000}; IDLE_SECONDS=${IDLE_SECONDS:-30}
fi
SYNC=${SYNC:-both}
STEADY_MINUTES=${STEADY_MINUTES:-0}
STEADY_CLIENTS=${STEADY_CLIENTS:-8}
STEADY_BACKLOG=${STEADY_BACKLOG:-5000}
STEADY_ONLY=${STEADY_ONLY:-0}
STEADY_EXPIRATION=${STEADY_EXPIRATION:-720h}
STEADY_WARMUP=${STEADY_WARMUP:-0}
ONLY=${ONLY:-drain latency steps create idle}
PEERS=${PEERS:-1}
PGSS=${PGSS:-0}
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
BUILD=${BUILD:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/mutask-bench}
BENCH_PG_PORT=${BENCH_PG_PORT:-55433}
BENCH_HTTP_PORT=${BENCH_HTTP_PORT:-18431}
BACKLOG_CLIENTS=16           # clients that pre-create a drain backlog

case "$SYNC" in on) MODES="on" ;; off) MODES="off" ;; both) MODES="on off" ;;
  *) echo "SYNC must be on, off or both" >&2; exit 2 ;; esac
for v in N LAT_M CREATE_M DAG_TASKS FOREACH_TASKS IDLE_SECONDS STEADY_MINUTES STEADY_CLIENTS \
         STEADY_BACKLOG STEADY_WARMUP BENCH_PG_PORT BENCH_HTTP_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "$v must be a non-negative integer" >&2; exit 2; }
done
[ "$BENCH_PG_PORT" != 55432 ] || { echo "BENCH_PG_PORT 55432 is the shared scripts' port" >&2; exit 2; }
[[ $STEADY_EXPIRATION =~ ^[0-9]+(s|m|h)$ ]] || { echo "STEADY_EXPIRATION must be like 90s, 5m or 720h" >&2; exit 2; }
[ "$STEADY_ONLY" != 1 ] || [ "$STEADY_MINUTES" -gt 0 ] || { echo "STEADY_ONLY=1 needs STEADY_MINUTES > 0" >&2; exit 2; }
for p in $ONLY; do
  case "$p" in drain|latency|steps|create|idle) ;; *) echo "ONLY: unknown part $p (drain latency steps create idle)" >&2; exit 2 ;; esac
done
case "$BENCH_DIR" in /tmp/?*) ;; *) echo "BENCH_DIR must be under /tmp (it is wiped)" >&2; exit 2 ;; esac

if [ -z "${PGBIN:-}" ]; then
  PGBIN=/usr/lib/postgresql/15/bin
  [ -x "$PGBIN/initdb" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
[ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }
for t in psql node curl awk; do
  command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ binary
if [ -n "${MUTASK_BIN:-}" ]; then
  BIN=$MUTASK_BIN
else
  BIN=$REPO/target/release/mutask
  if [ "$BUILD" = 1 ]; then
    log "cargo build --release --locked"
    (cd "$REPO" && cargo build --release --locked) >&2
  fi
fi
[ -x "$BIN" ] || { echo "no mutask binary at $BIN (build it, or set MUTASK_BIN)" >&2; exit 1; }

# ------------------------------------------------------------------ cleanup
PIDS=()                       # running mutask instances
LOADER_PID=""                 # the steady run's load driver
PG_STARTED=0
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }
cleanup() {
  local rc=$?
  set +e
  [ -z "$LOADER_PID" ] || kill -TERM "$LOADER_PID" 2>/dev/null
  for p in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$p" 2>/dev/null; done
  for p in ${PIDS[@]+"${PIDS[@]}"}; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  if [ "$PG_STARTED" = 1 ]; then as_pg "$PGBIN/pg_ctl" -D "$BENCH_DIR/data" -m fast -w stop >/dev/null 2>&1; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ private cluster
PSQL=(env PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$BENCH_PG_PORT" -U postgres)
q() { "${PSQL[@]}" -d "${DB:-postgres}" -c "$1"; }      # one query, DB=... for another database
qdb() { local d=$1; shift; DB=$d q "$@"; }

bench_dir_ok() {  # only ever wipe a directory this harness made
  if [ -d "$BENCH_DIR" ] && [ -n "$(ls -A "$BENCH_DIR")" ] && [ ! -f "$BENCH_DIR/.mutask-bench" ]; then
    echo "$BENCH_DIR exists and was not made by this harness: not wiping it (set BENCH_DIR)" >&2; return 1
  fi
}
pg_start() {
  bench_dir_ok
  if [ -f "$BENCH_DIR/data/postmaster.pid" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$BENCH_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$BENCH_DIR"
  mkdir -p "$BENCH_DIR/logs" "$BENCH_DIR/inst" "$BENCH_DIR/empty"
  touch "$BENCH_DIR/.mutask-bench"
  chmod 755 "$BENCH_DIR"
  [ "$(id -un)" = postgres ] || chown postgres "$BENCH_DIR"
  as_pg "$PGBIN/initdb" -D "$BENCH_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  # initdb defaults, like ../shared/bench/pg-cluster.sh: only address, socket and port change.
  cat >> "$BENCH_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $BENCH_PG_PORT
unix_socket_directories = '$BENCH_DIR'
CONF
  if [ "$STEADY_MINUTES" -gt 0 ]; then
    # a diagnostic for the steady run's decay: every autovacuum pass is logged (log lines only)
    printf "log_autovacuum_min_duration = 0\n" >> "$BENCH_DIR/data/postgresql.conf"
  fi
  if [ "$PGSS" = 1 ]; then
    printf "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.max = 10000\npg_stat_statements.track_planning = on\n" >> "$BENCH_DIR/data/postgresql.conf"
  fi
  PG_STARTED=1
  as_pg "$PGBIN/pg_ctl" -D "$BENCH_DIR/data" -l "$BENCH_DIR/server.log" -w start >/dev/null
  for _ in $(seq 1 60); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$BENCH_PG_PORT" && return 0; sleep 0.5; done
  echo "private cluster did not start; see $BENCH_DIR/server.log" >&2; return 1
}

fresh_db() {  # $1 name, $2 synchronous_commit; [$3 template database]
  q "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
  if [ -n "${3:-}" ]; then q "CREATE DATABASE $1 TEMPLATE $3"; else q "CREATE DATABASE $1"; fi
  q "ALTER DATABASE $1 SET synchronous_commit = $2"
}
xacts() { q "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$1'"; }
pgss_reset() { [ "$PGSS" != 1 ] || q "SELECT pg_stat_statements_reset()" >/dev/null; }
pgss_calls() {  # $1 db: statements executed in it since the last reset ("n/a" without PGSS)
  if [ "$PGSS" != 1 ]; then echo n/a; return; fi
  q "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$1'"
}
pgss_top() {  # $1 db, $2 file: the busiest statements
  [ "$PGSS" = 1 ] || return 0
  q "SELECT calls || E'\t' || round(total_exec_time::numeric, 1) || E' ms\t' || plans || E' plans\t' || round(total_plan_time::numeric, 1) || E' ms\t' || regexp_replace(left(query, 300), '\s+', ' ', 'g') FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$1' ORDER BY calls DESC LIMIT 25" > "$2"
}

# ------------------------------------------------------------------ mutask instances
PW=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)
KEY=""
NEXT_PORT=$BENCH_HTTP_PORT
INST_PID=""; INST_URL=""
EXPIRATION=720h              # MUTASK_COMPLETED_TASK_EXPIRATION of the instances started next
start_inst() {  # $1 name, $2 database, $3 role -> INST_PID, INST_URL
  local name=$1 db=$2 role=$3 port=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
  mkdir -p "$BENCH_DIR/inst/$name"
  env -i PATH="$PATH" HOME="$BENCH_DIR/inst/$name" \
    MUTASK_DATABASE_URL="postgres://postgres@127.0.0.1:$BENCH_PG_PORT/$db" \
    MUTASK_ENCRYPTION_KEYS="$KEY" \
    MUTASK_BASIC_AUTH="admin:$PW" \
    MUTASK_ADMIN_USERNAMES=admin \
    MUTASK_DATA_DIR="$BENCH_DIR/inst/$name" \
    MUTASK_LISTEN="127.0.0.1:$port" \
    MUTASK_TEMPLATES_DIR="$HERE/templates" \
    MUTASK_FUNCTIONS_DIR="$BENCH_DIR/empty" \
    MUTASK_PLUGINS_DIR="$BENCH_DIR/empty" \
    MUTASK_SCRIPTS_DIR="$BENCH_DIR/empty" \
    MUTASK_COMPLETED_TASK_EXPIRATION="$EXPIRATION" \
    RUST_LOG=warn \
    "$BIN" serve --role "$role" </dev/null >"$BENCH_DIR/logs/$name.log" 2>&1 &
  INST_PID=$!
  PIDS+=("$INST_PID")
  INST_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 600); do
    if ! kill -0 "$INST_PID" 2>/dev/null; then
      echo "instance $name exited during startup:" >&2; tail -20 "$BENCH_DIR/logs/$name.log" >&2; return 1
    fi
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$INST_URL/unsecured/mon/ready")" = 200 ] && return 0
    sleep 0.1
  done
  echo "instance $name not ready after 60 s" >&2; tail -20 "$BENCH_DIR/logs/$name.log" >&2; return 1
}
stop_inst() {  # $1 pid: SIGTERM, wait up to 45 s (graceful shutdown), then SIGKILL
  local p=$1 keep=() x
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 450); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then log "instance $p did not stop in 45 s: SIGKILL"; kill -KILL "$p" 2>/dev/null || true; fi
  wait "$p" 2>/dev/null || true
  for x in "${PIDS[@]}"; do [ "$x" = "$p" ] || keep+=("$x"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}
stop_all() { local p; for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_inst "$p"; done; }
cpu_s() {  # user+system CPU seconds of a process (and its reaped children)
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); print ($12 + $13 + $14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

export BENCH_AUTH="admin:$PW"
load() { node "$HERE/load.cjs" "$@"; }
jf() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | head -1; }            # numeric JSON field
div() {  # a / b with p decimals; "n/a" when either is missing or not a number, or b is 0
  awk -v a="${1:-}" -v b="${2:-}" -v p="${3:-2}" 'BEGIN {
    num = "^-?[0-9]+([.][0-9]*)?$"
    if (a !~ num || b !~ num || b + 0 == 0) print "n/a"; else printf "%.*f\n", p, a / b }'
}
cpu_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }

declare -A R                  # every figure, key "<name>_<on|off>"

# Pre-create COUNT tasks of TEMPLATE in database DB through a --role api instance (nothing runs).
make_backlog() {  # $1 db, $2 template, $3 count
  local out
  start_inst "api-$1" "$1" api
  local pid=$INST_PID
  out=$(load create "$INST_URL" "$3" "$BACKLOG_CLIENTS" "$2")
  stop_inst "$pid"
  log "backlog $1: $out"
  local n; n=$(qdb "$1" "SELECT count(*) FROM resolution WHERE state = 'TO_AUTORUN'")
  [ "$n" = "$3" ] || { echo "backlog $1: expected $3 claimable resolutions, found $n" >&2; return 1; }
  BACKLOG_RATE=$(echo "$out" | jf tasks_per_s)
}

# Drain database DB (a copy of a backlog) with K worker instances; sets DRAIN_* figures.
# Steps executed per task: 1 (no-op), 5 (DAG), 10 (foreach: the 10 child actions; the parent
# only collects them, and children are not kept as rows of their own).
drain() {  # $1 db, $2 instances, $3 total tasks, $4 steps executed per task
  local db=$1 k=$2 total=$3 per=$4 pids=() i left t0 t1 x0 x1 cpu=0 limit
  qdb "$db" "VACUUM ANALYZE"; q "CHECKPOINT"
  sleep 1
  x0=$(xacts "$db")
  pgss_reset
  local c0 c1 act="$BENCH_DIR/logs/activity-$db.txt" n=0
  : > "$act"
  c0=$(cpu_jiffies)
  t0=$(date +%s.%N)
  for i in $(seq 1 "$k"); do start_inst "w$i-$db" "$db" worker; pids+=("$INST_PID"); done
  limit=$((300 + total / 20))                # bounded: fails below 20 tasks/s
  left=$total
  while :; do
    left=$(qdb "$db" "SELECT count(*) FROM task WHERE state <> 'DONE'")
    [ "$left" = 0 ] && break
    local alive=0
    for i in "${pids[@]}"; do kill -0 "$i" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || { echo "drain $db: every worker instance exited; see $BENCH_DIR/logs/" >&2; break; }
    n=$((n + 1))
    if [ $((n % 4)) = 0 ]; then               # about every second: what the instances' sessions are doing
      q "SELECT s || ' ' || count(*) FROM (SELECT replace(coalesce(state, '-'), ' ', '_') || ' ' || coalesce(wait_event_type || ':' || wait_event, 'CPU') AS s FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'client backend' AND pid <> pg_backend_pid()) a GROUP BY s" >> "$act" || true
    fi
    if awk -v a="$(date +%s.%N)" -v b="$t0" -v l="$limit" 'BEGIN { exit !(a - b > l) }'; then
      echo "drain $db: $left tasks not DONE after ${limit} s" >&2; break
    fi
    sleep 0.25                               # each poll is a psql process: keep the harness light
  done
  t1=$(date +%s.%N)
  c1=$(cpu_jiffies)
  DRAIN_BUSY=$(awk -v a="$c0" -v b="$c1" 'BEGIN { split(a, x, " "); split(b, y, " "); if (y[2] > x[2]) printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]); else print "n/a" }')
  DRAIN_ACT=$(awk '{ k = $1 " " $2; c[k] += $3; t += $3 } END { for (k in c) printf "%s %.0f%%\n", k, 100 * c[k] / t }' "$act" | sort -k3 -t' ' -rn | head -4 | paste -sd ',' -)
  for i in "${pids[@]}"; do cpu=$(awk -v a="$cpu" -v b="$(cpu_s "$i")" 'BEGIN { print a + b }'); done
  for i in "${pids[@]}"; do stop_inst "$i"; done
  sleep 1.5                                  # exited backends have flushed their statistics
  x1=$(xacts "$db")
  DRAIN_STMT=$(div "$(pgss_calls "$db")" "$total" 1)
  pgss_top "$db" "$BENCH_DIR/logs/statements-$db.txt"
  DRAIN_WALL=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
  # Server-side window: first claim .. last resolution end (excludes process startup).
  DRAIN_S=$(qdb "$db" "SELECT round(extract(epoch FROM max(last_stop) - min(last_start))::numeric, 3) FROM resolution")
  DRAIN_RATE=$(div "$total" "$DRAIN_S" 0)
  DRAIN_STEPS=$(( $(qdb "$db" "SELECT count(*) FROM task WHERE state = 'DONE'") * per ))
  DRAIN_STEP_RATE=$(div "$DRAIN_STEPS" "$DRAIN_S" 0)
  DRAIN_CYCLES=$(qdb "$db" "SELECT round(avg(run_count), 2) FROM resolution")
  DRAIN_XACT=$(div "$((x1 - x0))" "$total" 1)
  DRAIN_CPU=$(awk -v c="$cpu" -v t="$total" 'BEGIN { printf "%.2f", c * 1000 / t }')
  log "drain $db x$k: $total tasks, server ${DRAIN_S}s -> ${DRAIN_RATE}/s, wall ${DRAIN_WALL}s, steps $DRAIN_STEPS (${DRAIN_STEP_RATE}/s), cycles/task $DRAIN_CYCLES, xact/task $DRAIN_XACT, statements/task $DRAIN_STMT, mutask CPU ms/task $DRAIN_CPU, machine CPU busy ${DRAIN_BUSY}%, sessions [${DRAIN_ACT}], left $left"
  [ "$left" = 0 ]
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
children_rss_kib() {
  local t=0 c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do t=$((t + $(rss_kib "$c"))); done
  echo "$t"
}

part() { [[ " $ONLY " == *" $1 "* ]]; }   # is this part of (a)-(e) asked for?

run_mutask_mode() {  # $1 = on|off
  local m=$1 out p1 urls
  log "== mutask, synchronous_commit=$m =="
  if [ "$STEADY_ONLY" = 1 ]; then steady_run "$m"; return; fi

  # (a) drain of N one-step tasks, 1 and 2 instances, from identical copies of one backlog
  if part drain; then
    fresh_db "bl_$m" "$m"
    make_backlog "bl_$m" bench-noop "$N"
    R[backlog_create_$m]=$BACKLOG_RATE
    for k in 1 2; do
      fresh_db "d${k}_$m" "$m" "bl_$m"
      drain "d${k}_$m" "$k" "$N" 1
      R[drain${k}_$m]=$DRAIN_RATE; R[drain${k}_wall_$m]=$DRAIN_WALL; R[drain${k}_xact_$m]=$DRAIN_XACT
      R[drain${k}_cpu_$m]=$DRAIN_CPU; R[drain${k}_busy_$m]=$DRAIN_BUSY; R[drain${k}_cycles_$m]=$DRAIN_CYCLES; R[drain${k}_stmt_$m]=$DRAIN_STMT
    done
    q "DROP DATABASE bl_$m"; q "DROP DATABASE d1_$m"; q "DROP DATABASE d2_$m"
  fi

  # (b) create->DONE latency, one task at a time, 2 instances
  if part latency; then
    fresh_db "lat_$m" "$m"
    start_inst "lat1-$m" "lat_$m" all; urls=$INST_URL
    start_inst "lat2-$m" "lat_$m" all; urls="$urls,$INST_URL"
    pgss_reset
    out=$(load latency "$urls" "$LAT_M" bench-noop); log "latency: $out"
    R[lat_p50_$m]=$(echo "$out" | jf done_ms_p50); R[lat_p95_$m]=$(echo "$out" | jf done_ms_p95)
    R[lat_create_p50_$m]=$(echo "$out" | jf create_ms_p50)
    # where the time goes, from the rows: create statement -> first claim -> end of the cycle
    R[lat_pickup_p50_$m]=$(qdb "lat_$m" "SELECT round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.last_start - t.created)))::numeric, 2) FROM task t JOIN resolution r ON r.task_id = t.id")
    R[lat_cycle_p50_$m]=$(qdb "lat_$m" "SELECT round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.last_stop - r.last_start)))::numeric, 2) FROM resolution r")
    pgss_top "lat_$m" "$BENCH_DIR/logs/statements-lat_$m.txt"
    # the same, one request per task: POST /task?wait= answers once the task is DONE
    out=$(load latency-wait "$urls" "$LAT_M" bench-noop); log "latency with ?wait: $out"
    R[lat_wait_p50_$m]=$(echo "$out" | jf done_ms_p50); R[lat_wait_p95_$m]=$(echo "$out" | jf done_ms_p95)
    log "latency rows: created -> claimed p50 ${R[lat_pickup_p50_$m]} ms, claimed -> cycle end p50 ${R[lat_cycle_p50_$m]} ms"
    stop_all; q "DROP DATABASE lat_$m"
  fi

  # (c) steps/s: 5-step linear DAG and foreach of 10, 2 instances
  if part steps; then
    fresh_db "dag_$m" "$m"; make_backlog "dag_$m" bench-dag5 "$DAG_TASKS"
    drain "dag_$m" 2 "$DAG_TASKS" 5; R[dag_steps_$m]=$DRAIN_STEP_RATE; R[dag_tasks_$m]=$DRAIN_RATE
    R[dag_cycles_$m]=$DRAIN_CYCLES
    fresh_db "fe_$m" "$m"; make_backlog "fe_$m" bench-foreach10 "$FOREACH_TASKS"
    drain "fe_$m" 2 "$FOREACH_TASKS" 10; R[fe_steps_$m]=$DRAIN_STEP_RATE; R[fe_tasks_$m]=$DRAIN_RATE
    R[fe_cycles_$m]=$DRAIN_CYCLES
    q "DROP DATABASE dag_$m"; q "DROP DATABASE fe_$m"
  fi

  # (d) API create rate, 4 and 50 clients, one --role api instance
  if part create; then
    fresh_db "api_$m" "$m"
    start_inst "api-$m" "api_$m" api
    for c in 4 50; do
      out=$(load create "$INST_URL" "$CREATE_M" "$c" bench-noop); log "create c=$c: $out"
      R[create${c}_$m]=$(echo "$out" | jf tasks_per_s); R[create${c}_p50_$m]=$(echo "$out" | jf create_ms_p50)
    done
    stop_all; q "DROP DATABASE api_$m"
  fi

  # (e) idle: one --role all instance, nothing to do
  if part idle; then
    fresh_db "idle_$m" "$m"
    start_inst "idle-$m" "idle_$m" all; p1=$INST_PID
    sleep 11                                   # past startup; pending statistics flushed
    local x0 x1
    pgss_reset
    x0=$(xacts "idle_$m"); sleep "$IDLE_SECONDS"; x1=$(xacts "idle_$m")
    R[idle_qps_$m]=$(div "$((x1 - x0))" "$IDLE_SECONDS" 2)
    R[idle_sps_$m]=$(div "$(pgss_calls "idle_$m")" "$IDLE_SECONDS" 2)
    pgss_top "idle_$m" "$BENCH_DIR/logs/statements-idle_$m.txt"
    R[idle_rss_$m]=$(div "$(rss_kib "$p1")" 1024 1)
    R[idle_rss_children_$m]=$(div "$(children_rss_kib "$p1")" 1024 1)
    log "idle: $((x1 - x0)) transactions in ${IDLE_SECONDS}s (statements/s ${R[idle_sps_$m]}), RSS ${R[idle_rss_$m]} MiB (+ children ${R[idle_rss_children_$m]} MiB)"
    stop_all; q "DROP DATABASE idle_$m"
  fi

  # (f) steady run
  if [ "$STEADY_MINUTES" -gt 0 ]; then steady_run "$m"; fi
}

# Tasks DONE so far in a steady run's database: those still kept, plus those the garbage
# collector deleted (only DONE tasks are ever deleted there; the statistics lag up to ~1 s).
steady_done() {  # $1 db
  qdb "$1" "SELECT (SELECT count(*) FROM task WHERE state = 'DONE') + (SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = 'task')"
}

steady_run() {  # $1 = on|off
  local m=$1 db="steady_$1" urls secs pause="$BENCH_DIR/steady.pause" loader t0 now done0 ndone prev last minute=0 rates="" warm="" left
  secs=$(( (STEADY_WARMUP + STEADY_MINUTES) * 60 ))
  fresh_db "$db" "$m"
  EXPIRATION=$STEADY_EXPIRATION
  start_inst "st1-$m" "$db" all; urls=$INST_URL
  start_inst "st2-$m" "$db" all; urls="$urls,$INST_URL"
  EXPIRATION=720h
  rm -f "$pause"
  load steady "$urls" "$secs" "$STEADY_CLIENTS" bench-noop "$pause" >"$BENCH_DIR/logs/steady-$m.json" &
  loader=$!; LOADER_PID=$loader
  t0=$(date +%s); done0=0; prev=0
  log "steady run: $STEADY_MINUTES min after $STEADY_WARMUP min of warm-up, backlog capped at $STEADY_BACKLOG, finished tasks deleted after $STEADY_EXPIRATION"
  while [ "$(( $(date +%s) - t0 ))" -lt "$secs" ]; do
    sleep 5
    # not `state <> 'DONE'`: that scans every kept task (850k after 30 minutes) every 5 s
    left=$(qdb "$db" "SELECT count(*) FROM task WHERE state IN ('TODO', 'RUNNING', 'WAITING', 'DELAYED')")
    if [ "$left" -gt "$STEADY_BACKLOG" ]; then touch "$pause"; else rm -f "$pause"; fi
    now=$(date +%s)
    if [ $(( (now - t0) / 60 )) -gt "$minute" ]; then
      minute=$(( (now - t0) / 60 ))
      ndone=$(steady_done "$db")
      last=$(( (ndone - prev) / 60 )); prev=$ndone
      # warm-up minutes are logged, not measured
      if [ "$minute" -le "$STEADY_WARMUP" ]; then warm="$warm $last"; done0=$ndone; else rates="$rates $last"; fi
      log "steady minute $minute: $((ndone - done0)) DONE so far (after any warm-up), last minute $last tasks/s, backlog $left"
      # what the sessions wait on, and how big the kept rows have grown (logs/steady-<m>-diag.txt)
      {
        echo "minute $minute"
        qdb "$db" "SELECT s || ' ' || count(*) FROM (SELECT backend_type || ' ' || coalesce(wait_event_type || ':' || wait_event, 'CPU') AS s FROM pg_stat_activity WHERE backend_type IN ('client backend', 'autovacuum worker') AND coalesce(state, 'active') <> 'idle' AND pid <> pg_backend_pid()) a GROUP BY s" || true
        qdb "$db" "SELECT relname || ' ' || pg_size_pretty(pg_total_relation_size(relid)) || ' autovacuum=' || autovacuum_count || ' autoanalyze=' || autoanalyze_count FROM pg_stat_user_tables WHERE relname IN ('task', 'resolution', 'step', 'task_event')" || true
      } >> "$BENCH_DIR/logs/steady-$m-diag.txt"
    fi
  done
  wait "$loader" || true
  LOADER_PID=""
  rm -f "$pause"
  sleep 1                                    # the deletions' statistics are flushed
  ndone=$(steady_done "$db")
  R[steady_$m]=$(div "$((ndone - done0))" "$((STEADY_MINUTES * 60))" 0)
  R[steady_minutes_$m]=$(echo "$rates" | awk '{ min = ""; max = 0; for (i = 1; i <= NF; i++) { if (min == "" || $i < min) min = $i; if ($i > max) max = $i }; printf "min=%s,max=%s,first=%s,last=%s", min, max, $1, $NF
    if (NF >= 10) { f = 0; l = 0; for (i = 1; i <= 5; i++) { f += $i; l += $(NF - 5 + i) }; if (f > 0) printf ",last5/first5=%.2f", l / f } }')
  log "steady: ${R[steady_$m]} tasks/s over $((STEADY_MINUTES * 60)) s; per minute:$rates; warm-up minutes:${warm:- none}; $(cat "$BENCH_DIR/logs/steady-$m.json")"
  stop_all; q "DROP DATABASE $db"
}

# ------------------------------------------------------------------ reference scripts
run_peers() {
  [ "$PEERS" = 1 ] || return 0
  [ -x "$SHARED_BENCH/pg-limit.sh" ] && [ -x "$SHARED_BENCH/peer-graphile.sh" ] ||
    { echo "no $SHARED_BENCH/pg-limit.sh / peer-graphile.sh (set SHARED_BENCH, or PEERS=0)" >&2; return 1; }
  local envq=() envp=()
  if [ "$QUICK" = 1 ]; then
    envq=(DUR=5 "QUEUE_CLIENTS=4 16" TPCB_CLIENTS=4)
    envp=(N=5000 N_TUNED=20000 REPS=1 M=30)
  fi
  log "== ../shared/bench/pg-limit.sh ${envq[*]-} =="
  env -u PGC_DIR -u PGC_PORT -u PGPORT -u PGHOST "${envq[@]+"${envq[@]}"}" \
    bash "$SHARED_BENCH/pg-limit.sh" 2>&1 | tee "$BENCH_DIR/logs/pg-limit.log" >&2
  log "== ../shared/bench/peer-graphile.sh ${envp[*]-} =="
  env -u PGC_DIR -u PGC_PORT -u PGPORT -u PGHOST "${envp[@]+"${envp[@]}"}" \
    bash "$SHARED_BENCH/peer-graphile.sh" 2>&1 | tee "$BENCH_DIR/logs/peer-graphile.log" >&2
  local pl pg
  pl=$(grep '^RESULT pg-limit:' "$BENCH_DIR/logs/pg-limit.log" | tail -1) || true
  pg=$(grep '^RESULT peer-graphile' "$BENCH_DIR/logs/peer-graphile.log" | tail -1) || true
  [ -n "$pl" ] || log "pg-limit.sh printed no RESULT line"
  [ -n "$pg" ] || log "peer-graphile.sh printed no RESULT line"
  PG_LIMIT_LINE=$pl; PEER_LINE=$pg
  # pg-limit: "queue_ops_max_per_s (...) sync=A async=B | ... | batch50 jobs/s sync=C async=D"
  R[pgq_on]=$(echo "$pl" | sed -n 's/.*queue_ops_max_per_s ([^)]*) sync=\([0-9]*\) async=\([0-9]*\).*/\1/p')
  R[pgq_off]=$(echo "$pl" | sed -n 's/.*queue_ops_max_per_s ([^)]*) sync=\([0-9]*\) async=\([0-9]*\).*/\2/p')
  R[pgb_on]=$(echo "$pl" | sed -n 's/.*batch[0-9]* jobs\/s sync=\([0-9]*\) async=\([0-9]*\).*/\1/p')
  R[pgb_off]=$(echo "$pl" | sed -n 's/.*batch[0-9]* jobs\/s sync=\([0-9]*\) async=\([0-9]*\).*/\2/p')
  # peer-graphile: "sync 1x4=.. 1x8=.. 2x4=.. tuned1x8=.. tuned2x8=.. | async ... | ... p50 ms sync=X async=Y ... | single add_job/s sync=S async=T"
  local m part key
  for m in on off; do
    key=sync; [ "$m" = off ] && key=async
    part=$(echo "$pg" | tr '|' '\n' | grep -E "(^| )$key 1x4=" || true)
    R[gw_default_$m]=$(echo "$part" | tr ' ' '\n' | sed -n 's/^\(1x4\|1x8\|2x4\)=\([0-9.]*\)$/\2/p' | sort -n | tail -1)
    R[gw_2x4_$m]=$(echo "$part" | tr ' ' '\n' | sed -n 's/^2x4=\([0-9.]*\)$/\1/p')
    R[gw_batched_$m]=$(echo "$part" | tr ' ' '\n' | sed -n 's/^tuned2x8=\([0-9.]*\)$/\1/p')
    R[gw_lat_$m]=$(echo "$pg" | sed -n 's/.*enqueue-to-complete p50 ms \(sync=[0-9.]* async=[0-9.]*\).*/\1/p' | tr ' ' '\n' | sed -n "s/^$key=//p")
    R[gw_add_$m]=$(echo "$pg" | sed -n 's/.*single add_job\/s \(sync=[0-9.]* async=[0-9.]*\).*/\1/p' | tr ' ' '\n' | sed -n "s/^$key=//p")
  done
}

# ------------------------------------------------------------------ run
PG_LIMIT_LINE=""; PEER_LINE=""
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "mutask bench: QUICK=$QUICK N=$N SYNC=$SYNC STEADY_MINUTES=$STEADY_MINUTES; $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
bench_dir_ok
run_peers
pg_start
cp "$BIN" "$BENCH_DIR/mutask"          # others may rebuild target/ while this runs
BIN=$BENCH_DIR/mutask
if [ -n "${MUTASK_BIN:-}" ]; then
  COMMIT=$(echo "${BENCH_COMMIT:-external-binary}" | tr -c 'A-Za-z0-9._+:\n-' '_')
else                                   # the tree the binary was just built from
  COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
  [ -z "$(git -C "$REPO" status --porcelain -- src migrations build.rs Cargo.toml Cargo.lock 2>/dev/null)" ] || COMMIT="$COMMIT+dirty"
fi
KEY=$("$BIN" keys generate)
[ "$PGSS" != 1 ] || q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
PGVERSION=$(q "SHOW server_version")
for m in $MODES; do run_mutask_mode "$m"; done

# ------------------------------------------------------------------ report
g() { local v=${R[$1]:-}; echo "${v:-n/a}"; }
ge() {  # $1 value, $2 target, $3 ge|le -> yes/no/n/a
  awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { if (a == "n/a" || b == "n/a" || a == "" || b == "") print "n/a"; else if (op == "ge") print (a + 0 >= b + 0 ? "yes" : "NO"); else print (a + 0 <= b + 0 ? "yes" : "NO") }'
}
line="RESULT mutask-bench: date=$START commit=$COMMIT quick=$QUICK N=$N nproc=$(nproc) pg=${PGVERSION%% *}"
for m in $MODES; do
  R[r_batched_$m]=$(div "$(g drain2_$m)" "$(g gw_batched_$m)")
  R[r_default_$m]=$(div "$(g drain2_$m)" "$(g gw_default_$m)")
  R[r_pgq_$m]=$(div "$(g drain2_$m)" "$(g pgq_$m)")
  R[r_pgb_$m]=$(div "$(g drain2_$m)" "$(g pgb_$m)")
  R[r_scale_$m]=$(div "$(g drain2_$m)" "$(g drain1_$m)")
  R[r_lat_$m]=$(div "$(g lat_p50_$m)" "$(g gw_lat_$m)")
  R[r_lat_wait_$m]=$(div "$(g lat_wait_p50_$m)" "$(g gw_lat_$m)")
  R[r_add_$m]=$(div "$(g create4_$m)" "$(g gw_add_$m)")
  lbl=sync; [ "$m" = off ] && lbl=async
  line+=" | $lbl: drain1=$(g drain1_$m) drain2=$(g drain2_$m) tasks/s, lat_p50=$(g lat_p50_$m) p95=$(g lat_p95_$m) ms,"
  line+=" lat_wait_p50=$(g lat_wait_p50_$m) p95=$(g lat_wait_p95_$m) ms,"
  line+=" dag5=$(g dag_steps_$m) foreach10=$(g fe_steps_$m) steps/s, create c4=$(g create4_$m) c50=$(g create50_$m) tasks/s,"
  line+=" idle=$(g idle_qps_$m) q/s rss=$(g idle_rss_$m) MiB"
  [ "$STEADY_MINUTES" -gt 0 ] && line+=", steady${STEADY_MINUTES}m=$(g steady_$m) tasks/s ($(g steady_minutes_$m),expiration=$STEADY_EXPIRATION,warmup=${STEADY_WARMUP}m)"
  line+="; ratios drain2/gw_batched=$(g r_batched_$m) drain2/gw_default=$(g r_default_$m)"
  line+=" drain2/pg_queue=$(g r_pgq_$m) drain2/pg_batch50=$(g r_pgb_$m) drain2/drain1=$(g r_scale_$m)"
  line+=" lat_p50/gw_p50=$(g r_lat_$m) lat_wait_p50/gw_p50=$(g r_lat_wait_$m) create4/gw_add_job=$(g r_add_$m)"
done

{
  echo
  echo "== mutask bench $START — commit $COMMIT, QUICK=$QUICK N=$N, $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), PostgreSQL $PGVERSION =="
  printf '%-52s' "measurement"; for m in $MODES; do printf '%18s' "sync_commit=$m"; done; echo
  row() {  # $1 label, $2 key prefix
    printf '%-52s' "$1"; for m in $MODES; do printf '%18s' "$(g "$2_$m")"; done; echo
  }
  row "(a) drain, 1 instance (tasks/s)" drain1
  row "(a) drain, 2 instances (tasks/s)" drain2
  row "    2 instances / 1 instance (target >= 1.0)" r_scale
  row "    transactions per task (2 instances)" drain2_xact
  row "    statements per task (2 instances; PGSS=1)" drain2_stmt
  row "    mutask CPU ms per task (2 instances)" drain2_cpu
  row "    machine CPU busy %, drain with 1 instance" drain1_busy
  row "    machine CPU busy %, drain with 2 instances" drain2_busy
  row "(b) create->DONE p50 (ms)" lat_p50
  row "(b) create->DONE p95 (ms)" lat_p95
  row "(b) create->DONE with ?wait, p50 (ms)" lat_wait_p50
  row "(b) create->DONE with ?wait, p95 (ms)" lat_wait_p95
  row "(c) 5-step DAG (steps/s)" dag_steps
  row "(c) foreach of 10 (steps/s)" fe_steps
  row "(d) API create, 4 clients (tasks/s)" create4
  row "(d) API create, 50 clients (tasks/s)" create50
  row "(e) idle transactions/s (target <= 1)" idle_qps
  row "(e) idle statements/s (PGSS=1)" idle_sps
  row "(e) idle RSS MiB (target <= 64)" idle_rss
  row "    + sandbox children RSS MiB" idle_rss_children
  [ "$STEADY_MINUTES" -gt 0 ] && row "(f) steady ${STEADY_MINUTES} min (tasks/s)" steady
  row "PostgreSQL queue op limit, unbatched (jobs/s)" pgq
  row "PostgreSQL queue limit, 50 per statement (jobs/s)" pgb
  row "graphile-worker default, best of 1x4/1x8/2x4" gw_default
  row "graphile-worker batched 2x8 (jobs/s)" gw_batched
  row "graphile-worker enqueue->complete p50 (ms)" gw_lat
  row "graphile-worker single add_job/s (4 clients)" gw_add
  row "ratio drain2 / graphile batched (target >= 1.0)" r_batched
  row "ratio drain2 / graphile default (min. >= 1.0)" r_default
  row "ratio drain2 / PostgreSQL queue op limit" r_pgq
  row "ratio drain2 / PostgreSQL batch-50 limit" r_pgb
  row "ratio p50 / graphile p50 (target <= 1.0)" r_lat
  row "ratio p50 with ?wait / graphile p50" r_lat_wait
  row "ratio create c4 / graphile add_job" r_add
  echo "targets:"
  for m in $MODES; do
    echo "  sync_commit=$m: drain2>=gw_batched $(ge "$(g r_batched_$m)" 1 ge); drain2>=gw_default $(ge "$(g r_default_$m)" 1 ge);" \
      "p50<=gw_p50 $(ge "$(g r_lat_$m)" 1 le) (with ?wait $(ge "$(g r_lat_wait_$m)" 1 le)); 2inst>=1inst $(ge "$(g r_scale_$m)" 1 ge);" \
      "idle<=1q/s $(ge "$(g idle_qps_$m)" 1 le); rss<=64MiB $(ge "$(g idle_rss_$m)" 64 le)"
  done
  [ -z "$PG_LIMIT_LINE" ] || echo "$PG_LIMIT_LINE"
  [ -z "$PEER_LINE" ] || echo "$PEER_LINE"
  echo "$line"
} | tee "$BENCH_DIR/logs/summary.txt"
