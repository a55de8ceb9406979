"""The fast path's direction index must find exactly what a dict would."""

import random

import numpy as np

from verifier.engine import directions
from verifier.engine.directions import DirectionIndex
from verifier.model import Flow, flow_key


def _flow(n):
    return Flow(flow_key(0, -1, -1, 6, bytes([198, 51, 100, n % 250]), n, b"\x08\x08\x08\x08", 443), 0.0)


def test_random_binds_releases_and_finds_match_a_dict(monkeypatch, engine):
    monkeypatch.setattr(directions, "_MIN_TABLE", 64)          # so the table grows and is rebuilt often
    rebuilds = []
    monkeypatch.setattr(DirectionIndex, "_rebuild", lambda self, new=(), real=DirectionIndex._rebuild: (
        rebuilds.append(1), real(self, new)))
    rnd = random.Random(7)
    index = DirectionIndex(3, engine, capacity=16)
    model = {}                                   # hash -> (key row, entry)
    for step in range(40):
        # Bind a batch: some new hashes, some already held, some colliding hashes with other keys.
        hashes, keys, owners = [], [], []
        for _ in range(rnd.randrange(1, 400)):
            h = rnd.choice((rnd.getrandbits(64), rnd.randrange(4), *(list(model)[:3] or [5])))
            if h in hashes:
                continue
            hashes.append(h)
            keys.append([rnd.getrandbits(63) for _ in range(3)])
            owners.append((_flow(len(hashes)), 0))
        harr, karr = np.array(hashes, np.uint64), np.array(keys, np.uint64)
        before = dict(model)
        index.bind(owners, harr, karr, np.full(len(hashes), float(step)))
        held = index.held()
        for h, k in zip(hashes, keys):
            if h not in before:
                model[h] = (k, held[h])
        # Release a random share.
        for h in rnd.sample(sorted(model), len(model) // 3):
            index.settle(model.pop(h)[1])
        assert set(index.held()) == set(model)
        # Look up known hashes with their keys, known hashes with other keys, and unknown hashes.
        queries = list(model) + [rnd.getrandbits(64) for _ in range(50)]
        qkeys = [model[h][0] if h in model else [1, 2, 3] for h in queries]
        qkeys[:5] = [[9, 9, 9]] * min(5, len(qkeys))          # right hash, wrong key: not found
        found = index.find(np.array(queries, np.uint64), np.array(qkeys, np.uint64))
        for h, k, e in zip(queries, qkeys, found.tolist()):
            expected = model[h][1] if h in model and model[h][0] == k else -1
            assert e == expected
    assert len(rebuilds) > 5


def test_settled_counts_reach_the_flow(engine):
    index = DirectionIndex(2, engine)
    flow = _flow(1)
    index.bind([(flow, 1)], np.array([12345], np.uint64), np.array([[1, 2]], np.uint64), np.array([5.0]))
    entry = index.held()[12345]
    index.add(np.array([entry]), np.array([3]), np.array([300]), np.array([9.0]))
    index.settle(entry)
    assert flow.pkts == (0, 3) and flow.octets == (0, 300) and flow.last == 9.0
    assert flow.entries == entry << 2 and not index.held()       # its handle: Directions.release clears it
