#!/usr/bin/env bash
# Makes an aarch64 CPython sysroot from Debian's arm64 packages, to run the aarch64 wheel under qemu-aarch64
# (scripts/check_release.sh, W2VBERT_AARCH64_PYTHON=DIR). Nothing is installed on the system: apt reads arm64
# package lists into its own directory and the packages are only unpacked (dpkg -x) into DIR.
# Usage: scripts/aarch64_python.sh DIR      then: qemu-aarch64 -L DIR DIR/usr/bin/python3
set -euo pipefail
dir=$(mkdir -p "$1" && cd "$1" && pwd)
state=$dir/.apt
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/debs"
: >"$state/status"
apt_opts=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Dir::State::Lists="$state/lists"
    -o Dir::Cache="$state/cache" -o Dir::State::status="$state/status" -o APT::Sandbox::User=root -q)
apt-get "${apt_opts[@]}" update >/dev/null
py=$(apt-cache "${apt_opts[@]}" depends python3-minimal 2>/dev/null | awk '/Depends: python3\.[0-9]+-minimal/ { print $2; exit }')
py=${py%-minimal}
pkgs=("$py-minimal" "lib$py-minimal" "lib$py-stdlib" libc6 libgcc-s1 zlib1g libexpat1 libffi8 libbz2-1.0 liblzma5
    libssl3 libuuid1 libcrypt1 libsqlite3-0 libtinfo6 libncursesw6 libreadline8 libdb5.3 libnsl2 libtirpc3
    libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libstdc++6)
(cd "$state/debs" && apt-get "${apt_opts[@]}" download "${pkgs[@]/%/:arm64}" >/dev/null)
for d in "$state"/debs/*.deb; do dpkg -x "$d" "$dir"; done
[ -e "$dir/usr/bin/python3" ] || ln -s "${py}" "$dir/usr/bin/python3"
qemu-aarch64 -L "$dir" "$dir/usr/bin/python3" -c 'import platform, sys; print(sys.version.split()[0], platform.machine())'
