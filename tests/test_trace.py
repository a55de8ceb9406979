"""Active probing in a three-router network-namespace lab (root only)."""

import json
import sys

import pytest

from lab import RouterChain, require_root_netns
from verifier.probe import TokenBucket

POLICY = """\
version: 1
vendors:
  trusted: [cisco]
  untrusted: [huawei, zte]
zones:
  branch:
    prefixes: [198.51.100.0/30]
rules:
  - name: branch-clean-path
    zone: branch
    require: clean-path
    kinds: [router-hop]
    on_unattributed: unverified
"""

INVENTORY = """\
devices:
  - {name: r1, vendor: cisco, ips: [198.51.100.2, 198.51.100.5]}
  - {name: r2, vendor: huawei, model: NE40E, ips: [198.51.100.6, 198.51.100.9]}
  - {name: r3, vendor: cisco, ips: [198.51.100.10, 203.0.113.1]}
"""


@pytest.fixture(scope="module")
def chain():
    require_root_netns()
    with RouterChain() as c:
        yield c


@pytest.mark.parametrize("proto", ["udp", "tcp", "icmp"])
def test_trace_finds_every_hop_in_order_and_names_the_untrusted_router(chain, tmp_path, proto):
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    res = chain.run("cli", sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "d"), "trace",
                    RouterChain.SERVER, "--proto", proto, "--policy", str(tmp_path / "policy.yaml"),
                    "--inventory", str(tmp_path / "inventory.yaml"), "--json", "--timeout", "2")
    assert res.returncode == 1, res.stderr
    (result,) = json.loads(res.stdout)
    assert [h["address"] for h in result["hops"]] == ["198.51.100.2", "198.51.100.6", "198.51.100.10",
                                                      RouterChain.SERVER]
    assert result["reached"] and result["zone"] == "branch" and result["source"] == "198.51.100.1"
    assert result["verdict"] == "VIOLATION"
    assert [r["text"] for r in result["reasons"]] == ["router-hop 198.51.100.6 is untrusted"]
    hops = [h["element"] for h in result["hops"][:3]]
    assert [h["vendor"] for h in hops] == ["cisco", "huawei", "cisco"]
    assert all(h["evidence"]["source"] == "probe" and h["evidence"]["attributed_by"] == "inventory" for h in hops)
    assert hops[1]["evidence"]["ttl"] == 2 and hops[1]["evidence"]["name"] == "r2"


def test_trace_text_output_and_clean_path(chain, tmp_path):
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "inventory.yaml").write_text(INVENTORY.replace("vendor: huawei", "vendor: cisco"))
    res = chain.run("cli", sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "d"), "trace",
                    RouterChain.SERVER, "--policy", str(tmp_path / "policy.yaml"),
                    "--inventory", str(tmp_path / "inventory.yaml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verdict: CLEAN" in res.stdout and "198.51.100.6" in res.stdout


def test_token_bucket_paces_probes():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s
    bucket = TokenBucket(10, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(12):
        bucket.take()
    assert now[0] == pytest.approx(1.0)          # 2 from the burst, then 10 per second


SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sys.argv[1])))
s.sendto(b"hello", (sys.argv[2], 5000))
"""


def test_daemon_probe_hops_join_later_verdicts(chain, tmp_path):
    """verifier run --probe in the client namespace: the first flow toward the
    server queues a trace; a flow after it is judged with the probed hops."""
    import subprocess
    import threading
    from lab import wait_for
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    events = tmp_path / "events.jsonl"
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", chain.ns["cli"], sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "d"),
         "run", "-i", "l0a", "--probe", "--probe-rate", "50", "--policy", str(tmp_path / "policy.yaml"),
         "--inventory", str(tmp_path / "inventory.yaml"), "--events", str(events), "--events-all",
         "--idle-timeout", "1", "--metrics-addr", "127.0.0.1:9108"], stderr=subprocess.PIPE, text=True)
    probed = lambda e: [el for el in e["path"] if el["kind"] == "router-hop" and  # noqa: E731
                        el["evidence"]["source"] == "probe"]
    try:
        for line in daemon.stderr:                          # the ready line, not a fixed start-up sleep
            if "source ready" in line:
                break
        threading.Thread(target=daemon.stderr.read, daemon=True).start()    # keep its log flowing
        chain.run("cli", sys.executable, "-c", SEND, "41000", RouterChain.SERVER)

        def flow(sport):
            for line in (events.read_text().splitlines() if events.exists() else []):
                e = json.loads(line)
                if e["sport"] == sport and e["dst"] == RouterChain.SERVER and e.get("phase") == "ended":
                    return e
            return None
        wait_for(lambda: flow(41000), 20, what="the first flow judged")     # it queued the trace
        # Later flows until one is judged with the trace's hops (the trace runs meanwhile).
        sports = iter(range(41001, 41100))

        def traced():
            sport = next(sports)
            chain.run("cli", sys.executable, "-c", SEND, str(sport), RouterChain.SERVER)
            e = wait_for(lambda: flow(sport), 20, what=f"flow {sport} judged")
            return e if probed(e) else None
        later = wait_for(traced, 60, every=0.5, what="a flow judged with the probed hops")
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
    hops = probed(later)
    assert [h["subject"] for h in hops] == ["198.51.100.2", "198.51.100.6", "198.51.100.10"]
    assert later["verdict"] == "VIOLATION" and later["rule"] == "branch-clean-path"
    assert any("198.51.100.6 is untrusted" in r["text"] for r in later["reasons"])
