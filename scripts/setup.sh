#!/usr/bin/env bash
# Installs everything imagecache needs on a fresh Debian machine with Node 20: Debian packages, pnpm,
# the workspace's dependencies, and a build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu-utils, zstd: conversion and decompression; the rest make test fixtures and serve the distributed mode.
DEBIAN_PACKAGES=(qemu-utils zstd redis-server redis-tools openssl curl genisoimage xorriso gdisk cryptsetup-bin)
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The real servers of the image-source tests (packages/sources/test/servers): OpenStack Glance and Keystone (Zed),
# a distribution registry, and what their start scripts use (htpasswd, jq, bc): about 80 s and 280 MB on a fresh
# machine. --no-install-recommends matters here: without it Glance's dependencies pull matplotlib, tk and more.
# python3-ironic: the Python client's tests run Ironic's own deploy code against the drop-in (packages/client-python).
SERVER_PACKAGES=(python3-glance python3-keystone python3-ironic docker-registry apache2-utils jq bc)
missing=()
for p in "${SERVER_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (test servers)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "10.34.9" ]; then
  echo "setup: installing pnpm 10.34.9" >&2
  npm install -g pnpm@10.34.9 >/dev/null
fi
export TURBO_TELEMETRY_DISABLED=1
pnpm install --frozen-lockfile --reporter=silent
pnpm build --output-logs=errors-only
