#!/bin/sh
# Build the promptwall .deb from a built binary with dpkg-deb (no cargo-deb:
# nothing to install, and the layout is spelled out here).
#   deploy/debian/build-deb.sh --bin target/release/promptwall --version 0.1.0 --out target/debian [--arch amd64] [--compress xz|gzip|none]
# Prints the path of the .deb on its last line.
set -eu
BIN= VERSION= OUT= ARCH= COMPRESS=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        --version) VERSION=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --arch) ARCH=$2; shift 2 ;;
        --compress) COMPRESS=$2; shift 2 ;;
        *) echo "build-deb.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || { echo "build-deb.sh: --bin $BIN is not an executable; build it first" >&2; exit 1; }
[ -n "$VERSION" ] || { echo "build-deb.sh: --version is required" >&2; exit 1; }
[ -n "$ARCH" ] || ARCH=$(dpkg --print-architecture)
HERE=$(cd "$(dirname "$0")" && pwd)
DEPLOY=$(dirname "$HERE")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAGE=$(mktemp -d)
chmod 0755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
umask 022

install -D -m 0755 "$BIN" "$STAGE/usr/bin/promptwall"
# Line tables are for profiling builds; the package ships without them.
if command -v strip >/dev/null 2>&1; then strip --strip-debug "$STAGE/usr/bin/promptwall"; fi
install -D -m 0644 "$DEPLOY/systemd/promptwall.service" "$STAGE/usr/lib/systemd/system/promptwall.service"
install -D -m 0640 "$DEPLOY/config.example.toml" "$STAGE/etc/promptwall/config.toml"
install -d -m 0750 "$STAGE/etc/promptwall/config.d"
chmod 0750 "$STAGE/etc/promptwall"
install -D -m 0644 "$DEPLOY/config.example.toml" "$STAGE/usr/share/doc/promptwall/config.example.toml"
install -D -m 0644 "$HERE/copyright" "$STAGE/usr/share/doc/promptwall/copyright"

install -d -m 0755 "$STAGE/DEBIAN"
for s in postinst prerm postrm; do
    install -m 0755 "$HERE/$s" "$STAGE/DEBIAN/$s"
done
echo /etc/promptwall/config.toml >"$STAGE/DEBIAN/conffiles"
chmod 0644 "$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" "$HERE/control.in" >"$STAGE/DEBIAN/control"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/md5sums"

DEB="$OUT/promptwall_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group "-Z$COMPRESS" --build "$STAGE" "$DEB" >&2
echo "$DEB"
