#!/usr/bin/env bash
# Install what the tests need, then run the whole suite.
#   - Debian packages: tshark (flow and OUI cross-checks, the dumpcap capture
#     engine), mmdb-bin (mmdblookup, the ASN cross-check), prometheus,
#     prometheus-pushgateway and prometheus-alertmanager (the lab scrapes the
#     daemon with a real Prometheus; promtool/amtool check deploy/), openssl
#     (TLS test, and the README's signature check) and iproute2 (network
#     namespaces); chromium and poppler-utils (the HTML report printed to PDF,
#     its pages read back); bird2, gobgpd and frr (a BGP lab in namespaces:
#     real MRT RIB dumps, and routers streaming BMP) and bgpdump (the MRT
#     reader's oracle); softflowd (NetFlow v5/v9 and IPFIX exports of the
#     test captures) and pmacct (pmacctd's sFlow of them); gcc and, for Debian's own
#     python3, python3-dev, so the install builds the compiled per-frame module
#     (verifier/engine/_fastpath.c; tests/test_fastpath.py compares it with the numpy
#     passes and skips without it). Skipped when apt-get is
#     unavailable or we are not root; the tests that need them then skip
#     with a reason.
#   - Python: the package with its [test] extras, in .venv unless a virtual
#     environment is already active.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  missing=()
  command -v tshark >/dev/null || missing+=(tshark)
  command -v mmdblookup >/dev/null || missing+=(mmdb-bin)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v pdftotext >/dev/null || missing+=(poppler-utils)
  command -v bird >/dev/null || [ -x /usr/sbin/bird ] || missing+=(bird2)
  command -v bgpdump >/dev/null || missing+=(bgpdump)
  command -v gobgpd >/dev/null || missing+=(gobgpd)
  command -v softflowd >/dev/null || [ -x /usr/sbin/softflowd ] || missing+=(softflowd)
  command -v pmacctd >/dev/null || [ -x /usr/sbin/pmacctd ] || missing+=(pmacct)
  [ -x /usr/lib/frr/bgpd ] || missing+=(frr)
  command -v cc >/dev/null || missing+=(gcc libc6-dev)
  python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "note: not root or no apt-get: tshark/mmdblookup cross-checks may skip" >&2
fi

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install -q --upgrade pip >/dev/null
# setuptools prints a banner about editable installs on every run: kept out of sight unless the install fails.
python -m pip install -q -e '.[test]' > .venv-install.log 2>&1 || { cat .venv-install.log >&2; exit 1; }
exec python -m pytest -q "$@"
