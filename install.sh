#!/usr/bin/env bash
# mutask installer: sets up a project folder to run mutask from.
#
#   ./install.sh [--dir DIR]                 docker-compose: PostgreSQL + two mutask instances
#   ./install.sh --no-docker [--dir DIR]     the `mutask` binary (cargo install from this source)
#                                            on an embedded PostgreSQL, no Docker needed
#   --binary PATH   with --no-docker: use this mutask binary instead of building one
#   -h, --help      this help
#
# DIR (default: the current directory) gets templates/, functions/, plugins/ and scripts/ with
# the examples, a README with the next steps, and: docker-compose.yaml and .env (a fresh
# encryption key, admin and database passwords; mode 0600) for Docker, or mutask.toml and
# bin/mutask for --no-docker. Running it again adds what is missing and never overwrites a
# file, above all not an existing .env (its key protects your data).
set -euo pipefail

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

random_b64() {
  # $1 bytes of randomness, base64
  head -c "$1" /dev/urandom | base64 | tr -d '\n'
}

mode=docker
dir=.
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-docker) mode=binary ;;
    --dir)
      [ $# -ge 2 ] || { echo "install.sh: --dir needs a folder" >&2; exit 2; }
      dir=$2; shift ;;
    --binary)
      [ $# -ge 2 ] || { echo "install.sh: --binary needs a path" >&2; exit 2; }
      binary=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

src_dir=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# the example definitions, without overwriting anything already there
if [ "$dir" != "$src_dir" ]; then
  for sub in templates functions plugins scripts; do
    mkdir -p "$dir/$sub"
    if [ -d "$src_dir/$sub" ]; then
      cp -Rn "$src_dir/$sub/." "$dir/$sub/"
    fi
  done
fi

write_once() {  # $1 = file; its content on stdin
  if [ -e "$1" ]; then
    cat >/dev/null
    echo "install.sh: $1 exists, keeping it"
  else
    cat >"$1"
    echo "install.sh: wrote $1"
  fi
}

if [ "$mode" = binary ]; then
  mkdir -p "$dir/bin"
  if [ -n "$binary" ]; then
    [ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 1; }
    cp "$binary" "$dir/bin/mutask"
  else
    command -v cargo >/dev/null 2>&1 || { echo "install.sh: cargo is needed (https://rustup.rs), or give --binary" >&2; exit 1; }
    # the binary embeds the dashboard (ui/dist): build it first when this source has none
    if [ ! -f "$src_dir/ui/dist/index.html" ]; then
      if command -v npm >/dev/null 2>&1; then
        echo "install.sh: building the dashboard (npm ci && npm run build in $src_dir/ui)"
        (cd "$src_dir/ui" && npm ci --no-audit --no-fund && npm run build)
      else
        echo "install.sh: npm not found: the binary will have no dashboard (install Node.js 20 and run again)" >&2
      fi
    fi
    cargo install --locked --root "$dir" --path "$src_dir"
  fi
  write_once "$dir/mutask.toml" <<EOF
# mutask settings (every MUTASK_* environment variable overrides its entry here)
data_dir = "$dir/.mutask"
templates_dir = "$dir/templates"
functions_dir = "$dir/functions"
plugins_dir = "$dir/plugins"
scripts_dir = "$dir/scripts"
listen = "127.0.0.1:8081"
EOF
  start="$dir/bin/mutask --config $dir/mutask.toml serve"
  write_once "$dir/README.md" <<EOF
# mutask

Start it (an embedded PostgreSQL keeps its data in .mutask/):

    $start

Then open http://127.0.0.1:8081/ (user admin, password in .mutask/admin-password).
Templates go in templates/ (loaded at start), scripts in scripts/, plugins in plugins/.
EOF
  echo
  echo "Installed in $dir. Start mutask with the example templates:"
  echo "  $start"
  echo "The admin password is then in $dir/.mutask/admin-password."
  exit 0
fi

umask 077
if [ -e "$dir/.env" ]; then
  echo "install.sh: .env exists, keeping it (its encryption key protects your data)"
else
  admin_password=$(random_b64 18 | tr '+/' '-_' | tr -d '=')
  {
    echo "MUTASK_ENCRYPTION_KEYS=k$(date -u +%Y%m%d%H%M%S):$(random_b64 32)"
    echo "MUTASK_BASIC_AUTH=admin:${admin_password}"
    echo "MUTASK_ADMIN_USERNAMES=admin"
    echo "POSTGRES_PASSWORD=$(random_b64 18 | tr -d '+/=')"
  } >"$dir/.env"
  echo "install.sh: wrote .env (mode 0600). Admin user: admin, password: ${admin_password}"
fi
umask 022
if [ "$dir" != "$src_dir" ]; then
  # the image is built from this source
  sed "s|^  build: \.$|  build: $src_dir|" "$src_dir/docker-compose.yaml" | write_once "$dir/docker-compose.yaml"
  write_once "$dir/README.md" <<EOF
# mutask

Start PostgreSQL and two mutask instances (secrets in .env, never commit it):

    docker-compose up

Then open http://127.0.0.1:8081/ (user admin, password in .env). Templates go in templates/
(loaded at start), scripts in scripts/, plugins in plugins/.
EOF
fi
echo "Next: cd $dir && docker-compose up   (then http://127.0.0.1:8081/)"
