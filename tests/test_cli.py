"""End-to-end: the click commands, exit codes, certificate, HTML and CSV."""

import csv
import json
import os
import re

import pytest
from click.testing import CliRunner

from verifier.cli import cli
from verifier.craft import ETH_IPV4, PcapWriter, ether, ipv4, tcp

HERE = os.path.dirname(__file__)
DEMO = os.path.join(os.path.dirname(HERE), "verifier", "demo")
NOW = "2026-11-21T12:00:00Z"


def run(*args, data_dir=None):
    runner = CliRunner()
    return runner.invoke(cli, ["--data-dir", str(data_dir or "/nonexistent-data-dir"), *args], catch_exceptions=False)


def normalise(cert):
    """Replace what depends on the machine (absolute paths, library versions)."""
    text = json.dumps(cert, indent=2, sort_keys=True)
    text = text.replace(DEMO, "<demo>")
    text = re.sub(r"scapy \d+\.\d+[.\w]*", "scapy <version>", text)
    text = re.sub(r'"tool_version": "[^"]+"', '"tool_version": "<version>"', text)
    cert = json.loads(text)
    for source in cert["data"]:
        if source["source"] == "oui":
            source["entries"] = "<count>"
    return cert


def test_demo_matches_the_golden_certificate(tmp_path):
    out = tmp_path / "cert.json"
    result = run("audit", "--demo", "--now", NOW, "--json", str(out), "-q")
    assert result.exit_code == 1, result.output                 # the demo has a violation
    got = normalise(json.loads(out.read_text()))
    golden_path = os.path.join(HERE, "golden", "demo-certificate.json")
    if os.environ.get("UPDATE_GOLDEN"):
        with open(golden_path, "w") as fh:
            json.dump(got, fh, indent=2, sort_keys=True)
            fh.write("\n")
    with open(golden_path) as fh:
        assert got == json.load(fh)


def test_demo_summary_shows_one_certified_zone_and_the_violation():
    result = run("audit", "--demo", "--now", NOW)
    assert result.exit_code == 1
    assert re.search(r"embassy-lan\s+CERTIFIED", result.output)
    assert re.search(r"consular-wifi\s+NOT_CERTIFIED", result.output)
    assert "00:18:82:3a:10:01 is huawei equipment" in result.output
    assert "expired exception" in result.output


def test_html_report_is_self_contained(tmp_path):
    out = tmp_path / "report.html"
    run("audit", "--demo", "--now", NOW, "--html", str(out), "-q")
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    for needle in ("CERTIFIED", "NOT CERTIFIED", "Zone &times; vendor", "<svg", "huawei", "Community ID",
                   "remote-network", "Expired exceptions"):
        assert needle in html, needle


def test_csv_has_one_row_per_flow_and_zone(tmp_path):
    out = tmp_path / "flows.csv"
    run("audit", "--demo", "--now", NOW, "--csv", str(out), "-q")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 14
    assert {r["verdict"] for r in rows} == {"CLEAN", "VIOLATION"}
    assert all(r["community_id"].startswith("1:") for r in rows)


def test_csv_dash_writes_the_rows_to_stdout_instead_of_the_summary(tmp_path):
    out = tmp_path / "flows.csv"
    run("audit", "--demo", "--now", NOW, "--csv", str(out), "-q")
    result = run("audit", "--demo", "--now", NOW, "--csv", "-")
    assert result.exit_code == 1
    assert result.stdout_bytes == out.read_bytes()
    assert not os.path.exists("-")


def write_capture(path, src_mac, local="198.51.100.7", remote="8.8.8.8"):
    with PcapWriter(str(path)) as w:
        for i in range(3):
            w.write(1.0 + i, ether("00:00:0c:01:02:03", src_mac, ETH_IPV4, ipv4(local, remote, 6, tcp(40000, 443))))
            w.write(1.5 + i, ether(src_mac, "00:00:0c:01:02:03", ETH_IPV4, ipv4(remote, local, 6, tcp(443, 40000))))


POLICY = """\
version: 1
vendors: {trusted: [cisco, dell], untrusted: [huawei]}
zones: {lan: {prefixes: [198.51.100.0/24]}, empty: {prefixes: [192.0.2.0/24]}}
rules:
  - {name: lan-clean, zone: lan, require: clean-path, kinds: [l2-neighbor]}
"""


@pytest.mark.parametrize("neighbour,code", [("00:00:0c:01:02:03", 0),      # Cisco: certified
                                            ("00:18:82:00:00:01", 1)])     # Huawei: violation
def test_exit_codes_follow_the_verdict(tmp_path, write, neighbour, code):
    cap = tmp_path / "c.pcap"
    with PcapWriter(str(cap)) as w:
        w.write(1.0, ether(neighbour, "d4:be:d9:00:00:01", ETH_IPV4, ipv4("198.51.100.7", "8.8.8.8", 6, tcp(1, 443))))
    result = run("audit", str(cap), "--policy", write("p.yaml", POLICY), "--json", str(tmp_path / "c.json"))
    assert result.exit_code == code, result.output
    zones = {z["name"]: z["status"] for z in json.loads((tmp_path / "c.json").read_text())["zones"]}
    assert zones == {"lan": "CERTIFIED" if code == 0 else "NOT_CERTIFIED", "empty": "NO_TRAFFIC"}


def test_exit_3_when_attribution_is_missing(tmp_path, write):
    cap = tmp_path / "c.pcap"
    with PcapWriter(str(cap)) as w:            # a locally administered neighbour MAC: unattributable
        w.write(1.0, ether("06:00:00:00:00:01", "d4:be:d9:00:00:01", ETH_IPV4,
                           ipv4("198.51.100.7", "8.8.8.8", 6, tcp(1, 443))))
    result = run("audit", str(cap), "--policy", write("p.yaml", POLICY))
    assert result.exit_code == 3, result.output
    assert re.search(r"lan\s+UNVERIFIED", result.output)


def test_unreadable_capture_is_recorded_and_others_still_run(tmp_path, write):
    good, bad = tmp_path / "good.pcap", tmp_path / "bad.pcap"
    with PcapWriter(str(good)) as w:
        w.write(1.0, ether("00:00:0c:01:02:03", "d4:be:d9:00:00:01", ETH_IPV4,
                           ipv4("198.51.100.7", "8.8.8.8", 6, tcp(1, 443))))
    bad.write_bytes(b"garbage!" * 10)
    result = run("audit", str(bad), str(good), "--policy", write("p.yaml", POLICY), "--json", str(tmp_path / "o.json"))
    assert result.exit_code == 2                 # nothing violated, but one input could not be read
    cert = json.loads((tmp_path / "o.json").read_text())
    assert cert["captures"][0]["errors"] and "not a pcap or pcapng file" in cert["captures"][0]["errors"][0]
    assert cert["captures"][1]["packets"] == 1 and cert["zones"][0]["status"] == "CERTIFIED"


def test_bad_policy_exits_2_with_positions(write):
    result = CliRunner().invoke(cli, ["policy", "check", write("p.yaml", "version: 1\nzonez: {}\n")])
    assert result.exit_code == 2 and "p.yaml:2:1: policy: unknown key 'zonez' (did you mean 'zones'?)" in result.output


def test_policy_check_and_dump(write):
    path = write("p.yaml", POLICY)
    assert "ok: 2 zone(s), 1 rule(s)" in run("policy", "check", path).output
    dumped = run("policy", "check", path, "--dump").output
    assert "lan-clean" in dumped and "198.51.100.0/24" in dumped


def test_lookup_json_lists_every_source(write):
    inv = write("inv.yaml", "devices:\n  - {name: gw, vendor: cisco, macs: ['00:18:82:00:00:01']}\n")
    result = run("lookup", "--json", "--inventory", inv, "--asn-db", os.path.join(DEMO, "demo-asn.mmdb"),
                 "00:18:82:00:00:01", "202.97.33.5", "198.51.100.1")
    assert result.exit_code == 0, result.output
    mac, addr, local = json.loads(result.output)
    assert [(a["source"], a["vendor"], a["prefix_len"]) for a in mac["answers"]] == \
        [("inventory", "cisco", 48), ("oui", "huawei", 24)]
    assert mac["answers"][1]["organization"].lower().startswith("huawei")
    assert addr["answers"][0]["asn"] == 4134 and addr["answers"][0]["trust"] == "untrusted"
    assert local["answers"] == [] and "special-purpose" in local["note"]


def test_lookup_rejects_garbage():
    assert run("lookup", "not-an-address").exit_code == 2


def test_db_import_oui_then_lookup_uses_it(tmp_path):
    from conftest import corpus_path
    folder = corpus_path("oui", "ieee-20260606")
    result = run("db", "import-oui", *(os.path.join(folder, f) for f in ("oui.csv", "mam.csv", "oui36.csv")),
                 data_dir=tmp_path)
    assert result.exit_code == 0 and "MA-S" in result.output
    answer = json.loads(run("lookup", "--json", "8c:1f:64:af:a0:01", data_dir=tmp_path).output)[0]["answers"][0]
    assert answer["database"] == "ieee-registry" and answer["prefix_len"] == 36


def test_progress_bar_moves_while_a_large_capture_is_read(monkeypatch, capsys):
    import datetime
    import verifier.audit as audit
    from verifier.cli import App
    monkeypatch.setattr(audit, "PROGRESS_MIN_BYTES", 1)
    monkeypatch.setattr("verifier.capture.files.CHUNK", 4096)
    shown = []
    monkeypatch.setattr(audit._Progress, "_show", lambda self, v: shown.append(v))
    app = App("/nonexistent")
    audit.run_audit([os.path.join(DEMO, "demo.pcap")], app.policy([]), app.attributor(None, []),
                    datetime.datetime(2026, 11, 21, tzinfo=datetime.timezone.utc), progress=True)
    size = os.path.getsize(os.path.join(DEMO, "demo.pcap"))
    assert len(shown) > 5 and shown == sorted(shown) and shown[-1] == size


@pytest.mark.parametrize("args, code", [(["audit", "--demo", "--now", NOW], 1),
                                        (["audit", "/nonexistent.pcap", "--now", NOW], 2),
                                        (["--version"], 0)])
def test_the_console_script_leaves_with_every_byte_written_and_the_exit_code(tmp_path, args, code):
    # The console script ends with os._exit (no heap teardown): its buffered
    # stdout must still arrive whole, through a pipe, and the code be click's.
    import subprocess
    import sys
    full = ["--data-dir", str(tmp_path), *args]
    done = subprocess.run([sys.executable, "-m", "verifier", *full], capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    expected = CliRunner().invoke(cli, full)
    assert expected.exit_code == code
    assert done.stdout == expected.stdout and done.stdout


def test_lookup_says_which_option_would_answer_and_which_policy_judged(tmp_path):
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "lookup", "202.97.33.5", "192.168.1.1"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1] == ("  no source answers: unknown (no ASN database given: --asn-db FILE, a MaxMind-format ASN "
                        "database, answers for IP addresses)")
    assert lines[3] == "  no source answers: unknown"          # a private address: no database would answer
    assert "trust as the shipped default policy judges it (" in result.stderr and "default-policy.yaml" in result.stderr
