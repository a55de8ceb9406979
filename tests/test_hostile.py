"""Hostile input (issue 22), one crafted reproduction per class: bounded
nesting on every route, damaged pcapng and gzip files that keep what they
still hold, exit codes that never make a crash look like a finding, fail
closed when nothing decoded, and outputs that appear whole or not at all."""

import gzip
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest
from click.testing import CliRunner

from verifier import craft as c
from verifier import decode as d
from verifier.capture import open_capture
from verifier.capture.gz import GzipReader
from verifier.cli import cli

import fuzz

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
T4 = c.ipv4("198.51.100.5", "192.0.2.7", 6, c.tcp(40000, 443))


def frames_of(n, payload=b""):
    return [c.ether(B, A, c.ETH_IPV4, c.ipv4(f"198.51.100.{i % 250 + 1}", "192.0.2.7", 6,
                                             c.tcp(1000 + i, 443, payload))) for i in range(n)]


# --- nesting -----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(40))
def test_deep_nesting_on_every_route_is_bounded(seed):
    import random
    frame = fuzz.deep_frame(random.Random(seed))
    out = d.decode(frame, d.LT_ETHERNET)          # no RecursionError, whatever the layers
    assert isinstance(out, d.Packet) or out in d.REASONS


def test_pseudowire_and_pppoe_nests_of_hundreds_give_the_depth_reason():
    pw = pppoe = b"\x08\x00" + T4
    for _ in range(490):
        pw = b"\x88\x47" + struct.pack("!I", (16 << 12) | 0x1FF) + b"\0" * 4 + b"\x02" * 12 + pw
    for _ in range(330):
        inner = struct.pack("!I", (16 << 12) | 0x1FF) + b"\0" * 4 + b"\x02" * 12 + pppoe
        pppoe = b"\x88\x64\x11\x00\x00\x01" + struct.pack("!H", len(inner) + 2) + b"\x02\x81" + inner
    for body in (pw, pppoe):
        assert d.decode(c.mac(B) + c.mac(A) + body, d.LT_ETHERNET) == d.R_DEPTH


def test_icmp_errors_quoting_icmp_errors_stop_at_the_cap():
    body = T4
    for _ in range(2000):
        body = c.ipv4("203.0.113.1", "198.51.100.5", 1, c.icmp(11, 0, body))
    pkt = d.decode(c.ether(B, A, c.ETH_IPV4, body), d.LT_ETHERNET)
    depth = 0
    while isinstance(pkt, d.Packet) and pkt.quote is not None:
        pkt, depth = pkt.quote, depth + 1
    assert 0 < depth <= d.MAX_NESTING


def test_a_few_layers_still_decode_and_a_pseudowire_keeps_its_tunnel():
    inner = c.ether("02:00:00:00:00:22", "02:00:00:00:00:11", c.ETH_IPV4, T4)
    gre = c.ipv4("192.0.2.1", "192.0.2.2", 47, b"\x00\x00\x88\x47" + c.mpls([16], b"\0\0\0\0" + inner))
    pkt = d.decode(c.ether(B, A, c.ETH_IPV4, gre), d.LT_ETHERNET)
    assert (pkt.sport, pkt.src_mac.hex()) == (40000, "020000000011")
    assert [t[0] for t in pkt.tunnels] == [d.GRE]


def test_tso_frames_decode_as_the_whole_captured_datagram():
    frame = bytearray(c.ether(B, A, c.ETH_IPV4, c.ipv4("198.51.100.5", "192.0.2.7", 6, c.tcp(1, 2, b"x" * 3000))))
    frame[16:18] = b"\0\0"
    pkt = d.decode(bytes(frame), d.LT_ETHERNET)
    assert (pkt.family, pkt.sport, pkt.dport) == (4, 1, 2)
    bad = bytearray(frame)
    bad[16:18] = struct.pack("!H", 12)             # shorter than its own header: still damage
    assert d.decode(bytes(bad), d.LT_ETHERNET) == d.R_IPV4_BAD


# --- damaged files -----------------------------------------------------------

def test_pcapng_whose_last_packet_block_is_shorter_than_its_header(tmp_path):
    data = fuzz.pcapng_bytes(frames_of(3)) + struct.pack("<III", 6, 12, 12)
    path = tmp_path / "short.pcapng"
    path.write_bytes(data)
    cap = open_capture(str(path))
    assert len(list(cap.frames())) == 4           # three EPBs and the trailing simple packet block
    assert cap.errors == [f"offset {len(data) - 12}: enhanced packet block of 12 bytes is shorter than its "
                          "32-byte header and trailer"]


def gz_cases(raw):
    whole = gzip.compress(raw, 6)
    flipped = bytearray(whole)
    flipped[100] ^= 0x04                              # inside the first deflate block: an invalid stream
    crc = bytearray(whole)
    crc[-6] ^= 0x01
    return {"cut": whole[:len(whole) * 9 // 10], "corrupt": bytes(flipped), "crc": bytes(crc),
            "garbage": whole + b"not gzip", "padding": whole + b"\0" * 512,
            "members": gzip.compress(raw[:5000]) + gzip.compress(raw[5000:])}


def test_a_damaged_gzip_stream_returns_every_byte_before_the_damage(tmp_path):
    raw = fuzz.pcap_bytes(frames_of(3000, b"y" * 64))
    for name, data in gz_cases(raw).items():
        path = tmp_path / f"{name}.gz"
        path.write_bytes(data)
        reader = GzipReader(str(path))
        out = b"".join(iter(lambda: reader.read(100_000), b""))
        if name in ("padding", "members"):
            assert out == raw and reader.damage is None, name
            continue
        at, produced, message = reader.damage
        assert produced == len(out) and 0 < at <= len(data), name
        if name == "crc":
            assert out == raw and message == "gzip CRC check failed"
        elif name == "garbage":
            assert out == raw and "not another gzip member" in message
        else:
            # zlib's own one-shot decoder, given the input up to the damage, agrees byte for byte
            z = zlib.decompressobj(31)
            assert out == z.decompress(data[:at]), name
            assert raw.startswith(out) if name == "cut" else True


def test_damaged_gzip_captures_keep_their_records_and_say_where(tmp_path):
    raw = fuzz.pcap_bytes(frames_of(3000, b"y" * 64))
    cases = gz_cases(raw)
    for name in ("cut", "crc", "corrupt"):
        path = tmp_path / f"{name}.pcap.gz"
        path.write_bytes(cases[name])
        cap = open_capture(str(path))
        frames = list(cap.frames())
        [error] = cap.errors
        assert "at compressed byte" in error and "the records before it are kept" in error
        if name == "cut":
            assert 2500 < len(frames) < 3000
        elif name == "crc":
            assert len(frames) == 3000
        if shutil_which("tshark") and name != "corrupt":
            assert len(frames) == tshark_count(str(path)), name


def shutil_which(name):
    import shutil
    return shutil.which(name)


def tshark_count(path):
    out = subprocess.run(["tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.number"], capture_output=True,
                         text=True, timeout=60)
    return len(out.stdout.split())


# --- exit codes --------------------------------------------------------------

def audit(*args, tmp_path=None):
    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "audit", *args])


def test_nothing_decodable_is_an_input_error_naming_why(tmp_path):
    path = tmp_path / "hdlc.pcap"
    path.write_bytes(fuzz.pcap_bytes([b"\0" * 60] * 3412, linktype=147))
    out = tmp_path / "cert.json"
    result = audit(str(path), "--json", str(out), tmp_path=tmp_path)
    assert result.exit_code == 2, result.output
    import json
    [capture] = json.loads(out.read_text())["captures"]
    assert capture["errors"] == [f"{path}: no frame of its 3,412 decodes as IP, so nothing in it could be judged: "
                                 "3,412 frames of link type USER0 (147), which this version does not decode"]


def test_an_empty_capture_certifies_nothing(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(fuzz.pcap_bytes([]))
    assert audit(str(path), "-q", tmp_path=tmp_path).exit_code == 2


def test_an_internal_error_exits_4_in_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import verifier.audit
    path = tmp_path / "ok.pcap"
    path.write_bytes(fuzz.pcap_bytes(frames_of(10)))

    def broken(*args, **kw):
        raise KeyError("a bug")
    monkeypatch.setattr(verifier.audit, "run_audit", broken)
    outs = [tmp_path / n for n in ("c.json", "c.html", "c.csv")]
    result = audit(str(path), "--json", str(outs[0]), "--html", str(outs[1]), "--csv", str(outs[2]),
                   tmp_path=tmp_path)
    assert result.exit_code == 4
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: KeyError: 'a bug' (at test_hostile.py:")
    assert not any(p.exists() for p in outs)
    assert sorted(os.listdir(tmp_path)) == ["data", "ok.pcap"]
    debug = CliRunner().invoke(cli, ["--debug", "--data-dir", str(tmp_path / "data"), "audit", str(path)])
    assert debug.exit_code == 4 and "Traceback (most recent call last)" in debug.output


def test_kill_9_during_an_audit_leaves_no_partial_output(tmp_path):
    """Flows end while the capture is read (a 1 s idle timeout), so the CSV is
    being written when the process is killed; nothing may appear."""
    path = tmp_path / "big.pcap"
    frames = []
    for i in range(200_000):
        frames.append(c.ether(B, A, c.ETH_IPV4, c.ipv4(f"198.51.{100 + i % 2}.{i % 250 + 1}", "192.0.2.7", 17,
                                                        c.udp(1024 + i % 60000, 53))))
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, f in enumerate(frames):
            fh.write(struct.pack("<IIII", 1_700_000_000 + i // 200, 0, len(f), len(f)) + f)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "verifier", "--data-dir", str(tmp_path / "data"), "audit",
                             str(path), "--idle-timeout", "1", "--json", str(out / "cert.json"), "--html",
                             str(out / "cert.html"), "--csv", str(out / "flows.csv"), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not _writing_unnamed(proc.pid, 1 << 20):
            time.sleep(0.01)
        assert proc.poll() is None, "the audit ended before it was seen writing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert os.listdir(out) == []


def _writing_unnamed(pid, past):
    """Whether ``pid`` holds an unnamed (O_TMPFILE) file written past ``past`` bytes."""
    fds = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return False
    for fd in names:
        try:
            target = os.readlink(os.path.join(fds, fd))
            if "(deleted)" not in target:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                pos = int(fh.readline().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if pos > past:
            return True
    return False


def test_the_cli_module_runs_with_python_m():
    assert subprocess.run([sys.executable, "-m", "verifier", "--help"], capture_output=True).returncode == 0


# --- the daemon survives bugs ------------------------------------------------

def test_the_daemon_counts_a_bug_per_packet_or_chunk_and_goes_on(tmp_path, monkeypatch):
    """A bug met in one slow-path packet costs that packet; one in a chunk's
    fast path costs that chunk: both counted as internal-error in /metrics,
    logged (the first with its traceback), and the capture goes on."""
    import threading
    from prometheus_client import generate_latest
    import verifier.pipeline
    from verifier.cli import App
    from verifier.daemon.run import Daemon, Options
    from lab import LAB_POLICY, wait_for
    from test_daemon import free_port, value
    real_decode, real_split = verifier.pipeline.decode, verifier.pipeline.split

    def buggy_decode(data, linktype):
        if b"BUG" in data:
            raise ValueError("a decoder bug")
        return real_decode(data, linktype)
    calls = []

    def buggy_split(chunk, ethernet, gmap, engine, port_flags):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise RuntimeError("a fast-path bug")
        return real_split(chunk, ethernet, gmap, engine=engine, port_flags=port_flags)
    monkeypatch.setattr(verifier.pipeline, "decode", buggy_decode)
    monkeypatch.setattr(verifier.pipeline, "split", buggy_split)
    spool = tmp_path / "spool"
    spool.mkdir()
    icmp = c.ether(B, A, c.ETH_IPV4, c.ipv4("198.51.100.10", "203.0.113.1", 1, c.icmp(8, 0, b"BUG")))
    ok = c.ether(B, A, c.ETH_IPV4, c.ipv4("198.51.100.10", "203.0.113.1", 1, c.icmp(8, 0, b"fine")))
    (spool / "a.pcap").write_bytes(fuzz.pcap_bytes([icmp, ok, icmp]))
    (spool / "b.pcap").write_bytes(fuzz.pcap_bytes(frames_of(5)))
    (spool / "c.pcap").write_bytes(fuzz.pcap_bytes(frames_of(4)))
    policy = tmp_path / "policy.yaml"
    policy.write_text(LAB_POLICY)
    logged = []
    options = Options(watch_dir=str(spool), settle=0.0, policies=[str(policy)], idle_timeout=3600,
                      metrics_addr=f"127.0.0.1:{free_port()}", state_file=str(tmp_path / "state.json"))
    daemon = Daemon(App(str(tmp_path / "data")), options, log=logged.append)
    daemon.start()
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        wait_for(lambda: daemon.pipeline.stats.packets == 12, 20, what="the three files read")
        assert thread.is_alive()
        text = generate_latest(daemon.registry).decode()
    finally:
        daemon.stop()
        thread.join(10)
        daemon.close_server()
    assert value(text, "cleanpath_decode_errors_total", reason="internal-error") == 2 + 5
    assert daemon.bugs == 3
    assert any("Traceback" in line and "a decoder bug" in line for line in logged)
    assert [line.split(":")[0] for line in logged if line.startswith("internal error #")] == \
        ["internal error #1 (counted as decode error 'internal-error', capture goes on)",
         "internal error #2 (counted as decode error 'internal-error', capture goes on)"]   # #3 is not logged


def test_an_interface_option_that_overruns_its_block_is_ignored(tmp_path):
    """Found by the fuzzer: an if_tsresol option declaring more bytes than
    its Interface Description Block holds (IndexError before)."""
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    body = struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HH", 9, 40)       # tsresol, 40 bytes: none follow
    idb = struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    frame = frames_of(1)[0]
    pad = frame + b"\0" * (-len(frame) % 4)
    epb_body = struct.pack("<IIIII", 0, 0, 1, len(frame), len(frame)) + pad
    epb = struct.pack("<II", 6, 12 + len(epb_body)) + epb_body + struct.pack("<I", 12 + len(epb_body))
    path = tmp_path / "idb.pcapng"
    path.write_bytes(shb + idb + epb)
    cap = open_capture(str(path))
    assert len(list(cap.frames())) == 1 and cap.errors == []


@pytest.mark.parametrize("unnamed", [True, False])
def test_atomic_files_appear_whole_or_not_at_all(tmp_path, monkeypatch, unnamed):
    """Both ways atomic.py writes: an unnamed O_TMPFILE file, or (where the
    file system has none) a hidden temporary name; nothing is left behind."""
    from verifier import atomic
    if not unnamed:
        monkeypatch.setattr(atomic, "O_TMPFILE", 0)
    target = tmp_path / "cert.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.AtomicFile(str(target)) as out:
            out.write("half")
            raise RuntimeError("killed mid-way")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["cert.json"]
    atomic.write_atomic(str(target), "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["cert.json"]
