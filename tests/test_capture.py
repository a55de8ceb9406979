import glob
import gzip
import os
import struct

import numpy as np
import pytest

from verifier.capture import expand_paths, open_capture
from verifier.craft import PcapWriter, ether, ipv4, pcapng, udp, ETH_IPV4
from verifier.errors import CaptureError

from conftest import corpus_path

# Every test runs with the compiled per-frame engine and with numpy (conftest.engine).
pytestmark = pytest.mark.usefixtures("engine")

FRAME = ether("02:00:00:00:00:02", "02:00:00:00:00:01", ETH_IPV4,
              ipv4("192.0.2.1", "192.0.2.2", 17, udp(1000, 53, b"q" * 10)))


def frames(path):
    cap = open_capture(path)
    return cap, list(cap.frames())


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_resolutions_and_byte_orders(tmp_path, nanosecond, big_endian):
    path = str(tmp_path / "x.pcap")
    with PcapWriter(path, nanosecond=nanosecond, big_endian=big_endian) as w:
        w.write(1700000000.123456, FRAME)
        w.write(1700000001.5, FRAME, wirelen=1500)
    cap, got = frames(path)
    assert cap.format == "pcap" and cap.interfaces[0].linktype == 1
    assert [round(ts, 6) for ts, *_ in got] == [1700000000.123456, 1700000001.5]
    assert [(ifx, wl, data) for _, ifx, wl, data in got] == [(0, len(FRAME), FRAME), (0, 1500, FRAME)]
    assert cap.errors == []


def test_gzip_is_detected_by_magic_not_extension(tmp_path):
    plain = str(tmp_path / "a.pcap")
    with PcapWriter(plain) as w:
        w.write(1.0, FRAME)
    packed = str(tmp_path / "capture.dat")          # no .gz extension
    with open(plain, "rb") as src, gzip.open(packed, "wb") as dst:
        dst.write(src.read())
    cap, got = frames(packed)
    assert cap.compressed and got[0][3] == FRAME


def test_pcapng_interfaces_with_own_linktypes_and_resolutions(tmp_path):
    path = str(tmp_path / "named.pcap")              # pcapng content, misleading name
    raw_ip = FRAME[14:]
    pcapng(path, [(1, "eth1", None), (101, "tun0", 9)],
           [(0, 1_700_000_000_000_000, FRAME), (1, 1_700_000_000_500_000_000, raw_ip)])
    cap, got = frames(path)
    assert cap.format == "pcapng"
    assert [(i.linktype, i.name) for i in cap.interfaces] == [(1, "eth1"), (101, "tun0")]
    assert got[0][:2] == (1700000000.0, 0) and got[1][:2] == (1700000000.5, 1)
    assert got[1][3] == raw_ip


def test_pcapng_big_endian(tmp_path):
    path = str(tmp_path / "be.pcapng")
    pcapng(path, [(1, None, None)], [(0, 5_000_000, FRAME)], big_endian=True)
    _, got = frames(path)
    assert got == [(5.0, 0, len(FRAME), FRAME)]


def test_corrupt_header_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pcap"
    path.write_bytes(b"this is not a capture at all")
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        open_capture(str(path))
    short = tmp_path / "short.pcap"
    short.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00")
    with pytest.raises(CaptureError, match="truncated pcap file header"):
        open_capture(str(short))


def test_oversize_record_stops_with_error_and_keeps_earlier_frames(tmp_path):
    path = str(tmp_path / "big.pcap")
    with PcapWriter(path) as w:
        w.write(1.0, FRAME)
    with open(path, "ab") as fh:
        fh.write(struct.pack("<IIII", 2, 0, 300000, 300000) + b"\0" * 64)
    cap, got = frames(path)
    assert len(got) == 1
    assert len(cap.errors) == 1 and "exceeds 262144" in cap.errors[0] and f"offset {24 + 16 + len(FRAME)}:" in cap.errors[0]


def test_truncated_tail_is_recorded(tmp_path):
    path = str(tmp_path / "cut.pcap")
    with PcapWriter(path) as w:
        w.write(1.0, FRAME)
        w.write(2.0, FRAME)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-10])
    cap, got = frames(path)
    assert len(got) == 1 and "truncated record" in cap.errors[0]


def test_expand_paths_walks_directories_sorted(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.pcap", "d/a.pcap", "d/sub/c.pcap"):
        (tmp_path / name).write_bytes(b"")
    got = [os.path.relpath(p, tmp_path) for p in expand_paths([str(tmp_path / "d")])]
    assert got == ["d/a.pcap", "d/b.pcap", "d/sub/c.pcap"]


def test_every_bad_format_file_in_corpus_fails_cleanly():
    files = sorted(glob.glob(os.path.join(corpus_path("pcaps", "fileformat_bad"), "*")))
    outcomes = {}
    for path in files:
        try:
            cap = open_capture(path)
            n = sum(1 for _ in cap.frames())
            outcomes[os.path.basename(path)] = ("read", n, tuple(cap.errors))
        except CaptureError as exc:
            outcomes[os.path.basename(path)] = ("error", str(exc))
    assert outcomes["libpcap__pcap-empty-file.pcap"][0] == "error"
    assert outcomes["libpcap__pcap-truncated-hdr-23.pcap"][0] == "error"
    assert outcomes["libpcap__pcapng-block-len-too-small.pcapng"][2]        # recorded error
    assert outcomes["libpcap__pcapng-truncated-shb.pcapng"][2]
    assert outcomes["libpcap__pcapng-invalid-vers-1.pcapng"][2]


# --- the vectorised record walk -------------------------------------------------

def _records(rng, order, n, ts_step, lookalikes):
    """A pcap body (no file header) of ``n`` records; payloads may hold fake
    record headers pointing at other fake ones (what the walk must not follow)."""
    import struct as st
    out, ts = [], 1_700_000_000
    for _ in range(n):
        size = int(rng.integers(0, 300))
        payload = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        if lookalikes and size >= 40:
            at = int(rng.integers(0, size - 39))
            fake = st.pack(order + "IIII", ts & 0xFFFFFFFF, 0, 8, 8)          # a look-alike whose successor is another
            payload[at:at + 16] = fake
            payload[at + 24:at + 40] = fake
        out.append(st.pack(order + "IIII", ts & 0xFFFFFFFF, 0, size, size) + bytes(payload))
        ts += int(rng.integers(0, ts_step + 1))
    return b"".join(out)


def walk_cases(seed, order, case, trials=20):
    """(trial, buffer) pairs for one walk case: plain records, look-alike
    headers in payloads, timestamps of other eras, a cut tail, an oversize record."""
    import struct as st
    from verifier.capture.files import MAX_RECORD
    from verifier.engine.walk import _plain
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        n = int(rng.integers(0, 3000))
        buf = _records(rng, order, n, 1 << 26 if case == "eras" else 2, case == "lookalikes")
        if case == "tail" and buf:
            buf = buf[:len(buf) - int(rng.integers(1, min(len(buf), 400)))]
        if case == "oversize" and n:
            cut = _plain(buf, 0, len(buf), order, MAX_RECORD)[0][n // 2]
            buf = buf[:cut + 8] + st.pack(order + "I", MAX_RECORD + 1) + buf[cut + 12:]
        yield trial, buf


WALK_CASES = ["plain", "lookalikes", "eras", "tail", "oversize"]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("case", WALK_CASES)
def test_vectorised_walk_equals_the_plain_walk(order, case):
    from verifier.capture.files import MAX_RECORD
    from verifier.engine.walk import Scratch, _plain, record_starts
    scratch = Scratch()
    for trial, buf in walk_cases(7, order, case):
        want, want_stop, want_over = _plain(buf, 0, len(buf), order, MAX_RECORD)
        got, stop, over = record_starts(buf, order, MAX_RECORD, scratch)
        assert got.tolist() == want and (stop, over) == (want_stop, want_over), (case, trial)


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_records_cut_at_any_piece_end_read_the_same_plain_or_gzip(tmp_path, monkeypatch, kind):
    """A plain file is read at offsets (os.pread from the first byte not yet
    taken), a gzip stream carries the cut tail over: with pieces of a few
    records, cut at every kind of place, both give the frames, the damaged
    tail and its offset that one whole read gives."""
    import random
    rnd = random.Random(kind)
    payloads = [FRAME[:14] + bytes(rnd.randrange(256) for _ in range(rnd.randrange(20, 300))) for _ in range(60)]
    plain = str(tmp_path / f"x.{kind}")
    if kind == "pcap":
        with PcapWriter(plain) as w:
            for i, frame in enumerate(payloads):
                w.write(1000.0 + i, frame)
    else:
        pcapng(plain, [(1, "eth0", None)], [(0, (1000 + i) * 10 ** 6, frame) for i, frame in enumerate(payloads)])
    data = open(plain, "rb").read()
    open(plain, "wb").write(data[:-7])                      # a damaged tail too
    packed = str(tmp_path / f"x.{kind}.gz")
    with open(plain, "rb") as src, gzip.open(packed, "wb") as dst:
        dst.write(src.read())
    want_cap, want = frames(plain)
    assert len(want) == len(payloads) - 1 and len(want_cap.errors) == 1
    for piece in (199, 1000, 4096):                        # 199: shorter than some records
        monkeypatch.setattr("verifier.capture.files.CHUNK", piece)
        for path in (plain, packed):
            cap, got = frames(path)
            assert got == want and cap.errors == want_cap.errors and cap.position == want_cap.position


def test_every_source_keeps_the_capture_contract(tmp_path):
    """Sources are typed (capture.FrameSource, capture.DaemonSource), not probed
    with hasattr: every daemon source has the clock and kernel counters."""
    from verifier.capture import DaemonSource, FrameSource
    from verifier.capture.live import LiveInterfaces
    from verifier.capture.replay import Replay
    from verifier.capture.tshark import TsharkCapture
    from verifier.capture.watch import WatchDir
    from verifier.export.listen import ExportListeners
    members = [name for name in dir(DaemonSource) if not name.startswith("_") and callable(getattr(DaemonSource, name))]
    assert sorted(members) == ["chunks", "close", "drops", "now", "received"]
    for cls in (LiveInterfaces, TsharkCapture, WatchDir, Replay, ExportListeners):
        assert all(callable(getattr(cls, name, None)) for name in members), cls
    path = str(tmp_path / "one.pcap")
    with PcapWriter(path) as out:
        out.write(1.0, ether("00:00:0c:00:00:02", "02:00:00:00:00:01", ETH_IPV4,
                             ipv4("198.51.100.1", "192.0.2.1", 17, udp(1, 2))))
    source = open_capture(path)
    replay = Replay(path, speed=0)
    assert isinstance(source, FrameSource) and isinstance(replay, DaemonSource)
    assert replay.drops() == {} and replay.received() == {}
