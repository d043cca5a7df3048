#!/usr/bin/env bash
# Installs everything BondWatch and its tests need on a fresh Debian 12 machine (run as root).
# Idempotent: each step is skipped when what it installs is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg chromium fonts-noto-cjk python3-gi gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav postgresql)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
stamp=.work/setup-$(sha256sum pyproject.toml | cut -c1-16).stamp
if [[ ! -f $stamp ]] || ! command -v bondwatch >/dev/null; then
  echo "setup: installing Python packages"
  # torch and torchvision first, pinned to the builds that lie on this machine's disk.
  $PY -m pip install -q torch==2.14.1 torchvision==0.29.1
  $PY -m pip install -q -e ".[test,export,bench]"
  mkdir -p .work && touch "$stamp"
fi
