"""Fast-path counters per flow direction, held in numpy arrays.

The batch fast path (split.py) sums each chunk's frames per flow direction.
A ``DirectionIndex`` finds the groups' entries through an open-addressing
hash table held in one numpy array (linear probing, at most half full,
tombstones for released entries; a slot is the entry with its hash's top
31 bits as a tag, 8 bytes: a slot of hash and entry apart took 16, and an
entry holds two to four), checks their exact keys with one
whole-array comparison and adds the sums with whole-array operations — or
does the same in one C pass over the same arrays (``account``, when
verifier/engine/_fastpath.c is built): a direction already known costs no Python
step of its own. New directions (and
anything unsure) take the Python path through ``FlowTable.add_directions`` and
are then bound, a chunk's worth at once.

An entry is held by an exact key (masked header words plus the
class/interface word) and its hash, with packet/byte counters, last
timestamp and owner (its flow, and in ``side`` which side: a pair object
per entry cost ~70 bytes of every direction). For a plain class (no
tunnel) one entry holds both directions of a flow: the reply's key is the
mirror of the request's (split.entry_keys: MACs, addresses and ports
swapped), the entry is keyed by the lesser of the two, and its counters
have a column per direction (``side`` is the flow side of the first; a
group whose key is the mirror counts in the second). An entry per
direction cost a key, hash, owner, chain link and table slot more per flow
(~125 bytes). A tunnelled direction keeps an entry of its own: its reply
comes in the tunnel's other direction, under other outer addresses and
identifier. A flow finds its entries through one handle
(``Flow.entries``: entry << 2 | the index's ordinal) and ``chain`` (each
entry's flow's earlier handle, -1 at the end): a tuple (index, entry, ...)
and its ints cost ~130 bytes of every flow. Counters hold only what the fast
path added; the flow keeps what the decoder accounted one packet at a time.
The flow table folds an entry into its flow (``settle``) and releases it
when the flow ends, so entries live exactly as long as their flow, and
refreshes ``Flow.last`` (``publish``) before it scans for idle flows.
"""

import mmap

import numpy as np

from .split import entry_keys


_EMPTY, _TOMB = -1, -2               # values of free slots (a live slot holds tag << 32 | entry, >= 0)
_TAG_SHIFT, _ENTRY = np.uint64(33), np.int64(0xFFFFFFFF)   # a slot's tag: its hash >> 33; its entry: the low 32 bits
_FIB = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: a hash's home slot is the top bits of hash x this
_MIN_TABLE = 1 << 13
_MIN_ENTRIES = 4096
MAX_ENTRIES = 1 << 29                # a handle (entry << 2 | ordinal) fits ``chain``'s 31 bits


COLUMNS = ("keys", "hashes", "pkts", "octets", "last", "touched", "side", "chain")   # per entry


def _slot_values(hashes, entries):
    """What the table's slots hold for ``entries`` of ``hashes``: tag << 32 | entry."""
    return ((hashes >> _TAG_SHIFT).astype(np.int64) << 32) | entries


_PRIVATE = {"flags": mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS} if hasattr(mmap, "MAP_ANONYMOUS") else {}


def mapped(shape, dtype):
    """A zeroed array in a memory mapping of its own (anonymous, private).

    The index's columns and table double as it fills. In the heap (glibc
    keeps blocks up to 32 MiB there: runtime.py) each generation left the
    one before as a hole the next could not fit in: ~30 MiB of free heap,
    ~150 bytes per open flow, at 200,000 flows. A mapping of its own goes
    back to the kernel when the array is dropped, and its pages are only
    resident once touched."""
    shape = shape if isinstance(shape, tuple) else (shape,)
    dtype = np.dtype(dtype)
    size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(mmap.mmap(-1, max(size, 1), **_PRIVATE), dtype, size // dtype.itemsize).reshape(shape)


class DirectionIndex:
    """Entries for one key width (plain or tunnel classes)."""

    def __init__(self, width, engine, capacity=_MIN_ENTRIES, ordinal=0):
        self.width = width                  # 64-bit words per key, class/interface word included
        self.ordinal = ordinal              # the low two bits of this index's handles (Directions.index)
        self.engine = engine
        self._c = engine.c                  # the compiled module, or None: the numpy passes
        self._empty(capacity)

    def _empty(self, capacity):
        """No entries, room for ``capacity``: new, or every entry settled (the
        arrays let go, so what judging the flows then allocates does not come
        on top of them)."""
        self.owner = []                     # entry -> its flow, or None (its side in ``side``)
        self.side = np.zeros(0, np.int8)    # entry -> the side of its flow its first direction counts
        self.chain = np.zeros(0, np.int32)  # entry -> its flow's earlier handle, -1: none (MAX_ENTRIES)
        self.free = []                      # handles of released entries, the next one last
        self.fresh = 0                      # entries from here on were never taken (free, listed nowhere)
        self.keys = np.zeros((0, self.width), np.uint64)
        self.hashes = np.zeros(0, np.uint64)
        self.pkts = np.zeros((0, 2), np.int64)       # entry -> (its first direction's, its mirror's)
        self.octets = np.zeros((0, 2), np.int64)
        self.last = np.zeros(0, np.float64)
        self.touched = np.zeros(0, bool)    # counters moved since the last publish
        self._grow(capacity)
        self._new_table(_MIN_TABLE)

    def _grow(self, size):
        if size > MAX_ENTRIES:
            raise MemoryError(f"a direction index holds at most {MAX_ENTRIES:,} entries")
        old = len(self.owner)
        for name in COLUMNS:
            arr = getattr(self, name)
            grown = mapped((size,) + arr.shape[1:], arr.dtype)
            grown[:old] = arr[:old]
            setattr(self, name, grown)
        self.chain[old:] = -1
        self.owner.extend([None] * (size - old))

    # --- the hash table -----------------------------------------------------

    def _new_table(self, size):
        self._bits = size.bit_length() - 1
        self._mask = size - 1
        self._slots = mapped(size, np.int64)
        self._slots[:] = _EMPTY
        self._used = 0                      # live + tombstones

    def _home(self, hashes):
        return ((hashes * _FIB) >> np.uint64(64 - self._bits)).astype(np.int64)

    def _insert(self, hashes, entries):
        """Place hashes known to be absent, all at once: each
        round, rows whose slot is open compete for it (the first wins), the
        rest move one slot on. The compiled module's ``insert_hashes`` takes
        the same rounds, row by row."""
        if self._c is not None:
            self._used += self._c.insert_hashes(self._slots, self._bits, np.ascontiguousarray(hashes, np.uint64),
                                                np.ascontiguousarray(entries, np.int64))
            return
        table, mask = self._slots, self._mask
        values = _slot_values(hashes, entries)
        at = self._home(hashes)
        pending = np.arange(len(hashes))
        placed = np.zeros(len(hashes), bool)
        while len(pending):
            here = at[pending]
            open_ = pending[table[here] < 0]
            if len(open_):
                slots, first = np.unique(at[open_], return_index=True)
                won = open_[first]
                self._used += int(np.count_nonzero(table[slots] == _EMPTY))
                table[slots] = values[won]
                placed[won] = True
                pending = pending[~placed[pending]]
            moving = pending[table[at[pending]] >= 0]
            at[moving] = (at[moving] + 1) & mask

    def _live(self):
        """Every live entry, in table order."""
        held = self._slots
        return held[held >= 0] & _ENTRY

    def held(self):
        """{hash: entry} of the live entries (tests, and what reads the index whole)."""
        live = self._live()
        return dict(zip(self.hashes[live].tolist(), live.tolist()))

    def _rebuild(self, new=()):
        """A fresh table holding the live entries and ``new`` (entries just
        taken, not placed yet): no tombstones, at most a quarter full."""
        live = np.concatenate((self._live(), np.asarray(new, np.int64)))
        size = _MIN_TABLE
        while size < 4 * len(live):
            size *= 2
        self._new_table(size)
        if len(live):
            self._insert(self.hashes[live], live)

    def _probe(self, hashes):
        """Table entry per hash, -1 where absent: linear probing, all hashes at
        once; a slot whose tag matches is a hit when its entry's hash does."""
        at = self._home(hashes)
        out = np.full(len(hashes), -1, np.int64)
        pending = np.arange(len(hashes))
        table, mask = self._slots, self._mask
        tags = (hashes >> _TAG_SHIFT).astype(np.int64)
        while len(pending):
            held = table[at[pending]]
            entry = held & _ENTRY
            hit = (held >= 0) & ((held >> 32) == tags[pending])
            hit[hit] = self.hashes[entry[hit]] == hashes[pending[hit]]
            out[pending[hit]] = entry[hit]
            pending = pending[~hit & (held != _EMPTY)]
            at[pending] = (at[pending] + 1) & mask
        return out

    def _slot_of(self, entry):
        """Where a live entry sits in the table (found by probing from its hash's home)."""
        value = int(_slot_values(self.hashes[entry:entry + 1], np.int64(entry))[0])
        at, table = int(self._home(self.hashes[entry:entry + 1])[0]), self._slots
        while int(table[at]) != value:
            at = (at + 1) & self._mask
        return at

    # --- entries --------------------------------------------------------------

    def find(self, hashes, keys):
        """Entry per group (int64 array), -1 where the direction is unknown or
        another key holds the same hash."""
        entries = self._probe(hashes)
        known = np.flatnonzero(entries >= 0)
        if len(known):
            same = (np.take(self.keys, entries[known], axis=0) == keys[known]).all(axis=1)
            entries[known[~same]] = -1
        return entries

    def account(self, groups, idle):
        """Add the sums of the ``groups`` (split.Groups) whose direction this
        index holds, unless the direction was quiet for longer than ``idle``
        (its flow may have ended, which the flow table decides; the other
        side may not be quiet). Returns the rows of the groups not added
        (int64 array): new directions and those to decide. One C pass when
        the compiled module is built, else whole-array numpy."""
        entry_keys(groups, self.engine)     # what this index holds them by (filled once)
        hashes, keys, flips = groups.entry_hashes, groups.entry_keys, groups.flips
        if self._c is not None:
            rest = self._c.account(self._slots, self.keys, self.last, self.pkts, self.octets, self.touched,
                                   self._bits, hashes, keys, flips, groups.first_ts, groups.last_ts,
                                   groups.count, groups.octets, float(idle))
            return np.frombuffer(rest, np.int64)
        found = self.find(hashes, keys)
        ok = found >= 0
        ok[ok] = groups.first_ts[ok] - self.last[found[ok]] <= idle
        if ok.any():
            self.add(found[ok], groups.count[ok], groups.octets[ok], groups.last_ts[ok], flips[ok])
        return np.flatnonzero(~ok)

    def add(self, entries, counts, octets, last_ts, flips=None):
        """Add one chunk's sums to the entries' first directions, or where
        ``flips`` is 1 their mirrors'; ``entries`` are distinct."""
        column = 0 if flips is None else np.asarray(flips, np.intp)
        self.pkts[entries, column] += counts
        self.octets[entries, column] += octets
        self.last[entries] = np.maximum(self.last[entries], last_ts)
        self.touched[entries] = True

    def bind(self, owners, hashes, keys, last_ts, flips=None):
        """Entries for directions the flow table has just opened: ``owners[i]``
        is ``(flow, side)`` for ``hashes[i]`` and ``keys[i]``, the entry's
        mirror direction where ``flips[i]`` is 1 (split.entry_keys: the
        entry's first direction counts for the flow's other side). Skipped: a
        flow already ended (shed for capacity by a later add), and a hash
        already held — by the same direction or its mirror (it was quiet, or
        both directions opened in one chunk: its last time moves on), or by
        another key (that direction keeps taking the slow path)."""
        flips = np.zeros(len(owners), np.int8) if flips is None else np.ascontiguousarray(flips, np.int8)
        if len(self.free) + len(self.owner) - self.fresh < len(owners):   # room for all first: one order
            self._grow(max(min(2 * len(self.owner), MAX_ENTRIES), len(self.owner) + len(owners)))
        # Rows that share a hash share a group; ``current``: the entry holding each group's hash (-1: none).
        distinct, group = np.unique(np.ascontiguousarray(hashes, np.uint64), return_inverse=True)
        current = self._probe(distinct)
        if self._c is not None:
            *raws, self.fresh = self._c.bind_entries(self.chain, self.ordinal, self.fresh, self.owner, self.side,
                                                     self.free, list(owners), np.ascontiguousarray(group, np.int64),
                                                     current, flips)
            picked, entries, again, again_rows = (np.frombuffer(raw, np.int64) for raw in raws)
        else:
            picked, entries, again, again_rows = self._entries_for(owners, group.tolist(), current, flips.tolist())
        if len(again):
            self.last[again] = np.maximum(self.last[again], last_ts[again_rows])
        if not len(entries):
            return
        self.hashes[entries] = hashes[picked]
        self.keys[entries] = keys[picked]
        self.last[entries] = last_ts[picked]
        if 2 * (self._used + len(entries)) > len(self._slots):
            self._rebuild(entries)
        else:
            self._insert(hashes[picked], entries)

    def _entries_for(self, owners, group, current, flips):
        """``bind``'s loop in Python (the compiled module's ``bind_entries``
        takes the same steps): (picked rows, their entries, entries seen
        again, their rows) as int64 arrays."""
        owner, sides, free, chain = self.owner, self.side, self.free, self.chain
        current = current.tolist()
        picked, entries, again, again_rows = [], [], [], []
        for i, (g, (flow, side), flip) in enumerate(zip(group, owners, flips)):
            if flow.end_reason is not None:
                continue
            side ^= flip                      # the flow's side the entry's first direction counts
            entry = current[g]
            if entry >= 0:
                if owner[entry] is flow and sides[entry] == side:
                    again.append(entry)
                    again_rows.append(i)
                continue
            if free:
                handle = free.pop()
            else:
                handle = self.fresh << 2 | self.ordinal
                self.fresh += 1
            entry = current[g] = handle >> 2
            owner[entry] = flow
            sides[entry] = side
            chain[entry] = -1 if flow.entries is None else flow.entries
            flow.entries = handle
            picked.append(i)
            entries.append(entry)
        return tuple(np.array(a, np.int64) for a in (picked, entries, again, again_rows))

    def settle(self, entry):
        """Fold one entry's counters into its flow and release it."""
        flow, side, last = self.owner[entry], int(self.side[entry]), float(self.last[entry])
        (p0, p1), (o0, o1) = self.pkts[entry].tolist(), self.octets[entry].tolist()
        _fold(flow, side, p0, o0, last)
        _fold(flow, 1 - side, p1, o1, last)
        self._release(entry)

    def _release(self, entry):
        self._slots[self._slot_of(entry)] = _TOMB
        self.owner[entry] = None
        self.pkts[entry] = self.octets[entry] = 0
        self.last[entry] = 0.0
        self.touched[entry] = False
        self.chain[entry] = -1
        self.free.append(entry << 2 | self.ordinal)

    def settle_all(self):
        """Fold and release every entry (end of input): one pass over lists."""
        live = self._live()
        owner = self.owner
        if self._c is not None:                   # the same loop in C
            self._c.settle_entries(owner, live, self.side, self.pkts, self.octets, self.last)
        else:
            live = live.tolist()
            for entry, side, pkts, octets, last in zip(live, self.side[live].tolist(), self.pkts[live].tolist(),
                                                       self.octets[live].tolist(), self.last[live].tolist()):
                flow = owner[entry]
                flow.count(side, pkts[0], octets[0])      # _fold, inline: once per entry
                flow.count(1 - side, pkts[1], octets[1])
                if last > flow.last:
                    flow.last = last
                flow.entries = None
                owner[entry] = None
        self._empty(_MIN_ENTRIES)

    def last_of(self, entry):
        return float(self.last[entry])

    def publish(self):
        """Carry the fast path's last timestamps into their flows."""
        moved = np.flatnonzero(self.touched)
        owner = self.owner
        for entry, last in zip(moved.tolist(), self.last[moved].tolist()):
            flow = owner[entry]
            if last > flow.last:
                flow.last = last
        self.touched[moved] = False


class Directions:
    """The direction indexes of one flow table, one per key width, owned by
    the pipeline: what the flow table calls (its ``fast`` collaborator,
    flows.FastCounters) for the flows the fast path counts."""

    def __init__(self, engine):
        self.engine = engine
        self.by_width = {}
        self.ordered = []                   # the indexes by ordinal (a handle's low two bits)

    def index(self, width):
        """The index of keys ``width`` words wide (made on first use)."""
        found = self.by_width.get(width)
        if found is None:
            if len(self.ordered) == 4:
                raise ValueError("a handle names at most four direction indexes")
            found = self.by_width[width] = DirectionIndex(width, self.engine, ordinal=len(self.ordered))
            self.ordered.append(found)
        return found

    def entries_of(self, flow):
        """A flow's (index, entry) pairs, its latest first (the chain from ``Flow.entries``)."""
        handle = flow.entries
        while handle is not None and handle >= 0:
            index, entry = self.ordered[handle & 3], handle >> 2
            yield index, entry
            handle = int(index.chain[entry])

    def refresh(self, flow):
        """Carry the last times the fast path counted into ``flow.last``."""
        for index, entry in self.entries_of(flow):
            last = index.last_of(entry)
            if last > flow.last:
                flow.last = last

    def release(self, flow):
        """Fold ``flow``'s entries into it and free them (it ends)."""
        for index, entry in list(self.entries_of(flow)):
            index.settle(entry)
        flow.entries = None

    def publish(self):
        """Every flow's last time refreshed (before a scan for idle flows)."""
        for index in self.by_width.values():
            index.publish()

    def settle_all(self):
        """Every entry folded into its flow and freed (the table flushes)."""
        for index in self.by_width.values():
            index.settle_all()


def _fold(flow, side, pkts, octets, last):
    flow.count(side, pkts, octets)
    if last > flow.last:
        flow.last = last
