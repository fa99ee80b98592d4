#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 20) from the committed seeds, after replaying
# the kept regression inputs. A crash, panic, timeout (10 s) or RSS over 2 GB fails the run and
# leaves the input under fuzz/artifacts/<target>/: fix the bug, then copy the input to
# fuzz/regressions/<target>/ so it is replayed forever.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). libFuzzer's flags need nightly rustc;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Sanitizers are off by default (the
# code is safe Rust; SANITIZER=address turns ASan on, much slower).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-20}
sanitizer=${SANITIZER:-none}
# debug builds compile in about half the time (CI); FUZZ_RELEASE=1 for long campaigns
profile=(--dev)
[ "${FUZZ_RELEASE:-0}" = 1 ] && profile=()
targets=${FUZZ_TARGETS:-"template_load dialect_translate render input_validate request_body webhook_verify plugin_result"}
cargo fuzz build "${profile[@]}" -s "$sanitizer"
for t in $targets; do
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
    echo "== $t: replaying regressions"
    cargo fuzz run "${profile[@]}" -s "$sanitizer" "$t" "fuzz/regressions/$t" -- -runs=0 -timeout=10
  fi
  echo "== $t: ${seconds}s"
  cargo fuzz run "${profile[@]}" -s "$sanitizer" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E '^(Done|stat::number_of_executed_units|==|SUMMARY|thread)|panicked|ERROR' || true
  if compgen -G "fuzz/artifacts/$t/*" >/dev/null; then
    echo "fuzz target $t found a failing input:" fuzz/artifacts/"$t"/*
    exit 1
  fi
done
