#!/usr/bin/env bash
# Unpack one program from a Debian package into .cache/bin, without installing the package (no service
# is started, no root needed once the package lists exist): `debian-tool.sh PACKAGE PROGRAM`.
set -euo pipefail
package=$1 program=$2
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mkdir -p .cache/bin
if command -v "$program" >/dev/null; then ln -sf "$(command -v "$program")" ".cache/bin/$program"; exit 0; fi
command -v apt-get >/dev/null || { echo "$program is needed for the alerting tests: install it (Debian package $package)" >&2; exit 1; }
mkdir -p .cache/deb .cache/bin
cd .cache/deb
if ! ls "${package}"_*.deb >/dev/null 2>&1; then
  apt-get download -qq "$package" 2>/dev/null || { apt-get update -qq && apt-get download -qq "$package"; }
fi
rm -rf "unpacked-$package"
dpkg-deb -x "$(ls "${package}"_*.deb | head -1)" "unpacked-$package"
cp "unpacked-$package/usr/bin/$program" "../bin/$program"
rm -rf "unpacked-$package"
echo "$program unpacked into .cache/bin from Debian's $package package"
