#!/usr/bin/env bash
# Build the other server engines the suite runs against, from Debian's
# current source packages, once per version, into a cache outside the repo:
#   .ci/engines.sh redis     -> $CACHE/redis-8.0.6/redis-server
#   .ci/engines.sh valkey    -> $CACHE/valkey-9.1.2/valkey-server
#   .ci/engines.sh --all     (builds every one, prints nothing)
# Prints the server binary's path. The package archive is the one this
# machine's apt already uses (read from its sources), asked for the source
# packages of the unstable suite. The versions tested:
set -euo pipefail
declare -A VERSIONS=([redis]="5:8.0.6-3" [valkey]="9.1.2-1")
if [[ ${1:-} == --all ]]; then
    for name in "${!VERSIONS[@]}"; do "$0" "$name" >/dev/null; done
    exit 0
fi
package=$1
version=${VERSIONS[$package]:?"no such engine: $package"}
CACHE=${ABE_REDIS_ENGINE_CACHE:-$HOME/.cache/abe-redis-engines}
upstream=${version#*:}; upstream=${upstream%-*}
out="$CACHE/$package-$upstream"
binary="$out/$package-server"
if [[ -x $binary ]]; then echo "$binary"; exit 0; fi
# One build per version at a time: a second caller waits for the first.
mkdir -p "$CACHE"
exec 9>"$CACHE/$package-$upstream.lock"
flock 9
if [[ -x $binary ]]; then echo "$binary"; exit 0; fi

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -n $uri ]] || uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)
mkdir -p "$work/apt/lists/partial" "$work/apt/cache"
echo "deb-src $uri sid main" > "$work/apt/sources.list"
apt_opts=(-o Dir::Etc::SourceList="$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache" -qq)
apt-get "${apt_opts[@]}" update >&2
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only "$package=$version" >&2)
tar -xzf "$work/${package}_${upstream}.orig.tar.gz" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name "${package}-*" | head -1)
[[ -n $src ]] || src=$(find "$work" -maxdepth 1 -mindepth 1 -type d ! -name apt | head -1)
make -C "$src" -j"$(nproc)" BUILD_TLS=yes >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
mkdir -p "$out"
cp "$src/src/$package-server" "$binary"
echo "$binary"
