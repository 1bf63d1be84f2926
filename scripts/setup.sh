#!/usr/bin/env bash
# Set up a development checkout of secl on Debian 12: system packages (as root, only those missing),
# a virtualenv in .venv, and secl installed into it in editable mode with the test extras.
# Safe to run again: it only does what is not done yet.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the TPM simulator and tpm2-tools (tests cross-check against them), the TSS headers
# tpm2-pytss compiles against, openssl (the EK-certificate oracle in the tests), and PostgreSQL (the
# central is tested on it as well as on SQLite; the tests start a throwaway cluster of their own),
# systemd (systemd-analyze lints the units) and systemd-container (systemd-nspawn boots a real systemd that
# starts the central's unit), and wrk (the load generator of bench/central_api.py). dracut-core builds a
# test initramfs with the secl-measure module (dracut-core alone: the "dracut" package would replace
# initramfs-tools; the tests never touch /boot or the machine's own initramfs). qemu-utils (qemu-img) is
# secl-wpm's encryption engine and QEMU's own LUKS reader in its tests; cryptsetup-bin (cryptsetup, without
# the boot-time scripts of the "cryptsetup" package) writes secl-wpm's LUKS1 headers and is the tests'
# independent LUKS oracle (isLuks, luksDump, open --test-passphrase).
APT_PACKAGES=(
  swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config gcc openssl ca-certificates
  postgresql systemd systemd-container wrk dracut-core cpio qemu-utils cryptsetup-bin
  python3 python3-venv python3-dev
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing system packages: ${missing[*]}; run this as root or install them with apt" >&2
    exit 1
  fi
  echo "setup: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# tpm2-pytss compiles against libtss2 on first install (about 40 s).
stamp=.venv/.secl-installed
if [[ ! -f $stamp || setup.cfg -nt $stamp || pyproject.toml -nt $stamp ]]; then
  echo "setup: installing secl and its test dependencies into .venv"
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
echo "setup: done ($(.venv/bin/secl --version))"
