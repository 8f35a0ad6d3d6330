#!/usr/bin/env bash
# Installs and builds everything the node rig needs (placeholder until the rig lands).
set -euo pipefail
echo "rig set-up: nothing yet"
