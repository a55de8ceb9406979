#!/usr/bin/env python3
"""Every output the audit writes, for a set of captures, into one directory:
the behaviour-unchanged check of a refactor (issue 21).

    python bench/outputs.py OUT [--engine numpy] [--corpus]

For each capture: NAME.json (certificate), NAME.html, NAME.csv (one row per
flow and zone), NAME.prom (the cleanpath_audit_* textfile page) and NAME.rc
(exit code), audited with the demo policy, inventory and ASN database at a
fixed --now. Captures: the bench captures in bench/out (generated if missing:
plain, tunnelled), and with --corpus every file of ../shared/corpus/pcaps and
malformed-tcpdump. Run it before and after a change and compare:

    python bench/outputs.py /tmp/before && <change> && python bench/outputs.py /tmp/after
    diff -rq /tmp/before /tmp/after && echo identical

The audits run in this one process (click's ``standalone_mode=False``), so a
thousand corpus files take about a minute; the engine is chosen before the
package is imported (CLEANPATH_ENGINE), as the console script would.
"""

import argparse
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO = os.path.join(ROOT, "verifier", "demo")
CORPUS = os.path.abspath(os.environ.get("VERIFIER_SHARED", os.path.join(ROOT, "..", "shared")) + "/corpus")
NOW = "2026-06-01T00:00:00Z"
CLOCKED = ("cleanpath_audit_duration_seconds", "cleanpath_audit_last_run_timestamp_seconds",
           "cleanpath_audit_last_success_timestamp_seconds")
BENCH = [("bench-200000-5000.pcap", []), ("tunnelled-200000-5000.pcap", ["--tunnelled", "0.4"])]


def captures(corpus):
    out = []
    for name, extra in BENCH:
        path = os.path.join(HERE, "out", name)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            subprocess.run([sys.executable, os.path.join(HERE, "gen_pcap.py"), path, "--packets", "200000",
                            "--flows", "5000", *extra], check=True)
        out.append(("bench", path))
    if corpus:
        for sub in ("pcaps", "malformed-tcpdump"):
            for path in sorted(glob.glob(os.path.join(CORPUS, sub, "**", "*"), recursive=True)):
                if os.path.isfile(path) and not path.endswith((".tsv", ".txt")) and "LICENSES" not in path:
                    out.append((os.path.relpath(os.path.dirname(path), CORPUS).replace(os.sep, "_"), path))
    return out


def _steady(page):
    """The metrics page without its wall-clock samples (run time, duration)."""
    if not os.path.exists(page):
        return
    with open(page) as f:
        lines = [(ln.split(" ")[0] + " <clock>\n") if ln.startswith(CLOCKED) else ln for ln in f]
    with open(page, "w") as f:
        f.writelines(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--engine", choices=["compiled", "numpy"], default="compiled")
    ap.add_argument("--corpus", action="store_true", help="also every corpus capture")
    args = ap.parse_args()
    if args.engine == "numpy":
        os.environ["CLEANPATH_ENGINE"] = "numpy"
    from verifier import engine
    from verifier.cli import cli
    if engine.name() != args.engine:
        sys.exit(f"asked for the {args.engine} engine; this install runs {engine.name()}")
    os.makedirs(args.out, exist_ok=True)
    data_dir = os.path.join(HERE, "out", "outputs-data")      # kept: its import time is in every certificate
    oui = sorted(glob.glob(os.path.join(CORPUS, "oui", "*", "*.csv")))
    if oui and not os.path.isdir(os.path.join(data_dir, "oui")):
        cli(["--data-dir", data_dir, "db", "import-oui", *oui], standalone_mode=False)
    for group, path in captures(args.corpus):
        stem = os.path.join(args.out, f"{group}__{os.path.basename(path)}")
        prom = stem + ".prom.d"
        os.makedirs(prom, exist_ok=True)
        argv = ["--data-dir", data_dir, "audit", path, "--policy", os.path.join(DEMO, "policy.yaml"),
                "--inventory", os.path.join(DEMO, "inventory.yaml"), "--asn-db", os.path.join(DEMO, "demo-asn.mmdb"),
                "--now", NOW, "--json", stem + ".json", "--html", stem + ".html", "--csv", stem + ".csv",
                "--textfile", prom, "-q"]
        try:
            rc = cli(argv, standalone_mode=False)
        except SystemExit as done:
            rc = done.code
        with open(stem + ".rc", "w") as f:
            f.write(f"{rc}\n")
        _steady(os.path.join(prom, "cleanpath_audit.prom"))
    print(f"{len(os.listdir(args.out))} files in {args.out} ({engine.name()} engine)")


if __name__ == "__main__":
    main()
