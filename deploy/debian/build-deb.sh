#!/usr/bin/env sh
# Builds the Debian package with cargo-deb (cargo install cargo-deb): the binary, the
# hardened units for serve and probe (their own user, only CAP_NET_BIND_SERVICE), the
# default config in /etc/failoverd/, man pages and shell completions.
# usage: deploy/debian/build-deb.sh [--profile dev]   (the package lands in target/debian/)
# env:   FAILOVERD_BIN: package this binary instead of building one; DEB_FAST=1: faster,
#        larger compression (the tests)
set -eu
cd "$(dirname "$0")/../.."
PROFILE=release
[ "${1:-}" = "--profile" ] && PROFILE=${2:?profile}
DIR=release; [ "$PROFILE" = dev ] && DIR=debug
if [ -n "${FAILOVERD_BIN:-}" ]; then
  BIN=$FAILOVERD_BIN
else
  if [ "$PROFILE" = release ]; then cargo build --release --locked --bin failoverd; else cargo build --locked --bin failoverd; fi
  BIN=target/$DIR/failoverd
fi
X=target/deb-extra
rm -rf "$X"; mkdir -p "$X/man" "$X/completions" "$X/systemd"
"$BIN" man --out "$X/man" 2>/dev/null
"$BIN" completions bash > "$X/completions/failoverd"
"$BIN" completions zsh > "$X/completions/_failoverd"
"$BIN" completions fish > "$X/completions/failoverd.fish"
for unit in failoverd.service failoverd-probe.service; do
  sed 's|/usr/local/bin/failoverd|/usr/bin/failoverd|g' "deploy/$unit" > "$X/systemd/$unit"
done
# The packaged config: the embedded default, plus what an installed server keeps (its
# state under StateDirectory=) and the operate token the postinst creates.
{
  sed 's|^directory = "../zones"|directory = "zones"|' config/failoverd.toml
  cat <<'TOML'

# Added by the package: state kept across restarts (systemd's StateDirectory=failoverd),
# and the operate token the package created (/etc/failoverd/tokens/oncall, mode 0600):
# `failoverd ctl --token-file /etc/failoverd/tokens/oncall status`.
[health]
state_file = "/var/lib/failoverd/state.json"

[[admin.tokens]]
name = "oncall"
role = "operate"
file = "tokens/oncall"
TOML
} > "$X/failoverd.toml"
cp zones/gslb.example.com.zone "$X/"
cp "$BIN" "$X/failoverd"
# The assets come from target/deb-extra, whichever profile built the binary.
FAST=; [ -n "${DEB_FAST:-}" ] && FAST=--fast
# Stripped, as Debian ships binaries (symbols and line tables stay in the build tree).
strip "$X/failoverd"
cargo deb --no-build --no-strip $FAST 2>&1 | tail -1
