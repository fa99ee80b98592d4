#!/usr/bin/env bash
# mutask installer (first version; the packaging issue completes it).
#   ./install.sh              write .env in the current directory (encryption key, admin and
#                             database passwords) for `docker-compose up`; never overwrites one
#   ./install.sh --no-docker  build and install the `mutask` binary with cargo instead; it then
#                             runs on an embedded PostgreSQL (`mutask serve`)
set -euo pipefail

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
}

random_b64() {
  # $1 bytes of randomness, base64
  head -c "$1" /dev/urandom | base64 | tr -d '\n'
}

mode=docker
for arg in "$@"; do
  case "$arg" in
    --no-docker) mode=binary ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done

src_dir=$(cd "$(dirname "$0")" && pwd)

if [ "$mode" = binary ]; then
  command -v cargo >/dev/null 2>&1 || { echo "install.sh: cargo is needed (https://rustup.rs)" >&2; exit 1; }
  cargo install --locked --path "$src_dir"
  echo
  echo "Installed. Start mutask with the example templates (embedded PostgreSQL, data in ./.mutask):"
  echo "  mutask serve --templates-dir $src_dir/templates"
  echo "The admin password is then in .mutask/admin-password."
  exit 0
fi

if [ -e .env ]; then
  echo "install.sh: .env exists, keeping it (its encryption key protects your data)"
else
  umask 077
  admin_password=$(random_b64 18 | tr '+/' '-_' | tr -d '=')
  {
    echo "MUTASK_ENCRYPTION_KEYS=k$(date -u +%Y%m%d%H%M%S):$(random_b64 32)"
    echo "MUTASK_BASIC_AUTH=admin:${admin_password}"
    echo "MUTASK_ADMIN_USERNAMES=admin"
    echo "POSTGRES_PASSWORD=$(random_b64 18 | tr -d '+/=')"
  } > .env
  echo "install.sh: wrote .env (mode 0600). Admin user: admin, password: ${admin_password}"
fi
echo "Next: docker-compose up   (then http://127.0.0.1:8081/unsecured/mon/ping)"
