#!/usr/bin/env bash
# The body of ./bootstrap: packages, deb-src entry, source packages, meson setup + compile.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export DEBIAN_FRONTEND=noninteractive
cache="$top/.cache/src"          # git-ignored: the fetched Debian source packages
stamp="$top/.cache/bootstrap-packages"

say() { printf 'bootstrap: %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages: build tools and the real peers the tests start.
packages=(
  build-essential pkg-config meson ninja-build dpkg-dev
  openssl gnutls-bin curl python3 python3-cryptography
  redis-server redis-tools nginx-light age testssl.sh dnsutils openssh-client
  memcached socat libnss-wrapper man-db systemd haproxy
  clang libclang-rt-14-dev golang-go
)
# The Node binding needs node and its N-API headers: Debian's nodejs and libnode-dev where the
# machine has neither (a node of its own, with its headers, is used as it is and never replaced).
command -v node >/dev/null 2>&1 || packages+=(nodejs)
[ -f /usr/include/node/node_api.h ] || packages+=(libnode-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# 2. A deb-src entry copied from the machine's own bookworm sources (never a host name in this repo).
srcfile=/etc/apt/sources.list.d/sli-deb-src.sources
have_src() {
  grep -rqsE '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null && return 0
  grep -rqsE '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources 2>/dev/null && return 0
  return 1
}
added_src=0
if ! have_src; then
  say "adding a deb-src entry copied from the configured bookworm sources ($srcfile)"
  tmp=$(mktemp)
  # deb822 stanzas: keep the ones that are Types: deb and name a bookworm suite.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    [ "$f" = "$srcfile" ] && continue
    awk 'function flush() { if (isdeb && bw && !off) printf "%s\n", st; st=""; isdeb=bw=off=0 }
         /^[ \t]*$/ { flush(); next }
         /^Types:/ { if ($0 ~ /[ \t]deb([ \t]|$)/) isdeb=1; st = st "Types: deb-src\n"; next }
         /^Suites:/ && /bookworm/ { bw=1 }
         /^Enabled:[ \t]*no/ { off=1 }
         { st = st $0 "\n" }
         END { flush() }' "$f" >> "$tmp"
  done
  # one-line format
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '/^[ \t]*deb[ \t]/ && /bookworm/ { sub(/deb/, "deb-src"); print }' "$f" >> "$tmp"
  done
  if ! [ -s "$tmp" ]; then say "no bookworm 'deb' source found to copy"; exit 1; fi
  # one-line entries go into a .list file, stanzas into .sources
  if grep -q '^deb-src ' "$tmp"; then
    grep '^deb-src ' "$tmp" | as_root tee /etc/apt/sources.list.d/sli-deb-src.list >/dev/null
    grep -v '^deb-src ' "$tmp" | as_root tee "$srcfile" >/dev/null
    [ -s "$srcfile" ] || as_root rm -f "$srcfile"
  else
    as_root install -m 0644 "$tmp" "$srcfile"
  fi
  rm -f "$tmp"
  added_src=1
fi

need_src=0
[ -f "$cache/boringssl/sources.mk" ] || need_src=1
[ -f "$cache/libuv/include/uv.h" ] || need_src=1

if [ ${#missing[@]} -gt 0 ] || [ $added_src = 1 ] || [ $need_src = 1 ]; then
  say "apt-get update"
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing: ${missing[*]}"
  # Packages such as redis-server, nginx and memcached start a system service when installed. The
  # tests start their own peers on free loopback ports and need none of them, so services are not
  # started by *this* install (a policy-rc.d for its duration, unless the machine already has one).
  # Services the machine already runs are never stopped, disabled or killed.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# sli bootstrap: no service starts while it installs packages\nexit 101\n' |
      as_root tee "$policy" >/dev/null && as_root chmod 755 "$policy" && own_policy=1
  fi
  rc=0
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ $own_policy = 1 ] && as_root rm -f "$policy"
  [ $rc = 0 ] || { say "apt-get install failed"; exit 1; }
fi

# 3. Source packages, unpacked into the git-ignored cache.
fetch_src() { # fetch_src PACKAGE DIRNAME PROBE
  local pkg=$1 dir=$2 probe=$3
  [ -f "$cache/$dir/$probe" ] && return 0
  say "fetching source package $pkg"
  local work; work=$(mktemp -d "$top/.cache/fetch.XXXXXX")
  chmod 755 "$work"
  (cd "$work" && apt-get source -qq "$pkg" >/dev/null 2>&1) || { say "apt-get source $pkg failed"; exit 1; }
  local unpacked; unpacked=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  [ -n "$unpacked" ] && [ -f "$unpacked/$probe" ] || { say "apt-get source $pkg gave no $probe"; exit 1; }
  rm -rf "${cache:?}/$dir"
  mv "$unpacked" "$cache/$dir"
  rm -rf "$work"
}
mkdir -p "$cache"
fetch_src android-platform-external-boringssl boringssl sources.mk
fetch_src libuv1 libuv include/uv.h

# meson reads subprojects only from inside subprojects/: link the cache there.
ln -sfn "$cache/boringssl" subprojects/boringssl/src
ln -sfn "$cache/libuv" subprojects/libuv/src

# 4. Configure and build.
if [ ! -f build/build.ninja ]; then
  say "meson setup build"
  meson setup build ${SLI_MESON_OPTIONS:-} >/dev/null
fi
say "meson compile -C build"
meson compile -C build >/dev/null || meson compile -C build
say "ready"
