#!/usr/bin/env bash
# Installs what xtcp needs on a fresh Debian 12 machine (as root). Idempotent: installs only
# what is missing. See ../shared/ENVIRONMENT.md for why each package is here.
set -euo pipefail

PKGS=(
  clang-19              # the XDP program is C compiled to BPF (aya-ebpf needs rust-src, absent);
                        # without it xdp-ebpf/build.rs uses the checked-in prebuilt object
  libbpf-dev            # bpf_helpers.h for the XDP program
  ethtool               # veth peers need `ethtool -K <peer> tx off`
  iproute2 iputils-ping # namespaces, veth, the ping test
  tcpdump tshark        # checksum checks on captures
  ncat curl wrk         # kernel-side peers in the integration tests
  python3
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages (${missing[*]}) and not root: install them, or run as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer before installing.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
