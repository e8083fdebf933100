#!/bin/sh
# Remove promptwall installed by install.sh: `sudo deploy/uninstall.sh [--purge] [--root DIR]`.
# Without --purge the config, the org CA and the group stay for a reinstall.
exec "$(dirname "$0")/install.sh" --uninstall "$@"
