"""The compiled per-frame passes (verifier/engine/_fastpath.c) give what the numpy
passes give, to the bit: groups (hashes, keys, classes, first rows, sums,
times) and rows left to the decoder; record offsets, timestamps, lengths and
where the walk stops."""

import glob
import os
import random
import struct

import numpy as np
import pytest

from verifier import engine as engines
from verifier.engine import split as batch
from verifier import craft as c
from verifier.capture import open_capture
from verifier.capture.chunk import from_frames
from verifier.capture.files import MAX_RECORD
from verifier.engine.walk import _plain
from verifier.craft import ETH_IPV4, ether, ipv4, udp
from verifier.errors import CaptureError
from verifier.model import Flow

from conftest import corpus_path
from test_batch import FAST, FAST_TUNNELS, SLOW, SLOW_TUNNELS, random_frames
from test_capture import WALK_CASES, walk_cases
from test_corpus import corpus_files

pytestmark = pytest.mark.skipif(engines.COMPILED is None,
                                reason="verifier.engine._fastpath is not built (no C compiler or Python headers at install)")
C = engines.COMPILED.c if engines.COMPILED is not None else None     # the compiled module under test


GROUP_ARRAYS = ("hashes", "keys", "classes", "first", "count", "octets", "first_ts", "last_ts")


def assert_same_split(chunk, ethernet=np.array([True]), interfaces=None):
    want_parts, want_slow = batch.split_numpy(chunk, ethernet, interfaces)
    got_parts, got_slow = batch.split_compiled(C, chunk, ethernet, interfaces)
    assert got_slow.tolist() == want_slow.tolist()
    assert len(got_parts) == len(want_parts)
    for got, want in zip(got_parts, want_parts):
        assert got.width == want.width
        for name in GROUP_ARRAYS:
            a, b = getattr(got, name), getattr(want, name)
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name
    return want_parts, want_slow


def damaged(frames, rnd, n):
    """``n`` frames made from ``frames``: bytes of the first 112 flipped, tails cut."""
    out = []
    for _ in range(n):
        frame = bytearray(rnd.choice(frames))
        for _ in range(rnd.randrange(1, 4)):
            at = rnd.randrange(min(len(frame), 112))
            frame[at] = rnd.choice((0, 0xFF, 0x45, 0x08, 0x11, 0x06, 0x81, 0x86, 0x30, 0x34, rnd.randrange(256)))
        if rnd.random() < 0.3:
            frame = frame[:rnd.randrange(len(frame) + 1)]
        out.append(bytes(frame))
    return out


def test_crafted_frames_every_class():
    frames = (FAST + SLOW + FAST_TUNNELS + SLOW_TUNNELS) * 3
    parts, slow = assert_same_split(from_frames((float(i % 7), 0, len(f) + i, f) for i, f in enumerate(frames)))
    assert len(parts) == 2 and len(slow) == 3 * (len(SLOW) + len(SLOW_TUNNELS))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_and_damaged_frames(seed):
    rnd = random.Random(seed)
    frames = random_frames(seed, 2000) + damaged(FAST + FAST_TUNNELS + SLOW, rnd, 3000)
    rnd.shuffle(frames)
    ts = [rnd.uniform(0, 50) for _ in frames]               # out of order: first/last times are min/max
    assert_same_split(from_frames((t, 0, len(f) + rnd.randrange(3), f) for t, f in zip(ts, frames)))


def test_frames_ending_at_the_buffer_end():
    for cut in range(0, 120, 7):                     # the last frame's header runs past the buffer
        frames = FAST + [FAST_TUNNELS[-1][:len(FAST_TUNNELS[-1]) - cut]]
        assert_same_split(from_frames((0.0, 0, len(f), f) for f in frames))


def test_interfaces_and_link_types():
    frames = FAST + FAST_TUNNELS
    chunk = from_frames((0.0, i % 3, len(f), f) for i, f in enumerate(frames * 2))
    assert_same_split(chunk, np.array([True, False, True]), np.array([5, 6, 7]))
    assert_same_split(chunk, np.array([True, True, True]))


def test_a_collision_hands_the_chunk_back(monkeypatch):
    monkeypatch.setitem(batch._MULTS, 64, np.zeros(8, np.uint64))
    monkeypatch.setattr(batch, "_TAG_MULT", np.uint64(0))
    parts, slow = batch.split_compiled(C, from_frames((0.0, 0, len(f), f) for f in FAST), np.array([True]))
    assert parts == [] and slow.tolist() == list(range(len(FAST)))


@pytest.mark.parametrize("damage", ["offset past the header", "backward jump", "unknown op", "leaf past the classes",
                                    "no row after a test"])
def test_a_program_the_module_cannot_run_safely_is_refused(damage, monkeypatch):
    """The C pass is handed its frame program (engine/frames.PROGRAM) as data:
    one that would read past the header, loop, or name what it lacks is a
    ValueError, never run."""
    from verifier.engine import frames
    bad = frames.PROGRAM.copy()
    op, a, leaf, fail = 0, 1, 6, 7                  # PROGRAM's columns
    if damage == "offset past the header":
        bad[0, a] = frames.HEADER
    elif damage == "backward jump":
        bad[3, fail] = 1
    elif damage == "unknown op":
        bad[0, op] = 99
    elif damage == "leaf past the classes":
        bad[np.flatnonzero(bad[:, leaf] >= 0)[0], leaf] = len(frames.CLASSES)
    else:
        bad = bad[:1].copy()
        bad[0, leaf] = -1
    monkeypatch.setattr(frames, "PROGRAM", bad)
    with pytest.raises(ValueError):
        batch.split_compiled(C, from_frames((0.0, 0, len(f), f) for f in FAST), np.array([True]))


def test_corpus_captures_chunk_by_chunk():
    paths = corpus_files() + sorted(glob.glob(os.path.join(corpus_path("malformed-tcpdump"), "*")))
    grouped = 0
    for path in paths:
        try:
            cap = open_capture(path)
        except CaptureError:
            continue
        for chunk in cap.chunks():
            ethernet = np.array([i.linktype == 1 for i in cap.interfaces], bool)
            parts, _slow = assert_same_split(chunk, ethernet)
            grouped += sum(int(g.count.sum()) for g in parts)
    assert grouped > 1000


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("case", WALK_CASES)
def test_compiled_walk_equals_the_plain_walk(order, case):
    for trial, buf in walk_cases(11, order, case):
        starts, stop, oversize = _plain(buf, 0, len(buf), order, MAX_RECORD)
        off, ts, incl, orig, got_stop, got_over = C.pcap_records(buf, order == ">", 1e-6, MAX_RECORD)
        assert np.frombuffer(off, np.int64).tolist() == [s + 16 for s in starts], (case, trial)
        assert (got_stop, bool(got_over)) == (stop, oversize)
        heads = [struct.unpack_from(order + "IIII", buf, s) for s in starts]
        assert np.frombuffer(ts).tolist() == (np.array([h[0] for h in heads], np.int64)
                                              + np.array([h[1] for h in heads], np.int64) * 1e-6).tolist()
        assert np.frombuffer(incl, np.int64).tolist() == [h[2] for h in heads]
        assert np.frombuffer(orig, np.int64).tolist() == [h[3] for h in heads]


def test_known_directions_are_added_as_numpy_adds_them(monkeypatch):
    """DirectionIndex.account: same rows handed back, same counters, times and
    touched flags, over an index with tombstones (released entries), a
    rebuilt table, known, unknown, quiet and same-hash-other-key groups."""
    from verifier.engine import directions
    from verifier.engine.directions import DirectionIndex
    from test_directions import _flow
    monkeypatch.setattr(directions, "_MIN_TABLE", 64)
    rnd = random.Random(5)
    index = DirectionIndex(3, engines.COMPILED, capacity=16)
    held = {}                                            # hash -> key
    for step in range(30):
        hashes = list(dict.fromkeys(rnd.choice((rnd.getrandbits(64), rnd.randrange(8))) for _ in range(200)))
        keys = [[rnd.getrandbits(63) for _ in range(3)] for _ in hashes]
        index.bind([(_flow(i), 0) for i in range(len(hashes))], np.array(hashes, np.uint64),
                   np.array(keys, np.uint64), np.full(len(hashes), float(step)))
        held.update((h, k) for h, k in zip(hashes, keys) if h not in held)
        slots = index.held()
        for h in rnd.sample(sorted(held), len(held) // 3):
            index.settle(slots[h])
            del held[h]
        known = sorted(held)
        queries = known + [rnd.getrandbits(64) for _ in range(40)]
        qkeys = [held.get(h, [1, 2, 3]) for h in queries]
        qkeys[:4] = [[9, 9, 9]] * min(4, len(qkeys))     # right hash, other key
        n = len(queries)
        first = np.array([rnd.choice((step, step + 400.0, step + 0.5)) for _ in range(n)])   # some quiet past 300 s
        groups = batch.Groups(np.array(queries, np.uint64), np.array(qkeys, np.uint64), np.zeros(n, np.int64),
                              np.zeros(n, np.int64), np.array([rnd.randrange(1, 9) for _ in range(n)]),
                              np.array([rnd.randrange(60, 9000) for _ in range(n)]), first, first + 1.0)
        state = [getattr(index, a).copy() for a in ("pkts", "octets", "last", "touched")]
        got = index.account(groups, 300.0).tolist()
        after = [getattr(index, a).copy() for a in ("pkts", "octets", "last", "touched")]
        for a, arr in zip(("pkts", "octets", "last", "touched"), state):
            setattr(index, a, arr)
        with monkeypatch.context() as m:
            m.setattr(index, "_c", None)                   # the numpy passes, on the same index
            want = index.account(groups, 300.0).tolist()
        assert got == want and 0 < len(want) < n
        for a, arr in zip(("pkts", "octets", "last", "touched"), after):
            assert np.array_equal(getattr(index, a), arr), a


def test_the_compiled_module_is_built_from_this_source():
    """setup.py builds the module as optional: a failed rebuild only warns and
    the old one stays. Its recorded source hash must be this file's."""
    import hashlib
    with open(os.path.join(os.path.dirname(batch.__file__), "_fastpath.c"), "rb") as fh:
        source = hashlib.sha256(fh.read()).hexdigest()
    assert C.SOURCE_SHA256 == source, "verifier.engine._fastpath is stale: rebuild it (pip install -e .)"


def test_flow_slots_are_the_contract_the_compiled_module_reads():
    """The compiled module stores Flow's fields under model.FLOW_SLOTS' names
    (one list, in one order, the slotted class's slots too), and the key it
    packs is model.flow_key's."""
    from verifier import model
    assert model._SlottedFlow.__slots__ == model.FLOW_SLOTS == C.FLOW_SLOTS
    assert model.Flow is C.Flow and all(hasattr(C.Flow, name) for name in model.FLOW_SLOTS)
    assert model.KEY_HEAD.size == 13        # _fastpath.c's KEY_HEAD


def test_compiled_flows_read_back_what_the_slotted_class_holds():
    """The same writes to a compiled flow and a slotted one read back the
    same values, of the same types: times as floats, counters and handles
    as ints, a side's MACs as NO_MACS, one MAC (bytes) or a frozenset."""
    from verifier import model
    key = model.flow_key(3, 20, -1, 6, bytes([192, 0, 2, 1]), 40000, bytes([198, 51, 100, 2]), 443)
    gateway, host = bytes.fromhex("00000c010203"), bytes.fromhex("0200000000aa")
    both = frozenset((gateway, host))
    states = []
    for cls in (C.Flow, model._SlottedFlow):
        flow, seen = cls(key, 5.25), []
        seen.append({name: getattr(flow, name) for name in model.FLOW_SLOTS})
        flow.last, flow.origin, flow.entries = 9.5, 1, (1 << 31) - 1
        flow.count(0, 3, 180)
        flow.count(1, 2, 1 << 40)
        flow.macs_a = gateway
        flow.macs_b = both
        flow.tunnels, flow.verdicts, flow.depends = {("vxlan", b"a", b"b", 7)}, (("z", "CLEAN", ()),), (("k",),)
        flow.icmp_errors += 1
        flow.end_reason = "idle"
        seen.append({name: getattr(flow, name) for name in model.FLOW_SLOTS if name != "rare"})
        seen.append((flow.pkts, flow.octets, flow.macs, flow.icmp_errors, flow.unpacked(), flow.a, flow.bp))
        flow.macs_b, flow.entries, flow.end_reason = model.NO_MACS, None, None
        seen.append((flow.macs, flow.entries, flow.end_reason))
        states.append([repr(s) for s in seen])
    assert states[0] == states[1]
    flow = C.Flow(key, 1.0)
    assert flow.macs_a is model.NO_MACS
    with pytest.raises(ValueError, match="entry handle"):
        flow.entries = 1 << 31                   # past a handle's 31 bits (directions.MAX_ENTRIES)


def _flow_state(flow):
    """Every slot of a flow (sets sorted), the compiled flows' and Flow.__init__'s alike."""
    from verifier.model import FLOW_SLOTS
    state = {name: getattr(flow, name) for name in FLOW_SLOTS}
    state["macs"] = [sorted(m) for m in flow.macs]
    state["tunnels"] = sorted(flow.tunnels) if flow.tunnels is not None else None
    state["entries"] = None                     # index entries: bound after opening, compared by the bind tests
    state["rare"] = (flow.icmp_errors, flow.hops, flow.exports)
    return type(flow), state


def _open_rounds(rounds, capacity, engine):
    """Open every group of each round's chunk in one flow table: owners per
    round, flows still held, flows ended (idle renewals and shedding)."""
    from verifier.flows import FlowTable
    ended = []
    table = FlowTable(ended.append, idle_timeout=300.0, capacity=capacity)
    owners = []
    for chunk, pick in rounds:
        parts, _slow = batch.split_numpy(chunk, np.array([True]))
        opened = [(g, pick(len(g))) for g in parts]
        got = batch.open_directions(table, [(g, rows) for g, rows in opened if len(rows)], engine)
        owners.append([[(flow.key, side) for flow, side in part] for part in got])
    listed = table.created + [f for held, _numbers in table.deadlines.buckets.values() for f in held]
    listed = sorted({f.key for f in listed if f.end_reason is None})      # every open flow, to be swept
    return owners, [_flow_state(f) for f in table.flows.values()], [_flow_state(f) for f in ended], listed


@pytest.mark.parametrize("seed", [1, 2])
def test_new_directions_open_flows_as_the_flow_table_does(seed, monkeypatch):
    """batch.open_directions: the compiled loop opens the same flows (keys,
    sides, counts, times, MACs, tunnels, origin) in the same order as
    fields_of + FlowTable.add_directions, across rounds that renew idle
    flows, reopen live ones and overflow the table's capacity."""
    rnd = random.Random(seed)
    same_host = [ether("00:00:0c:00:00:02", "d4:be:d9:00:00:01", ETH_IPV4, ipv4("192.0.2.9", "192.0.2.9", 17, udp(s, d))) for s, d in
                 ((5000, 53), (53, 5000), (7, 7))]                 # the ports order the flow's two sides
    frames = FAST + FAST_TUNNELS + same_host * 20 + random_frames(seed, 1500) + damaged(FAST + FAST_TUNNELS, rnd, 1500)
    rounds = []
    for start in (0.0, 100.0, 100.5, 700.0):                 # 700: past the idle timeout of 300 s
        sample = rnd.sample(frames, 1200)
        chunk = from_frames((start + rnd.uniform(0, 5), 0, len(f) + rnd.randrange(3), f) for f in sample)
        some = np.array(sorted(rnd.sample(range(10_000), 5000)), np.int64)
        rounds.append((chunk, (lambda n: np.arange(n)) if start != 100.5 else (lambda n, s=some: s[s < n])))
    got = _open_rounds(rounds, 300, engines.COMPILED)
    want = _open_rounds(rounds, 300, engines.NUMPY)
    assert got[0] == want[0] and got[1] == want[1] and got[2] == want[2]
    assert len(want[2]) > 100 and any(state["tunnels"] for _type, state in want[1])     # shed or renewed; tunnels held
    assert got[3] == want[3] == sorted(state["key"] for _type, state in want[1])     # shed mid-call: all still listed


def test_open_directions_leaves_other_flow_classes_to_the_flow_table():
    """New flows are made in C for Flow or a subclass of it (as that class);
    for any other class FlowTable.renew makes them (as Flow), the same."""
    from verifier.flows import FlowTable

    class Grown(Flow):
        __slots__ = ("extra",)

    chunk = from_frames((float(k), 0, len(f), f) for k, f in enumerate(FAST + FAST_TUNNELS))
    parts = [(g.keys, g.width, g.classes, np.arange(len(g)), g.first, g.first_ts, g.last_ts, g.count, g.octets)
             for g in batch.split_numpy(chunk, np.array([True]))[0]]
    states = []
    for cls in (Flow, Grown, dict):
        table = FlowTable(lambda flow: None)
        C.open_directions(table.flows, table.created, table.renew, table.idle, batch.TUNNEL_KINDS, batch.FIELDS,
                          parts, cls, table.capacity, _macs(table))
        made = [_flow_state(f) for f in table.flows.values()]
        assert {kind for kind, _state in made} == {Grown if cls is Grown else Flow}
        states.append([state for _kind, state in made])
    assert len(states[0]) > 3 and states[0] == states[1] == states[2]


def test_open_directions_refuses_fields_outside_the_key():
    chunk = from_frames((0.0, 0, len(f), f) for f in FAST)
    (g,) = batch.split_numpy(chunk, np.array([True]))[0]
    from verifier.flows import FlowTable
    table = FlowTable(lambda flow: None)
    bad = batch.FIELDS.copy()
    bad[:, batch.FIELD_COLUMNS.index("addr")] = 60          # addresses past a plain key's 64 bytes
    parts = [(g.keys, g.width, g.classes, np.arange(len(g)), g.first, g.first_ts, g.last_ts, g.count, g.octets)]
    with pytest.raises(ValueError, match="no fields inside its key"):
        C.open_directions(table.flows, table.created, table.renew, table.idle, batch.TUNNEL_KINDS, bad, parts,
                          Flow, table.capacity, _macs(table))
    assert not table.flows


def _macs(table):
    return table.mac_sets.table, table.mac_sets.LIMIT


def test_flows_share_their_mac_sets_on_both_engines():
    """Flows through one gateway read the same MAC for its side, and flows
    whose side saw the same MACs hold the very same frozenset (model.MacSets:
    a side's one MAC, a frozenset from its second on, shared), whichever
    engine opened them, and ``macs`` reads them right."""
    from verifier.flows import FlowTable
    gateway, other = "00:00:0c:01:02:03", "00:00:0c:09:09:09"
    frames = [c.ether(gateway, "02:00:00:00:00:aa", c.ETH_IPV4,
                      c.ipv4("198.51.100.5", "192.0.2.%d" % (k + 1), 6, c.tcp(40000 + k, 443))) for k in range(50)]
    frames += [c.ether(other, "02:00:00:00:00:aa", c.ETH_IPV4, c.ipv4("198.51.100.5", "192.0.2.%d" % (k + 1), 6,
                                                                      c.tcp(40000 + k, 443))) for k in range(2)]
    chunk = from_frames((float(k), 0, len(f), f) for k, f in enumerate(frames))
    results = []
    for engine in (engines.COMPILED, engines.NUMPY):
        table = FlowTable(lambda flow: None)
        parts, _slow = batch.split(chunk, np.array([True]), [0], engine=engine)
        batch.open_directions(table, [(g, np.arange(len(g))) for g in parts], engine)
        flows = sorted(table.flows.values(), key=lambda f: f.a)      # 192.0.2.1 first
        held = [((f.macs_a, f.macs_b)[f.origin], (f.macs_a, f.macs_b)[1 - f.origin]) for f in flows]
        assert len(flows) == 50 and len({h[0] for h in held}) == 1 and len({h[1] for h in held[2:]}) == 1
        assert held[0][0] == bytes.fromhex("0200000000aa") and held[2][1] == bytes.fromhex("00000c010203")
        assert held[0][1] == frozenset({bytes.fromhex("00000c010203"), bytes.fromhex("00000c090909")})
        assert held[0][1] is held[1][1]                            # one set for both flows
        results.append(sorted((sorted(f.macs[0]), sorted(f.macs[1])) for f in flows[2:]))
        assert all(isinstance(m, frozenset) for f in flows for m in f.macs)
    assert results[0] == results[1] and results[0][0] == ([bytes.fromhex("00000c010203")],
                                                          [bytes.fromhex("0200000000aa")])


def _bind_rounds(seed, engine):
    """Binds (new, ended, quiet-again and same-hash-other-owner directions)
    and releases on one index: its state after every round."""
    from verifier.engine.directions import DirectionIndex
    from test_directions import _flow
    rnd = random.Random(seed)
    index = DirectionIndex(3, engine, capacity=8)
    flows = [_flow(i) for i in range(400)]
    states = []
    for step in range(25):
        owners = [(rnd.choice(flows), rnd.randrange(2)) for _ in range(rnd.randrange(1, 60))]
        for flow, _side in rnd.sample(owners, len(owners) // 10):
            flow.end_reason = "capacity" if rnd.random() < 0.5 else flow.end_reason
        slots = index.held()
        held = list(slots)
        hashes = [rnd.choice(held) if held and rnd.random() < 0.3 else rnd.getrandbits(64) for _ in owners]
        for k, h in enumerate(hashes):                 # quiet directions come back with their own owner
            if h in slots and rnd.random() < 0.5 and index.owner[slots[h]] is not None:
                owners[k] = (index.owner[slots[h]], int(index.side[slots[h]]))
        keys = np.array([[h & 0xFFFF, 1, 2] for h in hashes], np.uint64)
        index.bind(owners, np.array(hashes, np.uint64), keys, np.full(len(owners), float(step)))
        slots = index.held()
        for h in rnd.sample(sorted(slots), len(slots) // 4):
            index.settle(slots[h])
        place = {id(f): k for k, f in enumerate(flows)}
        states.append((index.held(), [None if w is None else (place[id(w)], side)
                                             for w, side in zip(index.owner, index.side.tolist())],
                       list(index.free), index.fresh, index.last.tolist(), index.hashes.tolist(),
                       index._slots.tolist(), [f.entries for f in flows], index.chain.tolist()))
    return states


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_opened_directions_get_their_entries_as_python_gives_them(seed, monkeypatch):
    """DirectionIndex.bind: the compiled loop (bind_entries) takes the same
    entries, skips the same ended flows and other keys' hashes, and moves the
    same quiet entries on, through growth, releases and table rebuilds."""
    from verifier.engine import directions
    monkeypatch.setattr(directions, "_MIN_TABLE", 64)
    got = _bind_rounds(seed, engines.COMPILED)
    want = _bind_rounds(seed, engines.NUMPY)
    assert got == want and sum(len(s[0]) for s in want) > 500


def _settled(seed, engine):
    from verifier.engine.directions import DirectionIndex
    from test_directions import _flow
    rnd = random.Random(seed)
    index = DirectionIndex(3, engine, capacity=8)
    flows = [_flow(i) for i in range(300)]
    owners = [(flow, side) for flow in flows for side in (0, 1) if rnd.random() < 0.6]
    hashes = np.array(rnd.sample(range(1, 1 << 62), len(owners)), np.uint64)
    index.bind(owners, hashes, np.zeros((len(owners), 3), np.uint64), np.zeros(len(owners)))
    slots = index.held()
    for h in rnd.sample(sorted(slots), 50):
        index.settle(slots[h])                             # released entries: not live
    live = sorted(index.held().values())
    index.add(np.array(live), np.array([rnd.randrange(1, 99) for _ in live]),
              np.array([rnd.randrange(60, 9999) for _ in live]), np.array([rnd.uniform(-5, 5) for _ in live]))
    index.settle_all()
    return ([(f.pkts, f.octets, f.last, f.entries) for f in flows], index.owner,
            index.held(), index.free, index.fresh)


@pytest.mark.parametrize("seed", [1, 2])
def test_end_of_input_settles_entries_as_python_does(seed, monkeypatch):
    """DirectionIndex.settle_all: the compiled loop (settle_entries) folds
    the same counters and last times into the same flows and releases every
    entry."""
    got = _settled(seed, engines.COMPILED)
    want = _settled(seed, engines.NUMPY)
    assert got == want and any(p != (0, 0) for p, *_ in want[0]) and not want[2]
    assert any(last > 0 for _p, _o, last, _e in want[0]) and all(o is None for o in want[1])


def test_inserting_into_a_full_table_or_an_entry_past_a_slot_is_an_error():
    """insert_hashes refuses rather than probing forever or folding an entry
    past 32 bits into the tag; a slot holds the hash's tag and the entry."""
    table = np.full(4, -1, np.int64)
    hashes = np.arange(1, 6, dtype=np.uint64) << np.uint64(40)
    with pytest.raises(ValueError, match="open slots"):
        C.insert_hashes(table, 2, hashes, np.arange(5, dtype=np.int64))
    with pytest.raises(IndexError):
        C.insert_hashes(table, 2, hashes[:2], np.array([0, 1 << 32], np.int64))
    fresh = np.full(4, -1, np.int64)
    assert C.insert_hashes(fresh, 2, hashes[:4], np.arange(4, dtype=np.int64)) == 4
    assert sorted(fresh.tolist()) == [(int(h) >> 33) << 32 | k for k, h in enumerate(hashes[:4])]


def _reply(frame):
    """The reply to a plain Ethernet IPv4/IPv6 TCP/UDP frame: MACs, addresses and ports swapped."""
    f = bytearray(frame)
    f[0:6], f[6:12] = frame[6:12], frame[0:6]
    at = 18 if frame[12:14] == b"\x81\x00" else 14
    size, addr = (4, at + 12) if frame[at] >> 4 == 4 else (16, at + 8)
    f[addr:addr + size], f[addr + size:addr + 2 * size] = frame[addr + size:addr + 2 * size], frame[addr:addr + size]
    ports = at + (20 if size == 4 else 40)
    f[ports:ports + 2], f[ports + 2:ports + 4] = frame[ports + 2:ports + 4], frame[ports:ports + 2]
    return bytes(f)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_entry_keys_are_the_same_on_both_engines(seed):
    """split.entry_keys: the compiled pass gives the numpy one's entry
    hashes, keys and flips, to the bit, on crafted, random and damaged
    frames and the replies to the plain ones."""
    rnd = random.Random(seed)
    frames = FAST + FAST_TUNNELS + random_frames(seed, 1500) + damaged(FAST + FAST_TUNNELS, rnd, 1500)
    frames += [_reply(f) for f in FAST]
    chunk = from_frames((float(k), 0, len(f), f) for k, f in enumerate(frames))
    parts, _slow = batch.split_numpy(chunk, np.array([True]))
    if not parts:                     # two random keys share a hash: the chunk goes to the decoder whole
        parts, _slow = batch.split_numpy(from_frames((float(k), 0, len(f), f) for k, f in enumerate(
            FAST + FAST_TUNNELS + [_reply(f) for f in FAST])), np.array([True]))
    assert len(parts) == 2
    for g in parts:
        got = batch.entry_keys(batch.Groups(g.hashes, g.keys, g.classes, g.first, g.count, g.octets, g.first_ts,
                                            g.last_ts), engines.COMPILED)
        want = batch.entry_keys(g, engines.NUMPY)
        for name in ("entry_hashes", "entry_keys", "flips"):
            a, b = getattr(got, name), getattr(want, name)
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name
    plain, tunnels = parts
    assert 0 < plain.flips.sum() < len(plain) and not tunnels.flips.any()   # tunnel classes have no mirror
    flipped = np.flatnonzero(plain.flips)
    assert not np.array_equal(plain.entry_hashes[flipped], plain.hashes[flipped])


@pytest.mark.parametrize("engine", [engines.NUMPY, engines.COMPILED], ids=["numpy", "compiled"])
def test_both_directions_of_a_plain_flow_share_one_entry(engine):
    """A plain flow's two directions are one direction-index entry (its
    reply is its mirror), counted per side; a tunnelled flow's directions
    keep an entry each. The counts the flows end with are the decoder's."""
    from verifier.engine.directions import Directions
    from verifier.flows import FlowTable
    plain = [f for f in FAST if f[12:14] != b"\x81\x00"][:2]
    forward = plain + FAST_TUNNELS[:1]
    ended = []
    directions = Directions(engine)
    table = FlowTable(ended.append, fast=directions)
    for start, frames in ((0.0, forward), (10.0, [_reply(f) for f in plain]), (20.0, forward + [_reply(plain[0])])):
        chunk = from_frames((start + k / 100, 0, 100, f) for k, f in enumerate(frames))
        parts, slow = batch.split(chunk, np.array([True]), [0], engine=engine)
        assert not len(slow)
        opened = []
        for g in parts:
            rest = directions.index(g.width).account(g, table.idle)
            if len(rest):
                opened.append((g, rest))
        for (g, rest), owners in zip(opened, batch.open_directions(table, opened, engine)):
            directions.index(g.width).bind(owners, g.entry_hashes[rest], g.entry_keys[rest], g.last_ts[rest],
                                           g.flips[rest])
    held = {width: len(index.held()) for width, index in directions.by_width.items()}
    assert len(table.flows) == 3 and held == {9: 2, 15: 1}
    table.flush()
    # (sent by the side that opened it, by the other), packets and bytes
    counts = sorted(((f.pkts[f.origin], f.pkts[1 - f.origin]), (f.octets[f.origin], f.octets[1 - f.origin]))
                    for f in ended)
    assert counts == [((2, 0), (200, 0)), ((2, 1), (200, 100)), ((2, 2), (200, 200))]


_AUDIT = """
import sys
if sys.argv[1] == "without":
    sys.modules["verifier.engine._fastpath"] = None      # as an install where setup.py built no module
from verifier import engine, model
from verifier.cli import cli
without = sys.argv[1] == "without"
assert (model.Flow is model._SlottedFlow) == without and engine.name() == ("numpy" if without else "compiled")
try:
    cli(sys.argv[2:], standalone_mode=False)
except SystemExit:
    pass
"""


def test_an_install_without_the_compiled_module_audits_the_same(tmp_path):
    """Without the compiled module flows are model._SlottedFlow and the
    passes numpy's: the demo capture's certificate and flow CSV are the
    compiled install's, byte for byte."""
    import subprocess
    import sys
    demo = os.path.join(os.path.dirname(batch.__file__), "..", "demo")
    outputs = {}
    for how in ("without", "with"):
        out = tmp_path / how
        (out / "prom").mkdir(parents=True)
        argv = ["--data-dir", str(tmp_path / "data"), "audit", os.path.join(demo, "demo.pcap"),
                "--policy", os.path.join(demo, "policy.yaml"), "--inventory", os.path.join(demo, "inventory.yaml"),
                "--asn-db", os.path.join(demo, "demo-asn.mmdb"), "--now", "2026-06-01T00:00:00Z",
                "--json", str(out / "cert.json"), "--csv", str(out / "flows.csv"), "-q"]
        subprocess.run([sys.executable, "-c", _AUDIT, how, *argv], check=True, cwd=os.path.dirname(demo),
                       env={**os.environ, "CLEANPATH_ENGINE": ""})
        outputs[how] = {name: (out / name).read_bytes() for name in ("cert.json", "flows.csv")}
    assert outputs["without"] == outputs["with"] and b"VIOLATION" in outputs["with"]["flows.csv"]
