#!/bin/sh
# Install promptwall on a systemd distribution without the Debian package
# (RHEL, Fedora, Arch, SUSE...), or into a scratch root for images and tests.
#
#   sudo deploy/install.sh [--bin PATH] [--config FILE] [--ca-cert PEM --ca-key KEY] [--no-start]
#   sudo deploy/install.sh --uninstall [--purge]
#   deploy/install.sh --root DIR ...     # everything under DIR; never starts anything
#
# Installs the binary, the systemd unit, /etc/promptwall/config.toml (kept if
# present, replaced by --config), the `promptwall` group, the org CA (created,
# or imported with --ca-cert/--ca-key, unless one exists; the key file is moved
# into the private CA directory), the CA in the system trust store plus the
# machine-wide trust environment, then enables and starts the service.
# --uninstall undoes all but the config, CA and group; --purge removes those
# too, leaving the machine as it was.
set -eu

ROOT=/
BIN_SRC=
CONFIG_SRC=
CA_CERT=
CA_KEY=
START=1
UNINSTALL=0
PURGE=0

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}
die() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --bin) BIN_SRC=${2:?--bin needs a path}; shift 2 ;;
        --config) CONFIG_SRC=${2:?--config needs a file}; shift 2 ;;
        --ca-cert) CA_CERT=${2:?--ca-cert needs a PEM file}; shift 2 ;;
        --ca-key) CA_KEY=${2:?--ca-key needs a PEM file}; shift 2 ;;
        --no-start) START=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
    esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || die "--root $ROOT does not exist; create it first"
[ "$ROOT" = / ] && P= || P=$ROOT
[ "$ROOT" = / ] || START=0
if [ -n "$CA_CERT$CA_KEY" ] && { [ -z "$CA_CERT" ] || [ -z "$CA_KEY" ]; }; then
    die "--ca-cert and --ca-key go together (the org-issued CA or intermediate and its key)"
fi
[ "$(id -u)" = 0 ] || [ "$ROOT" != / ] || die "run as root (sudo $0 ...), or pass --root DIR"

BIN_DST=$P/usr/bin/promptwall
UNIT_DST=$P/etc/systemd/system/promptwall.service
CONF_DIR=$P/etc/promptwall
STATE_DIR=$P/var/lib/promptwall
GROUP_MARK=$STATE_DIR/.group-created-by-install
GROUP=promptwall

systemd_running() { [ "$ROOT" = / ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# The config the CLI runs with: the installed one on a real system; in a
# scratch root a throwaway one, so the CA goes under DIR too.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ca_config() {
    if [ "$ROOT" = / ]; then
        echo "$CONF_DIR/config.toml"
    else
        printf '[ca]\ndir = "%s/ca"\n' "$STATE_DIR" >"$TMP/config.toml"
        echo "$TMP/config.toml"
    fi
}
REFRESH=
[ "$ROOT" = / ] || REFRESH=--no-refresh # no update-ca-certificates inside a scratch root

group_id() { awk -F: -v g="$GROUP" '$1 == g { print $3 }' "$P/etc/group" 2>/dev/null; }

if [ "$UNINSTALL" = 1 ]; then
    if systemd_running; then
        systemctl disable --now promptwall.service 2>/dev/null || true
    fi
    if [ -x "$BIN_DST" ] && [ "$ROOT" = / ]; then
        # What a crashed fail = "closed" agent left pinned.
        "$BIN_DST" cleanup >/dev/null 2>&1 || true
    fi
    if [ -x "$BIN_DST" ]; then
        "$BIN_DST" --config "$(ca_config)" ca uninstall --root "$ROOT" $REFRESH ||
            echo "install.sh: warning: could not remove the CA from the trust store; run \`promptwall ca uninstall\`" >&2
    fi
    rm -f "$BIN_DST" "$UNIT_DST"
    systemd_running && systemctl daemon-reload
    if [ "$PURGE" = 1 ]; then
        created_group=0
        [ -e "$GROUP_MARK" ] && created_group=1
        rm -rf "$CONF_DIR" "$STATE_DIR"
        if [ "$created_group" = 1 ] && [ -n "$(group_id)" ]; then
            if [ "$ROOT" = / ]; then groupdel "$GROUP"; else groupdel --prefix "$ROOT" "$GROUP"; fi
        fi
        echo "promptwall removed, with its configuration, CA and state"
    else
        echo "promptwall removed; $CONF_DIR and $STATE_DIR (the CA) kept: --purge removes them"
    fi
    exit 0
fi

# Binary: --bin, else a release build next to this checkout, else beside this script.
if [ -z "$BIN_SRC" ]; then
    for c in "$HERE/../target/release/promptwall" "$HERE/promptwall"; do
        [ -x "$c" ] && BIN_SRC=$c && break
    done
fi
[ -n "$BIN_SRC" ] && [ -x "$BIN_SRC" ] || die "no promptwall binary: build it (cargo build --release -p promptwall-agent) or pass --bin PATH"

# Group first: the directories below are group-owned.
if [ -z "$(group_id)" ]; then
    if [ "$ROOT" = / ]; then groupadd --system "$GROUP"; else groupadd --system --prefix "$ROOT" "$GROUP"; fi
    mkdir -p "$STATE_DIR"
    : >"$GROUP_MARK"
fi
GID=$(group_id)
[ -n "$GID" ] || die "group $GROUP was not created in $P/etc/group"

install -D -m 0755 "$BIN_SRC" "$BIN_DST"
install -D -m 0644 "$HERE/systemd/promptwall.service" "$UNIT_DST"
install -d -m 0750 "$CONF_DIR" "$CONF_DIR/config.d" "$STATE_DIR"
chown "0:$GID" "$CONF_DIR" "$CONF_DIR/config.d" "$STATE_DIR"
if [ -n "$CONFIG_SRC" ]; then
    install -m 0640 "$CONFIG_SRC" "$CONF_DIR/config.toml"
elif [ ! -e "$CONF_DIR/config.toml" ]; then
    install -m 0640 "$HERE/config.example.toml" "$CONF_DIR/config.toml"
fi
chown "0:$GID" "$CONF_DIR/config.toml"

CFG=$(ca_config)
if [ -n "$CA_CERT" ]; then
    "$BIN_DST" --config "$CFG" ca import --cert "$CA_CERT" --key "$CA_KEY" --force
elif "$BIN_DST" --config "$CFG" ca status --json >/dev/null 2>&1; then
    echo "org CA already present; kept"
else
    "$BIN_DST" --config "$CFG" ca init
fi
"$BIN_DST" --config "$CFG" ca install --root "$ROOT" $REFRESH

if [ "$START" = 1 ]; then
    if systemd_running; then
        systemctl daemon-reload
        systemctl enable --now promptwall.service
        echo "promptwall is running: \`promptwall status\`, \`sudo promptwall doctor\`"
    else
        echo "systemd is not running: start the agent with \`sudo promptwall up\`"
    fi
else
    echo "installed under $ROOT; not started (--root/--no-start)"
fi
