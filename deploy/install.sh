#!/usr/bin/env sh
# Installs failoverd: the binary, its systemd units, man pages and shell completions,
# and the config directory with an admin token for the on-call operator.
# usage: deploy/install.sh [BINARY]     (default: target/release/failoverd)
# env:   DESTDIR (stage into a directory, e.g. for a package; no user is created then),
#        PREFIX (/usr/local)
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN=${1:-$HERE/../target/release/failoverd}
PREFIX=${PREFIX:-/usr/local}
DEST=${DESTDIR:-}
[ -x "$BIN" ] || { echo "no executable $BIN (cargo build --release first)" >&2; exit 1; }

install -d "$DEST$PREFIX/bin" "$DEST/etc/systemd/system" "$DEST$PREFIX/share/man/man1" \
  "$DEST$PREFIX/share/bash-completion/completions" "$DEST$PREFIX/share/zsh/site-functions" \
  "$DEST$PREFIX/share/fish/vendor_completions.d" "$DEST/etc/failoverd/tokens"
install -m 0755 "$BIN" "$DEST$PREFIX/bin/failoverd"
for unit in failoverd.service failoverd-probe.service; do
  sed "s|/usr/local/bin/failoverd|$PREFIX/bin/failoverd|g" "$HERE/$unit" > "$DEST/etc/systemd/system/$unit"
done
"$BIN" man --out "$DEST$PREFIX/share/man/man1" 2>/dev/null
"$BIN" completions bash > "$DEST$PREFIX/share/bash-completion/completions/failoverd"
"$BIN" completions zsh > "$DEST$PREFIX/share/zsh/site-functions/_failoverd"
"$BIN" completions fish > "$DEST$PREFIX/share/fish/vendor_completions.d/failoverd.fish"

# An operate token for the on-call operator, readable by the service only (and root):
# failoverd refuses a secret file group or others may read.
if [ ! -e "$DEST/etc/failoverd/tokens/oncall" ]; then
  umask 077
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEST/etc/failoverd/tokens/oncall"
  echo >> "$DEST/etc/failoverd/tokens/oncall"
fi
if [ -z "$DEST" ]; then
  id failoverd >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin failoverd
  chown root:failoverd /etc/failoverd/tokens && chmod 0750 /etc/failoverd/tokens
  chown failoverd:failoverd /etc/failoverd/tokens/* && chmod 0600 /etc/failoverd/tokens/*
  systemctl daemon-reload 2>/dev/null || true
fi
echo "installed failoverd into ${DEST:-/} (prefix $PREFIX)"
