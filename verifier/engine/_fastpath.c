/* The per-frame passes in C: what walk.py, split.py and
 * directions.py do with numpy, one frame (or group) at a time, with the same
 * results to the bit.
 *
 * Why: every other step of an audit runs per flow direction or per flow;
 * these run per frame, or per group of a chunk. As whole-array numpy passes
 * they were about a third of an audit of the benchmark capture (sorting a
 * chunk's rows by key hash to group them, gathering record headers, probing
 * the direction index in rounds); one pass in C with a hash table costs a
 * few percent. open_directions, bind_entries and settle_entries run once per
 * flow direction: the flow table's busiest loops, ~8 us of Python per new
 * direction, taking the same steps on the same Python objects through the
 * C API, on flows whose fields this module stores (Flow). The numpy and Python code stays the reference and the fallback:
 * setup.py builds this module as optional, so an install without a compiler
 * runs the same audit, slower (verifier/engine.py says which runs).
 * tests/test_fastpath.py holds the two to equal output on crafted, random,
 * damaged and corpus frames and on flow tables that renew, shed and release.
 *
 * pcap_records(buf, big_endian, tick, max_record)
 *     -> (off, ts, incl, orig, stop, oversize)
 *     The record walk of walk._plain: offsets of frame data, timestamps
 *     (seconds + fraction * tick), captured and wire lengths, as bytes of
 *     int64 / float64; where the walk stopped and whether at an oversize record.
 *
 * split(buf, off, incl, orig, ts, ifx, ethernet, interfaces, program,
 *       port_flags, widths, tag_mult)
 *     -> None on a hash collision, else (per width: None or groups, slow)
 *     split.split: each frame's class found by running ``program``
 *     (engine/frames.PROGRAM: rows of tests over header bytes, with the
 *     65,536 ``port_flags``), its key masked and hashed by its width's
 *     (size, base, mask, mult) of ``widths``, grouped in first-seen order.
 *     This module names no port, offset or layout: frames.py declares them.
 *     Groups are a tuple of bytes (hashes, keys, classes, first, count,
 *     octets, first_ts, last_ts); slow is the bytes of the int64 rows left
 *     to the decoder.
 *
 * entry_keys(keys, width, classes, hashes, base, mirror, mirrored, mult, tag_mult)
 *     -> (hashes, keys, flips) as bytes of uint64, uint64 and int8
 *     split.entry_keys: per group, the key the direction index holds it by:
 *     for a class with a mirror (frames.Width.mirror: where each byte of the
 *     reply's key comes from), the lesser of the key and its mirror, word by
 *     word, rehashed as split hashes (flip 1) when that is the mirror.
 *
 * account(table, keys, last, pkts, octets, touched, bits,
 *         hashes, group_keys, flips, first_ts, last_ts, count, group_octets, idle)
 *     -> bytes of the int64 groups not added
 *     directions.DirectionIndex.account: each group whose entry key (and
 *     hash) the index holds (a slot of the same tag, its entry of the same
 *     key) and that was not quiet past the idle timeout has its sums added to
 *     its entry's column ``flip`` (pkts and octets are (entries, 2)), in
 *     place; the rest are returned. A table slot is -1 (empty), -2 (a
 *     tombstone) or tag << 32 | entry, the tag the hash's top 31 bits.
 *
 * open_directions(flows, created, renew, idle, kinds, fields, parts, flow_type, capacity,
 *                 (shared, limit))
 *     -> per part, the list of (flow, side) owners of its rows
 *     split.open_directions: the rows account() handed back, every part's
 *     merged by first frame (arrival order), go through the steps of
 *     flows.FlowTable.add_directions: fields read from the key where
 *     split.FIELDS says they are, the flow's key, the live flow or a new
 *     flow_type (model.Flow, or a subclass) one while the table holds fewer than
 *     ``capacity`` (added to ``flows`` and appended to ``created``, as
 *     FlowTable.renew does), else renew(flow or None, key, side, first_ts)
 *     (FlowTable.renew, which may end flows), counters, last time, MACs
 *     (model.MacSets.add, on its table ``shared``: flows share MACs and sets),
 *     tunnels. A part is (keys, width, classes, rows, first, first_ts,
 *     last_ts, count, octets).
 *
 * bind_entries(chain, ordinal, fresh, owner, side, free, owners, group, current, flips)
 *     -> bytes of int64 (picked rows, their entries, quiet entries seen again, their rows), fresh
 *     The loop of directions.DirectionIndex.bind: for each (flow, side) of a
 *     flow not ended, a free entry (the last handle of ``free``, entry << 2 |
 *     ``ordinal``; when it is empty, entry ``fresh``, never taken), the owner
 *     noted with the side its first direction counts (the row's side, the
 *     other where its ``flip`` is 1), the handle made the flow's ``entries``
 *     with its earlier one (or -1) in ``chain[entry]``. Rows share a hash when
 *     they share a ``group``; ``current[group]`` is the entry holding that
 *     hash (-1: none), updated as entries are taken. A hash already held by
 *     the same owner and side is "seen again", by another is skipped. ``free`` must
 *     hold an entry per owner.
 *
 * insert_hashes(table, bits, hashes, entries) -> empty slots taken
 *     directions.DirectionIndex._insert: hashes known to be absent placed by
 *     linear probing in the same rounds as the numpy code (each round, every
 *     row not yet placed tries its slot, the first to find it open takes it,
 *     the rest move one slot on), so the table comes out the same.
 *
 * settle_entries(owner, live, side, pkts, octets, last) -> None
 *     The loop of directions.DirectionIndex.settle_all: each live entry's
 *     two columns of counters added to its flow's sides (the first to
 *     ``side``), its last time carried, the flow's entries and the entry's
 *     owner cleared.
 *
 * Flow: model.Flow's fields stored in C (the section "model.Flow's storage").
 *
 * pcap_records and split release the GIL while they walk the frames, so a
 * daemon's other threads (metrics, prober, capture reader) run meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define MAX_HEADER 128           /* header bytes a frame may be read to (frames.HEADER: 112) */
#define MAX_WIDTHS 4             /* key widths (frames.WIDTHS: 2) */
#define FIB 0x9E3779B97F4A7C15ULL

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static inline uint32_t u32(const uint8_t *p, int big)
{
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* ---- pcap records ------------------------------------------------------ */

static PyObject *new_bytes(Py_ssize_t n, void **data)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL)
        *data = PyBytes_AS_STRING(out);
    return out;
}

static PyObject *pcap_records(PyObject *self, PyObject *args)
{
    Py_buffer view;
    int big;
    double tick;
    Py_ssize_t max_record;
    if (!PyArg_ParseTuple(args, "y*pdn", &view, &big, &tick, &max_record))
        return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t end = view.len, off = 0, n = 0;
    int oversize = 0;
    Py_BEGIN_ALLOW_THREADS
    while (off + 16 <= end) {
        Py_ssize_t incl = (Py_ssize_t)u32(b + off + 8, big);
        if (incl > max_record) {
            oversize = 1;
            break;
        }
        if (off + 16 + incl > end)
            break;
        n++;
        off += 16 + incl;
    }
    Py_END_ALLOW_THREADS
    Py_ssize_t stop = off;
    int64_t *o_off = NULL, *o_incl = NULL, *o_orig = NULL;
    double *o_ts = NULL;
    PyObject *offs = new_bytes(8 * n, (void **)&o_off), *ts = new_bytes(8 * n, (void **)&o_ts);
    PyObject *incls = new_bytes(8 * n, (void **)&o_incl), *origs = new_bytes(8 * n, (void **)&o_orig);
    if (!offs || !ts || !incls || !origs) {
        Py_XDECREF(offs); Py_XDECREF(ts); Py_XDECREF(incls); Py_XDECREF(origs);
        PyBuffer_Release(&view);
        return NULL;
    }
    off = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *h = b + off;
        uint32_t incl = u32(h + 8, big);
        o_off[i] = off + 16;
        /* two statements, and -ffp-contract=off: no fused multiply-add, as numpy */
        double frac = (double)u32(h + 4, big) * tick;
        o_ts[i] = (double)u32(h, big) + frac;
        o_incl[i] = incl;
        o_orig[i] = u32(h + 12, big);
        off += 16 + incl;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("NNNNni", offs, ts, incls, origs, stop, oversize);
}

/* ---- classification (engine/frames.py's program, frame by frame) ------- */

/* The ops of a program row (frames.BYTE ...) and the port flag bits. */
enum { OP_BYTE = 1, OP_WORD, OP_AT_LEAST, OP_CAPTURED, OP_TRANSPORT, OP_TUNNEL_PORT, OP_EQUAL16, OP_LAST = OP_EQUAL16 };
enum { PORT_DECODER = 1, PORT_ANY_TUNNEL = 2 };
enum { TCP = 6, UDP = 17 };

typedef struct { int64_t op, a, b, c, d, e, leaf, fail; } Test;     /* a row of frames.PROGRAM */

/* A row as classify runs it: where to go on a pass and on a failure, a row
 * (>= 0), no class (-1) or class -target - 2; ``steps`` makes them. */
typedef struct {
    int32_t op, a, b, c, pass, fail;
    uint64_t m0, v0, m1, v1;                 /* OP_EQUAL16's masks and values */
} Step;

#if defined(__GNUC__)
#define UNREACHABLE() __builtin_unreachable()
#else
#define UNREACHABLE() do { } while (0)
#endif

/* The class of the frame whose header is ``h``, or -1: steps from row 0,
 * each test deciding where the frame goes next. */
static inline int classify(const Step *steps, const uint8_t *h, int64_t incl, const uint8_t *ports)
{
    int32_t k = 0;
    for (;;) {
        const Step *t = steps + k;
        int ok;
        switch (t->op) {
        case OP_EQUAL16:
            ok = (le64(h + t->a) & t->m0) == t->v0 && (le64(h + t->a + 8) & t->m1) == t->v1;
            break;
        case OP_BYTE:
            ok = (h[t->a] & t->b) == t->c;
            break;
        case OP_WORD:
            ok = (be16(h + t->a) & t->b) == t->c;
            break;
        case OP_AT_LEAST:
            ok = be16(h + t->a) >= t->c;
            break;
        case OP_CAPTURED:
            ok = incl >= t->c;
            break;
        case OP_TRANSPORT: {
            uint8_t proto = h[t->a];
            ok = proto == TCP
                 || (proto == UDP && !((ports[be16(h + t->b)] | ports[be16(h + t->b + 2)]) & PORT_DECODER));
            break;
        }
        case OP_TUNNEL_PORT: {                   /* the destination port first, as the decoder */
            uint16_t dport = be16(h + t->a + 2);
            ok = (ports[(ports[dport] & PORT_ANY_TUNNEL) ? dport : be16(h + t->a)] & t->b) != 0;
            break;
        }
        default:
            UNREACHABLE();                       /* program_check admits no other op */
        }
        k = ok ? t->pass : t->fail;
        if (k < 0)
            return k == -1 ? -1 : -k - 2;
    }
}

/* ``program``'s rows as steps (program_check passed). */
static Step *steps_of(const Test *program, Py_ssize_t n)
{
    Step *out = PyMem_Malloc((size_t)n * sizeof *out);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        const Test *t = program + k;
        int equal16 = t->op == OP_EQUAL16;
        out[k] = (Step){(int32_t)t->op, (int32_t)t->a, equal16 ? 0 : (int32_t)t->b, equal16 ? 0 : (int32_t)t->c,
                        t->leaf >= 0 ? (int32_t)(-t->leaf - 2) : (int32_t)(k + 1), (int32_t)t->fail,
                        equal16 ? (uint64_t)t->b : 0, equal16 ? (uint64_t)t->c : 0,
                        equal16 ? (uint64_t)t->d : 0, equal16 ? (uint64_t)t->e : 0};
    }
    return out;
}

/* A program is safe to run on ``header`` readable bytes when every op is
 * known, every offset it reads lies inside, every jump is forward and
 * every row that is not a leaf has a next row. */
static int program_check(const Test *p, Py_ssize_t n, int header, int classes)
{
    for (Py_ssize_t k = 0; k < n; k++) {
        const Test *t = p + k;
        int64_t reads = t->op == OP_BYTE ? t->a + 1
                      : t->op == OP_WORD || t->op == OP_AT_LEAST ? t->a + 2
                      : t->op == OP_TRANSPORT ? (t->a + 1 > t->b + 4 ? t->a + 1 : t->b + 4)
                      : t->op == OP_TUNNEL_PORT ? t->a + 4 : t->op == OP_EQUAL16 ? t->a + 16 : 0;
        int wide = t->op == OP_EQUAL16;          /* its b..e are 64-bit masks and values */
        if (t->op < OP_BYTE || t->op > OP_LAST || t->a < 0 || t->a > header
            || (!wide && (t->b < 0 || t->b > 0xFFFF || t->c < 0 || t->c > INT32_MAX))
            || n > INT32_MAX / 2 || reads > header
            || t->leaf >= classes || t->leaf < -1
            || (t->fail != -1 && (t->fail <= k || t->fail >= n)) || (t->leaf < 0 && k + 1 >= n)) {
            PyErr_Format(PyExc_ValueError, "frame program row %zd is not one this module can run", k);
            return -1;
        }
    }
    return 0;
}

/* ---- grouping ------------------------------------------------------------ */

typedef struct {
    int width;                   /* key words before the class/interface word */
    int base;                    /* class id of mask row 0 */
    const uint64_t *mask;        /* [class - base][width] */
    const uint64_t *mult;        /* [width] */
    uint64_t tag_mult;
    Py_ssize_t n, cap;           /* groups, room */
    uint64_t *hashes, *keys;     /* keys: [group][width + 1] */
    int64_t *cls, *first, *count, *octets;
    double *first_ts, *last_ts;
    int32_t *table;              /* open addressing: group or -1 */
    int bits;
} Groups;

static void groups_free(Groups *g)
{
    PyMem_Free(g->hashes); PyMem_Free(g->keys); PyMem_Free(g->cls); PyMem_Free(g->first);
    PyMem_Free(g->count); PyMem_Free(g->octets); PyMem_Free(g->first_ts); PyMem_Free(g->last_ts);
    PyMem_Free(g->table);
}

static int groups_init(Groups *g, int width, int base, const uint64_t *mask, const uint64_t *mult,
                       uint64_t tag_mult, Py_ssize_t cap)
{
    memset(g, 0, sizeof *g);
    g->width = width, g->base = base, g->mask = mask, g->mult = mult, g->tag_mult = tag_mult, g->cap = cap;
    g->bits = 4;
    while (((Py_ssize_t)1 << g->bits) < 2 * cap)
        g->bits++;
    g->hashes = PyMem_Malloc(cap * 8);
    g->keys = PyMem_Malloc(cap * 8 * (width + 1));
    g->cls = PyMem_Malloc(cap * 8), g->first = PyMem_Malloc(cap * 8);
    g->count = PyMem_Malloc(cap * 8), g->octets = PyMem_Malloc(cap * 8);
    g->first_ts = PyMem_Malloc(cap * 8), g->last_ts = PyMem_Malloc(cap * 8);
    g->table = PyMem_Malloc(((size_t)1 << g->bits) * sizeof(int32_t));
    if (!g->hashes || !g->keys || !g->cls || !g->first || !g->count || !g->octets || !g->first_ts || !g->last_ts
        || !g->table) {
        groups_free(g);
        return -1;
    }
    memset(g->table, 0xFF, ((size_t)1 << g->bits) * sizeof(int32_t));
    return 0;
}

/* A key's hash: its ``n`` header words times their multipliers, plus the
 * class/interface word's; the top bits folded down (split._key_hash). */
static uint64_t key_hash(const uint64_t *words, Py_ssize_t n, const uint64_t *mult, uint64_t tag, uint64_t tag_mult)
{
    uint64_t hash = 0;
    for (Py_ssize_t k = 0; k < n; k++)
        hash += words[k] * mult[k];
    hash += tag * tag_mult;
    return hash ^ (hash >> 29);
}

/* Count row ``row`` into its group. 0, or -1 when another key has the same hash. */
static int groups_add(Groups *g, const uint8_t *h, int cls, int64_t gifx, Py_ssize_t row, int64_t orig, double ts)
{
    int width = g->width;
    uint64_t words[MAX_HEADER / 8 + 1];
    const uint64_t *mask = g->mask + (size_t)(cls - g->base) * width;
    for (int k = 0; k < width; k++)
        words[k] = le64(h + 8 * k) & mask[k];
    uint64_t tag = (uint64_t)cls | ((uint64_t)gifx << 8);
    words[width] = tag;
    uint64_t hash = key_hash(words, width, g->mult, tag, g->tag_mult);
    size_t slots = (size_t)1 << g->bits, at = (size_t)((hash * FIB) >> (64 - g->bits));
    for (;; at = (at + 1) & (slots - 1)) {
        int32_t grp = g->table[at];
        if (grp < 0)
            break;
        if (g->hashes[grp] != hash)
            continue;
        if (memcmp(g->keys + (size_t)grp * (width + 1), words, 8 * (width + 1)) != 0)
            return -1;
        g->count[grp]++;
        g->octets[grp] += orig;
        if (ts < g->first_ts[grp])
            g->first_ts[grp] = ts;
        if (ts > g->last_ts[grp])
            g->last_ts[grp] = ts;
        return 0;
    }
    Py_ssize_t grp = g->n++;
    g->table[at] = (int32_t)grp;
    g->hashes[grp] = hash;
    memcpy(g->keys + (size_t)grp * (width + 1), words, 8 * (width + 1));
    g->cls[grp] = cls, g->first[grp] = row, g->count[grp] = 1, g->octets[grp] = orig;
    g->first_ts[grp] = g->last_ts[grp] = ts;
    return 0;
}

static PyObject *groups_out(Groups *g)
{
    if (g->n == 0)
        Py_RETURN_NONE;
    Py_ssize_t n = g->n;
    return Py_BuildValue("y#y#y#y#y#y#y#y#", (char *)g->hashes, n * 8, (char *)g->keys, n * 8 * (g->width + 1),
                         (char *)g->cls, n * 8, (char *)g->first, n * 8, (char *)g->count, n * 8,
                         (char *)g->octets, n * 8, (char *)g->first_ts, n * 8, (char *)g->last_ts, n * 8);
}

static int need(Py_buffer *v, Py_ssize_t bytes, const char *what)
{
    if (v->len < bytes) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, need %zd", what, v->len, bytes);
        return -1;
    }
    return 0;
}

/* One key width of split's ``widths``: (size, base, mask, mult). */
typedef struct {
    int size, base, classes;
    Py_buffer mask, mult;
    int have;
} WidthArg;

static int width_arg(PyObject *item, WidthArg *w, int base)
{
    memset(w, 0, sizeof *w);
    if (!PyArg_ParseTuple(item, "iiy*y*", &w->size, &w->base, &w->mask, &w->mult))
        return -1;
    w->have = 1;
    if (w->size <= 0 || w->size % 8 || w->size > MAX_HEADER || w->base != base || w->mult.len != w->size
        || w->mask.len % w->size || w->mask.len == 0) {
        PyErr_SetString(PyExc_ValueError, "a key width is (size: a multiple of 8 up to 128, base: the classes before,"
                                          " mask: a row of size bytes per class, mult: size bytes)");
        return -1;
    }
    w->classes = (int)(w->mask.len / w->size);
    return 0;
}

static PyObject *split(PyObject *self, PyObject *args)
{
    Py_buffer buf, off, incl, orig, ts, ifx, eth, ifaces, prog, pflags;
    PyObject *widths_arg;
    unsigned long long tag_mult;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*O!K", &buf, &off, &incl, &orig, &ts, &ifx, &eth, &ifaces,
                          &prog, &pflags, &PyTuple_Type, &widths_arg, &tag_mult))
        return NULL;
    PyObject *result = NULL;
    WidthArg widths[MAX_WIDTHS];
    Groups groups[MAX_WIDTHS];
    Py_ssize_t nwidths = PyTuple_GET_SIZE(widths_arg), ngroups = 0, nw = 0;
    uint8_t *slow = NULL;
    Step *steps = NULL;
    Py_ssize_t n = off.len / 8;
    int header = 0, classes = 0;
    if (nwidths < 1 || nwidths > MAX_WIDTHS) {
        PyErr_SetString(PyExc_ValueError, "widths: one to four key widths");
        goto done;
    }
    for (; nw < nwidths; nw++) {
        if (width_arg(PyTuple_GET_ITEM(widths_arg, nw), &widths[nw], classes) < 0) {
            nw += widths[nw].have;
            goto done;
        }
        classes += widths[nw].classes;
        if (widths[nw].size > header)
            header = widths[nw].size;
    }
    if (need(&incl, 8 * n, "incl") || need(&orig, 8 * n, "orig") || need(&ts, 8 * n, "ts") || need(&ifx, 8 * n, "ifx")
        || need(&ifaces, 8 * eth.len, "interfaces") || need(&pflags, 65536, "port flags"))
        goto done;
    if (prog.len == 0 || prog.len % sizeof(Test)) {
        PyErr_SetString(PyExc_ValueError, "program: rows of eight int64");
        goto done;
    }
    if (program_check(prog.buf, prog.len / (Py_ssize_t)sizeof(Test), header, classes) < 0)
        goto done;
    steps = steps_of(prog.buf, prog.len / (Py_ssize_t)sizeof(Test));
    if (steps == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint8_t group_of[256];                       /* class -> its width's groups */
    if (classes > 256) {
        PyErr_SetString(PyExc_ValueError, "widths: at most 256 classes");
        goto done;
    }
    for (Py_ssize_t g = 0; g < nwidths; g++)
        memset(group_of + widths[g].base, (int)g, (size_t)widths[g].classes);
    for (; ngroups < nwidths; ngroups++) {
        const WidthArg *w = &widths[ngroups];
        if (groups_init(&groups[ngroups], w->size / 8, w->base, w->mask.buf, w->mult.buf, tag_mult, n) < 0) {
            PyErr_NoMemory();
            goto done;
        }
    }
    slow = PyMem_Malloc(n ? n : 1);
    if (slow == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *b = buf.buf, *ethernet = eth.buf, *ports = pflags.buf;
    const int64_t *offs = off.buf, *incls = incl.buf, *origs = orig.buf, *ifxs = ifx.buf, *gmap = ifaces.buf;
    const double *times = ts.buf;
    Py_ssize_t blen = buf.len, nslow = 0;
    uint8_t pad[MAX_HEADER];
    int collided = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n && !collided; r++) {
        int64_t at = offs[r], i = ifxs[r];
        slow[r] = 1;
        if (i < 0 || i >= eth.len || !ethernet[i])
            continue;
        const uint8_t *h;
        if (at >= 0 && at <= blen - header) {
            h = b + at;
        } else {
            /* as split.split: bytes past the buffer read as zeros (the length tests keep keys inside the frame) */
            memset(pad, 0, sizeof pad);
            if (at >= 0 && at < blen)
                memcpy(pad, b + at, (size_t)(blen - at));
            h = pad;
        }
        int cls = classify(steps, h, incls[r], ports);
        if (cls < 0)
            continue;
        if (groups_add(&groups[group_of[cls]], h, cls, gmap[i], r, origs[r], times[r]) < 0)
            collided = 1;
        slow[r] = 0;
    }
    Py_END_ALLOW_THREADS
    if (collided) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    for (Py_ssize_t r = 0; r < n; r++)
        nslow += slow[r];
    int64_t *rows = NULL;
    PyObject *slow_rows = new_bytes(8 * nslow, (void **)&rows);
    if (slow_rows == NULL)
        goto done;
    for (Py_ssize_t r = 0, k = 0; r < n; r++)
        if (slow[r])
            rows[k++] = r;
    PyObject *found = PyTuple_New(nwidths);
    for (Py_ssize_t g = 0; found && g < nwidths; g++) {
        PyObject *part = groups_out(&groups[g]);
        if (part == NULL) {
            Py_CLEAR(found);
            break;
        }
        PyTuple_SET_ITEM(found, g, part);
    }
    if (found)
        result = Py_BuildValue("NN", found, slow_rows);
    else
        Py_DECREF(slow_rows);
done:
    for (Py_ssize_t g = 0; g < ngroups; g++)
        groups_free(&groups[g]);
    for (Py_ssize_t k = 0; k < nw; k++) {
        PyBuffer_Release(&widths[k].mask);
        PyBuffer_Release(&widths[k].mult);
    }
    PyMem_Free(slow);
    PyMem_Free(steps);
    Py_buffer *views[] = {&buf, &off, &incl, &orig, &ts, &ifx, &eth, &ifaces, &prog, &pflags};
    for (size_t k = 0; k < sizeof views / sizeof *views; k++)
        PyBuffer_Release(views[k]);
    return result;
}

/* ---- known directions (directions.DirectionIndex.account) --------------- */

static PyObject *account(PyObject *self, PyObject *args)
{
    Py_buffer table, keys, last, pkts, octets, touched, g_hashes, g_keys, g_flips, g_first, g_last, g_count, g_octets;
    int bits;
    double idle;
    if (!PyArg_ParseTuple(args, "y*y*w*w*w*w*iy*y*y*y*y*y*y*d", &table, &keys, &last, &pkts, &octets, &touched,
                          &bits, &g_hashes, &g_keys, &g_flips, &g_first, &g_last, &g_count, &g_octets, &idle))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = g_hashes.len / 8, entries = last.len / 8, width = n ? g_keys.len / 8 / n : 0;
    size_t slots = (size_t)1 << bits;
    if (bits < 1 || bits > 62 || need(&table, 8 * (Py_ssize_t)slots, "table")
        || need(&keys, 8 * width * entries, "keys") || need(&pkts, 16 * entries, "packets")
        || need(&octets, 16 * entries, "octets") || need(&touched, entries, "touched")
        || need(&g_keys, 8 * width * n, "group keys") || need(&g_flips, n, "group flips")
        || need(&g_first, 8 * n, "group first times")
        || need(&g_last, 8 * n, "group last times") || need(&g_count, 8 * n, "group counts")
        || need(&g_octets, 8 * n, "group octets"))
        goto done;
    const uint64_t *hashes = g_hashes.buf, *gkeys = g_keys.buf, *ekeys = keys.buf;
    const int64_t *te = table.buf, *count = g_count.buf, *gocts = g_octets.buf;
    const double *first_ts = g_first.buf, *last_ts = g_last.buf;
    const int8_t *flips = g_flips.buf;
    double *elast = last.buf;
    int64_t *epkts = pkts.buf, *eocts = octets.buf;
    uint8_t *etouched = touched.buf;
    int64_t *rest = PyMem_Malloc(8 * (n ? n : 1));
    if (rest == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nrest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t hash = hashes[i];
        int64_t entry = -1, tag = (int64_t)(hash >> 33);
        for (size_t at = (size_t)((hash * FIB) >> (64 - bits));; at = (at + 1) & (slots - 1)) {
            int64_t held = te[at];
            if (held == -1)                          /* empty: absent (-2, a tombstone, probes on) */
                break;
            /* the same tag and the same key (so the same hash: the key is what was hashed) */
            if (held >= 0 && (held >> 32) == tag && (held & 0xFFFFFFFF) < entries
                && memcmp(ekeys + (held & 0xFFFFFFFF) * width, gkeys + i * width, 8 * width) == 0) {
                entry = held & 0xFFFFFFFF;
                break;
            }
        }
        /* known and not quiet past the idle timeout (the flow table decides those) */
        if (entry < 0 || !(first_ts[i] - elast[entry] <= idle)) {
            rest[nrest++] = i;
            continue;
        }
        epkts[2 * entry + (flips[i] != 0)] += count[i];      /* (entries, 2): a column per direction */
        eocts[2 * entry + (flips[i] != 0)] += gocts[i];
        if (last_ts[i] > elast[entry])
            elast[entry] = last_ts[i];
        etouched[entry] = 1;
    }
    result = PyBytes_FromStringAndSize((const char *)rest, 8 * nrest);
    PyMem_Free(rest);
done:;
    Py_buffer *views[] = {&table, &keys, &last, &pkts, &octets, &touched, &g_hashes, &g_keys, &g_flips, &g_first,
                          &g_last, &g_count, &g_octets};
    for (size_t k = 0; k < sizeof views / sizeof *views; k++)
        PyBuffer_Release(views[k]);
    return result;
}

/* ---- the keys the direction index holds groups by (split.entry_keys) ------ */

static PyObject *entry_keys(PyObject *self, PyObject *args)
{
    Py_buffer keys, classes, hashes, mirror, mirrored, mult;
    Py_ssize_t width;
    long long base;
    unsigned long long tag_mult;
    if (!PyArg_ParseTuple(args, "y*ny*y*Ly*y*y*K", &keys, &width, &classes, &hashes, &base, &mirror, &mirrored, &mult,
                          &tag_mult))
        return NULL;
    PyObject *result = NULL, *out_hashes = NULL, *out_keys = NULL, *out_flips = NULL;
    Py_ssize_t n = classes.len / 8, size = 8 * (width - 1), nclasses = mirrored.len;
    if (width < 2 || size > 255 || size > MAX_HEADER || need(&keys, 8 * width * n, "keys") || need(&hashes, 8 * n, "hashes")
        || need(&mirror, size * nclasses, "mirror") || need(&mult, 8 * (width - 1), "multipliers"))
        goto done;
    const uint8_t *perm = mirror.buf, *has = mirrored.buf;
    for (Py_ssize_t k = 0; k < size * nclasses; k++)
        if (perm[k] >= size) {
            PyErr_SetString(PyExc_ValueError, "entry_keys: a mirror reads past the key");
            goto done;
        }
    out_hashes = PyBytes_FromStringAndSize(NULL, 8 * n);
    out_keys = PyBytes_FromStringAndSize(NULL, 8 * width * n);
    out_flips = PyBytes_FromStringAndSize(NULL, n);
    if (out_hashes == NULL || out_keys == NULL || out_flips == NULL)
        goto done;
    const int64_t *cls = classes.buf;
    const uint64_t *m = mult.buf, *in_hashes = hashes.buf;
    const uint8_t *in = keys.buf;
    uint64_t *oh = (uint64_t *)PyBytes_AS_STRING(out_hashes);
    uint8_t *ok = (uint8_t *)PyBytes_AS_STRING(out_keys);
    int8_t *of = (int8_t *)PyBytes_AS_STRING(out_flips);
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *key = in + 8 * width * i;
        uint8_t *to = ok + 8 * width * i;
        int64_t c = cls[i] - base;
        if (c < 0 || c >= nclasses) {
            PyErr_SetString(PyExc_IndexError, "entry_keys: a class outside this width");
            goto done;
        }
        int flip = 0;
        if (has[c]) {
            const uint8_t *p = perm + size * c;
            for (Py_ssize_t j = 0; j < size; j++)
                to[j] = key[p[j]];
            for (Py_ssize_t k = 0; k < width - 1; k++) {     /* the lesser, word by word */
                uint64_t a, b;
                memcpy(&a, key + 8 * k, 8);
                memcpy(&b, to + 8 * k, 8);
                if (a != b) {
                    flip = b < a;
                    break;
                }
            }
        }
        of[i] = (int8_t)flip;
        if (!flip) {
            memcpy(to, key, (size_t)(8 * width));
            oh[i] = in_hashes[i];
            continue;
        }
        memcpy(to + size, key + size, 8);                    /* the class/interface word */
        uint64_t words[MAX_HEADER / 8 + 1];
        memcpy(words, to, (size_t)(8 * width));
        oh[i] = key_hash(words, width - 1, m, words[width - 1], tag_mult);
    }
    result = PyTuple_Pack(3, out_hashes, out_keys, out_flips);
done:
    Py_XDECREF(out_hashes);
    Py_XDECREF(out_keys);
    Py_XDECREF(out_flips);
    Py_buffer *views[] = {&keys, &classes, &hashes, &mirror, &mirrored, &mult};
    for (size_t k = 0; k < sizeof views / sizeof *views; k++)
        PyBuffer_Release(views[k]);
    return result;
}

/* ---- new directions (flows.FlowTable.add_directions) -------------------- */

/* Columns of split.FIELDS: where a class's fields sit in its key (-1: absent). */
enum { F_VLAN, F_PROTO, F_ADDR, F_SIZE, F_PORTS, F_SMAC, F_DMAC, F_TUNNEL, F_OUTER, F_IDENT, F_IDSIZE, F_COLUMNS };

/* ---- model.Flow's storage ---------------------------------------------------
 *
 * A flow is the table's biggest cost (issue 21: memory per open flow). As a
 * class with sixteen object slots it took 160 bytes, and its times, counters
 * and entry handle were objects of their own besides (~120 bytes more); its
 * one MAC a side a bytes object (~40). Held here in C, they are plain
 * numbers in one 128-byte object: times as doubles, counters as int64, the
 * handle as int32, a side's one MAC as its 48 bits, the end reason as a small
 * code. Reading an attribute makes the Python value (a float, an int, a
 * 6-byte bytes); writing one stores it back the same way, so Python code sees
 * what the slotted class gave it. Flows form no reference cycles (what they
 * hold are keys, MACs, tunnels, verdicts, dependence keys and FlowRare,
 * none of which refers back to a flow), so the type is not tracked by the
 * cycle collector: 16 bytes less each. model.py adds Flow's Python methods
 * and properties to the type, and keeps a slotted class of the same fields
 * for an install without this module.
 *
 * model.FLOW_SLOTS names the fields, in this order (FLOW_SLOTS below; a test
 * holds the two equal). */

typedef struct {
    PyObject_HEAD
    PyObject *key;
    double first, last;
    long long pkts_a, pkts_b, octets_a, octets_b;
    uintptr_t macs[2];         /* 0: none seen; odd: one MAC, its 48 bits << 1 | 1; else a frozenset (PyObject *) */
    PyObject *tunnels, *verdicts, *depends, *rare;
    int32_t entries;           /* the entry handle (directions.py), -1: None */
    int8_t origin;
    uint8_t end;               /* 0: None (open), else 1 + its index in end_names */
} FlowObject;

static const char *const FLOW_SLOTS[] = {"key", "first", "last", "pkts_a", "pkts_b", "octets_a", "octets_b",
                                         "macs_a", "macs_b", "origin", "end_reason", "tunnels", "entries",
                                         "verdicts", "depends", "rare"};
#define FLOW_FIELDS ((int)(sizeof FLOW_SLOTS / sizeof *FLOW_SLOTS))

static PyTypeObject *Flow_Type;          /* set at module start */
static PyObject *no_macs;                /* what a side that saw no MAC reads as (model.NO_MACS) */
static PyObject *end_names;              /* the end reasons set so far, a list: flows hold their index */

#define KEY_HEAD 13                      /* model.KEY_HEAD.size */

static FlowObject *as_flow(PyObject *o)
{
    if (!PyObject_TypeCheck(o, Flow_Type)) {
        PyErr_Format(PyExc_TypeError, "expected a model.Flow, not %.100s", Py_TYPE(o)->tp_name);
        return NULL;
    }
    return (FlowObject *)o;
}

static uintptr_t mac_word(const uint8_t *m)
{
    uint64_t v = 0;
    for (int k = 0; k < 6; k++)
        v = v << 8 | m[k];
    return (uintptr_t)(v << 1 | 1);
}

static PyObject *mac_bytes(uintptr_t word)
{
    uint8_t m[6];
    uint64_t v = (uint64_t)word >> 1;
    for (int k = 5; k >= 0; k--, v >>= 8)
        m[k] = (uint8_t)v;
    return PyBytes_FromStringAndSize((const char *)m, 6);
}

/* A side's MACs as Python sees them: NO_MACS, its one MAC (bytes), or its frozenset. */
static PyObject *macs_value(uintptr_t held)
{
    if (held == 0) {
        Py_INCREF(no_macs);
        return no_macs;
    }
    if (held & 1)
        return mac_bytes(held);
    Py_INCREF((PyObject *)held);
    return (PyObject *)held;
}

/* Store ``v`` (6 bytes: one MAC; an empty set: none; else a set, held) as a side's MACs. */
static int macs_store(uintptr_t *slot, PyObject *v)
{
    uintptr_t word;
    if (v == NULL) {
        PyErr_SetString(PyExc_TypeError, "a flow's MACs cannot be deleted");
        return -1;
    }
    if (PyBytes_Check(v) && PyBytes_GET_SIZE(v) == 6) {
        word = mac_word((const uint8_t *)PyBytes_AS_STRING(v));
    } else {
        Py_ssize_t size = PyObject_Length(v);
        if (size < 0)
            return -1;
        if (size == 0) {
            word = 0;
        } else {
            if ((uintptr_t)v & 1) {             /* never: objects are aligned */
                PyErr_SetString(PyExc_SystemError, "an unaligned object");
                return -1;
            }
            Py_INCREF(v);
            word = (uintptr_t)v;
        }
    }
    uintptr_t old = *slot;
    *slot = word;
    if (old != 0 && !(old & 1))
        Py_DECREF((PyObject *)old);
    return 0;
}

/* A new flow as Flow(key, ts) makes it, with origin ``side``; ``type`` is Flow or a subclass. */
static PyObject *new_flow(PyTypeObject *type, PyObject *key, double ts, int side)
{
    FlowObject *f = (FlowObject *)type->tp_alloc(type, 0);     /* zeroed: counters 0, no MACs, open, NULLs */
    if (f == NULL)
        return NULL;
    Py_INCREF(key);
    f->key = key;
    f->first = f->last = ts;
    f->entries = -1;
    f->origin = (int8_t)side;
    return (PyObject *)f;
}

static PyObject *flow_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"key", "ts", NULL};
    PyObject *key;
    double ts;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Od:Flow", names, &key, &ts))
        return NULL;
    return new_flow(type, key, ts, 0);
}

static void flow_dealloc(PyObject *self)
{
    FlowObject *f = (FlowObject *)self;
    PyTypeObject *type = Py_TYPE(self);
    for (int k = 0; k < 2; k++)
        if (f->macs[k] != 0 && !(f->macs[k] & 1))
            Py_DECREF((PyObject *)f->macs[k]);
    Py_CLEAR(f->key);
    Py_CLEAR(f->tunnels);
    Py_CLEAR(f->verdicts);
    Py_CLEAR(f->depends);
    Py_CLEAR(f->rare);
    type->tp_free(self);
    Py_DECREF(type);                       /* instances of a heap type hold it */
}

static PyObject *get_macs(PyObject *self, void *side)
{
    return macs_value(((FlowObject *)self)->macs[(intptr_t)side]);
}

static int set_macs(PyObject *self, PyObject *v, void *side)
{
    return macs_store(&((FlowObject *)self)->macs[(intptr_t)side], v);
}

static PyObject *get_end(PyObject *self, void *unused)
{
    uint8_t end = ((FlowObject *)self)->end;
    PyObject *v = end ? PyList_GET_ITEM(end_names, end - 1) : Py_None;
    Py_INCREF(v);
    return v;
}

static int set_end(PyObject *self, PyObject *v, void *unused)
{
    FlowObject *f = (FlowObject *)self;
    if (v == NULL || v == Py_None) {
        f->end = 0;
        return 0;
    }
    Py_ssize_t n = PyList_GET_SIZE(end_names);
    for (Py_ssize_t k = 0; k < n; k++) {
        int same = PyObject_RichCompareBool(PyList_GET_ITEM(end_names, k), v, Py_EQ);
        if (same < 0)
            return -1;
        if (same) {
            f->end = (uint8_t)(k + 1);
            return 0;
        }
    }
    if (n >= 255) {
        PyErr_SetString(PyExc_ValueError, "a flow holds one of at most 255 end reasons");
        return -1;
    }
    if (PyList_Append(end_names, v) < 0)
        return -1;
    f->end = (uint8_t)(n + 1);
    return 0;
}

static PyObject *get_entries(PyObject *self, void *unused)
{
    int32_t e = ((FlowObject *)self)->entries;
    return e < 0 ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLong(e);
}

static int set_entries(PyObject *self, PyObject *v, void *unused)
{
    FlowObject *f = (FlowObject *)self;
    if (v == NULL || v == Py_None) {
        f->entries = -1;
        return 0;
    }
    long long e = PyLong_AsLongLong(v);
    if (e == -1 && PyErr_Occurred())
        return -1;
    if (e < 0 || e > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a flow's entry handle is from 0 to 2**31 - 1");
        return -1;
    }
    f->entries = (int32_t)e;
    return 0;
}

#define FLOW_MEMBER(name, kind) {#name, kind, offsetof(FlowObject, name), 0, NULL}
static PyMemberDef flow_members[] = {
    FLOW_MEMBER(key, T_OBJECT_EX), FLOW_MEMBER(first, T_DOUBLE), FLOW_MEMBER(last, T_DOUBLE),
    FLOW_MEMBER(pkts_a, T_LONGLONG), FLOW_MEMBER(pkts_b, T_LONGLONG), FLOW_MEMBER(octets_a, T_LONGLONG),
    FLOW_MEMBER(octets_b, T_LONGLONG), FLOW_MEMBER(origin, T_BYTE), FLOW_MEMBER(tunnels, T_OBJECT),
    FLOW_MEMBER(verdicts, T_OBJECT), FLOW_MEMBER(depends, T_OBJECT), FLOW_MEMBER(rare, T_OBJECT),
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef flow_getset[] = {
    {"macs_a", get_macs, set_macs, NULL, (void *)0},
    {"macs_b", get_macs, set_macs, NULL, (void *)1},
    {"end_reason", get_end, set_end, NULL, NULL},
    {"entries", get_entries, set_entries, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot flow_slots[] = {
    {Py_tp_new, flow_new},
    {Py_tp_dealloc, flow_dealloc},
    {Py_tp_members, flow_members},
    {Py_tp_getset, flow_getset},
    {Py_tp_doc, "A bidirectional flow's fields, stored in C (model.Flow adds its methods)."},
    {0, NULL},
};

static PyType_Spec flow_spec = {"verifier.model.Flow", sizeof(FlowObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
                                flow_slots};

/* flow.macs_<i> = mac_sets.add(flow.macs_<i>, mac): model.MacSets.add (a
 * side's one MAC, a frozenset from its second on, shared through its table
 * ``shared``, a dict bounded by ``limit``). */
static int add_mac(FlowObject *f, Py_ssize_t i, const uint8_t *mac, PyObject *shared, Py_ssize_t limit)
{
    uintptr_t held = f->macs[i], one = mac_word(mac);
    if (held == 0) {
        f->macs[i] = one;
        return 0;
    }
    if (held == one)
        return 0;
    PyObject *item = mac_bytes(one), *grown = NULL;
    int rc = -1;
    if (item == NULL)
        return -1;
    if (held & 1) {
        PyObject *was = mac_bytes(held);
        /* A frozenset no other code has seen yet may be filled with PySet_Add (the C API allows it). */
        if (was == NULL || (grown = PyFrozenSet_New(NULL)) == NULL || PySet_Add(grown, was) < 0
            || PySet_Add(grown, item) < 0) {
            Py_XDECREF(was);
            goto done;
        }
        Py_DECREF(was);
    } else {
        int has = PySet_Contains((PyObject *)held, item);
        if (has != 0) {
            rc = has < 0 ? -1 : 0;
            goto done;
        }
        if ((grown = PyFrozenSet_New((PyObject *)held)) == NULL || PySet_Add(grown, item) < 0)
            goto done;
    }
    PyObject *known = PyDict_GetItemWithError(shared, grown);     /* borrowed */
    if (known == NULL) {
        if (PyErr_Occurred())
            goto done;
        if (PyDict_GET_SIZE(shared) >= limit)
            PyDict_Clear(shared);
        if (PyDict_SetItem(shared, grown, grown) < 0)
            goto done;
        known = grown;
    }
    rc = macs_store(&f->macs[i], known);
done:
    Py_XDECREF(grown);
    Py_DECREF(item);
    return rc;
}

/* directions._fold: flow.count(side, pkts, octets), flow.last = max(flow.last, last). */
static void fold(FlowObject *f, Py_ssize_t side, int64_t pkts, int64_t octets, double last)
{
    if (side) {
        f->pkts_b += pkts;
        f->octets_b += octets;
    } else {
        f->pkts_a += pkts;
        f->octets_a += octets;
    }
    if (last > f->last)
        f->last = last;
}

typedef struct {
    Py_buffer keys, classes, rows, first, first_ts, last_ts, count, octets;
    Py_ssize_t width, n, next;           /* key words; rows to open; the next of them */
    int held;                            /* buffers to release */
    PyObject *owners;
} Part;

static void part_release(Part *p)
{
    if (p->held) {
        Py_buffer *views[] = {&p->keys, &p->classes, &p->rows, &p->first, &p->first_ts, &p->last_ts, &p->count,
                              &p->octets};
        for (size_t k = 0; k < sizeof views / sizeof *views; k++)
            PyBuffer_Release(views[k]);
        p->held = 0;
    }
    Py_CLEAR(p->owners);
}

/* A key's fields lie inside its header bytes (a damaged table must not read past them). */
static int fields_fit(const int64_t *f, Py_ssize_t bytes, Py_ssize_t kinds)
{
    int64_t size = f[F_SIZE];
    if (f[F_PROTO] < 0 || f[F_PROTO] + 1 > bytes || f[F_ADDR] < 0 || (size != 4 && size != 16)
        || f[F_ADDR] + 2 * size > bytes || f[F_PORTS] < 0 || f[F_PORTS] + 4 > bytes || f[F_SMAC] < 0
        || f[F_SMAC] + 6 > bytes || f[F_DMAC] < 0 || f[F_DMAC] + 6 > bytes || f[F_VLAN] < -1 || f[F_VLAN] + 2 > bytes)
        return 0;
    if (f[F_TUNNEL] >= 0)
        return f[F_TUNNEL] < kinds && f[F_OUTER] >= 0 && f[F_OUTER] + 8 <= bytes && f[F_IDENT] >= 0
               && f[F_IDSIZE] >= 1 && f[F_IDSIZE] <= 4 && f[F_IDENT] + f[F_IDSIZE] <= bytes;
    return 1;
}

/* model.flow_key(ifindex, vlan, -1, proto, a, ap, b, bp): the fields packed
 * big-endian (int32, int16, int16, uint8, uint16, uint16), then a and b. */
static PyObject *flow_key(long ifindex, int vlan, int proto, const uint8_t *a, int ap, const uint8_t *b, int bp,
                          Py_ssize_t size)
{
    PyObject *key = PyBytes_FromStringAndSize(NULL, KEY_HEAD + 2 * size);
    if (key == NULL)
        return NULL;
    uint8_t *k = (uint8_t *)PyBytes_AS_STRING(key);
    uint32_t ifx = (uint32_t)ifindex;
    uint16_t tag = (uint16_t)vlan, inner = (uint16_t)-1;
    k[0] = ifx >> 24, k[1] = ifx >> 16, k[2] = ifx >> 8, k[3] = ifx;
    k[4] = tag >> 8, k[5] = tag, k[6] = inner >> 8, k[7] = inner;
    k[8] = (uint8_t)proto;
    k[9] = ap >> 8, k[10] = ap, k[11] = bp >> 8, k[12] = bp;
    memcpy(k + KEY_HEAD, a, (size_t)size);
    memcpy(k + KEY_HEAD + size, b, (size_t)size);
    return key;
}

/* One new direction: add_directions' loop body. Returns the new owner (flow, side), or NULL.
 * A key no live flow holds gets a new flow here when the table has room (so
 * FlowTable.renew would neither end nor shed one); renew does the rest. */
typedef struct {
    PyObject *shared;                    /* model.MacSets' table */
    Py_ssize_t limit;
} Macs;

static PyObject *open_one(PyObject *flows, PyObject *created, PyObject *renew, double idle, PyObject *kinds,
                          PyTypeObject *type, Py_ssize_t capacity, const Macs *macs, const int64_t *f,
                          const uint8_t *h, uint64_t tag, double first_ts, double last_ts, int64_t count,
                          int64_t octets)
{
    long ifindex = (long)(tag >> 8);
    int vlan = f[F_VLAN] >= 0 ? (be16(h + f[F_VLAN]) & 0x0FFF) : -1, proto = h[f[F_PROTO]];
    Py_ssize_t size = (Py_ssize_t)f[F_SIZE];
    const uint8_t *src = h + f[F_ADDR], *dst = src + size;
    int sport = be16(h + f[F_PORTS]), dport = be16(h + f[F_PORTS] + 2);
    int order = memcmp(src, dst, (size_t)size);
    int side = !(order < 0 || (order == 0 && sport <= dport));
    PyObject *key = side ? flow_key(ifindex, vlan, proto, dst, dport, src, sport, size)
                         : flow_key(ifindex, vlan, proto, src, sport, dst, dport, size);
    if (key == NULL)
        return NULL;
    PyObject *flow = PyDict_GetItemWithError(flows, key), *result = NULL;
    FlowObject *held;
    Py_XINCREF(flow);
    if (flow == NULL && PyErr_Occurred())
        goto done;
    if (flow != NULL && as_flow(flow) == NULL)
        goto done;
    if (flow == NULL && PyDict_GET_SIZE(flows) < capacity && PyType_IsSubtype(type, Flow_Type)) {
        if ((flow = new_flow(type, key, first_ts, side)) == NULL || PyDict_SetItem(flows, key, flow) < 0
            || PyList_Append(created, flow) < 0)
            goto done;
    } else if (flow == NULL || first_ts - ((FlowObject *)flow)->last > idle) {
        PyObject *renewed = PyObject_CallFunction(renew, "OOid", flow ? flow : Py_None, key, side, first_ts);
        Py_XDECREF(flow);
        flow = renewed;
        if (flow == NULL || as_flow(flow) == NULL)
            goto done;
    }
    held = (FlowObject *)flow;
    fold(held, side, count, octets, last_ts);
    if (add_mac(held, side, h + f[F_SMAC], macs->shared, macs->limit) < 0
        || add_mac(held, 1 - side, h + f[F_DMAC], macs->shared, macs->limit) < 0)
        goto done;
    if (f[F_TUNNEL] >= 0) {
        unsigned long ident = 0;
        for (int64_t k = 0; k < f[F_IDSIZE]; k++)
            ident = (ident << 8) | h[f[F_IDENT] + k];
        const uint8_t *outer = h + f[F_OUTER];
        PyObject *kind = PyTuple_GET_ITEM(kinds, f[F_TUNNEL]), *tunnel = PyTuple_New(4);
        if (tunnel == NULL)
            goto done;
        Py_INCREF(kind);
        PyTuple_SET_ITEM(tunnel, 0, kind);
        PyTuple_SET_ITEM(tunnel, 1, PyBytes_FromStringAndSize((const char *)outer, 4));
        PyTuple_SET_ITEM(tunnel, 2, PyBytes_FromStringAndSize((const char *)outer + 4, 4));
        PyTuple_SET_ITEM(tunnel, 3, PyLong_FromUnsignedLong(ident));
        int made = PyTuple_GET_ITEM(tunnel, 1) && PyTuple_GET_ITEM(tunnel, 2) && PyTuple_GET_ITEM(tunnel, 3);
        if (made && (held->tunnels == NULL || held->tunnels == Py_None)) {   /* the flow's first: _carried's new set */
            Py_XSETREF(held->tunnels, PySet_New(NULL));
        }
        int rc = made && held->tunnels ? PySet_Add(held->tunnels, tunnel) : -1;
        Py_DECREF(tunnel);
        if (rc < 0)
            goto done;
    }
    PyObject *who = PyLong_FromLong(side);
    result = who ? PyTuple_Pack(2, flow, who) : NULL;
    Py_XDECREF(who);
done:
    Py_XDECREF(flow);
    Py_DECREF(key);
    return result;
}

static PyObject *open_directions(PyObject *self, PyObject *args)
{
    PyObject *flows, *created, *renew, *kinds, *part_list;
    PyTypeObject *type;
    Py_ssize_t capacity;
    double idle;
    Py_buffer fields;
    Macs macs;
    if (!PyArg_ParseTuple(args, "O!O!OdO!y*O!O!n(O!n)", &PyDict_Type, &flows, &PyList_Type, &created, &renew, &idle,
                          &PyTuple_Type, &kinds,
                          &fields, &PyList_Type, &part_list, &PyType_Type, &type, &capacity, &PyDict_Type, &macs.shared,
                          &macs.limit))
        return NULL;
    Py_ssize_t nparts = PyList_GET_SIZE(part_list), nclasses = fields.len / (8 * F_COLUMNS);
    Part *parts = PyMem_Calloc(nparts ? nparts : 1, sizeof(Part));
    PyObject *result = NULL;
    if (parts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < nparts; k++) {
        Part *p = &parts[k];
        if (!PyArg_ParseTuple(PyList_GET_ITEM(part_list, k), "y*ny*y*y*y*y*y*y*;a part", &p->keys, &p->width,
                              &p->classes, &p->rows, &p->first, &p->first_ts, &p->last_ts, &p->count, &p->octets))
            goto done;
        p->held = 1;
        Py_ssize_t groups = p->classes.len / 8;
        p->n = p->rows.len / 8;
        if (p->width < 2 || need(&p->keys, 8 * p->width * groups, "keys") || need(&p->first, 8 * groups, "first")
            || need(&p->first_ts, 8 * groups, "first times") || need(&p->last_ts, 8 * groups, "last times")
            || need(&p->count, 8 * groups, "counts") || need(&p->octets, 8 * groups, "octets"))
            goto done;
        const int64_t *rows = p->rows.buf;
        for (Py_ssize_t i = 0; i < p->n; i++)
            if (rows[i] < 0 || rows[i] >= groups) {
                PyErr_SetString(PyExc_IndexError, "open_directions: row out of range");
                goto done;
            }
        if ((p->owners = PyList_New(0)) == NULL)
            goto done;
    }
    for (;;) {                          /* the parts' rows merged by first frame: arrival order */
        Part *p = NULL;
        int64_t best = 0;
        for (Py_ssize_t k = 0; k < nparts; k++) {
            Part *q = &parts[k];
            if (q->next < q->n) {
                int64_t first = ((const int64_t *)q->first.buf)[((const int64_t *)q->rows.buf)[q->next]];
                if (p == NULL || first < best)
                    p = q, best = first;
            }
        }
        if (p == NULL)
            break;
        int64_t row = ((const int64_t *)p->rows.buf)[p->next++];
        int64_t cls = ((const int64_t *)p->classes.buf)[row];
        const uint64_t *key = (const uint64_t *)p->keys.buf + row * p->width;
        if (cls < 0 || cls >= nclasses
            || !fields_fit((const int64_t *)fields.buf + cls * F_COLUMNS, 8 * (p->width - 1), PyTuple_GET_SIZE(kinds))) {
            PyErr_Format(PyExc_ValueError, "open_directions: class %lld has no fields inside its key", (long long)cls);
            goto done;
        }
        const int64_t *f = (const int64_t *)fields.buf + cls * F_COLUMNS;
        /* header bytes first (as split stored them), the class/interface word last */
        PyObject *owner = open_one(flows, created, renew, idle, kinds, type, capacity, &macs, f, (const uint8_t *)key,
                                   key[p->width - 1],
                                   ((const double *)p->first_ts.buf)[row], ((const double *)p->last_ts.buf)[row],
                                   ((const int64_t *)p->count.buf)[row], ((const int64_t *)p->octets.buf)[row]);
        if (owner == NULL)
            goto done;
        int rc = PyList_Append(p->owners, owner);
        Py_DECREF(owner);
        if (rc < 0)
            goto done;
    }
    if ((result = PyList_New(nparts)) == NULL)
        goto done;
    for (Py_ssize_t k = 0; k < nparts; k++) {
        PyList_SET_ITEM(result, k, parts[k].owners);
        parts[k].owners = NULL;
    }
done:
    if (parts != NULL) {
        for (Py_ssize_t k = 0; k < nparts; k++)
            part_release(&parts[k]);
        PyMem_Free(parts);
    }
    PyBuffer_Release(&fields);
    return result;
}

/* ---- entries for opened directions (directions.DirectionIndex.bind) ------- */

static PyObject *bind_entries(PyObject *self, PyObject *args)
{
    PyObject *owner, *free, *owners;
    Py_buffer chain_buf, sides_buf, group_buf, current_buf, flips_buf;
    int ordinal;
    Py_ssize_t fresh;
    if (!PyArg_ParseTuple(args, "w*inO!w*O!O!y*w*y*", &chain_buf, &ordinal, &fresh, &PyList_Type, &owner, &sides_buf,
                          &PyList_Type, &free, &PyList_Type, &owners, &group_buf, &current_buf, &flips_buf)) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(owners), groups = current_buf.len / 8;
    PyObject *result = NULL;
    int64_t *out = NULL;
    int8_t *sides = sides_buf.buf;
    int32_t *chain = chain_buf.buf;                /* handles fit 31 bits: DirectionIndex._grow stops short */
    const int64_t *group = group_buf.buf;
    const int8_t *flips = flips_buf.buf;
    int64_t *current = current_buf.buf;
    if (need(&group_buf, 8 * n, "group") || need(&flips_buf, n, "flips") || need(&sides_buf, PyList_GET_SIZE(owner), "sides")
        || need(&chain_buf, 4 * PyList_GET_SIZE(owner), "chain"))
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (group[i] < 0 || group[i] >= groups) {
            PyErr_SetString(PyExc_IndexError, "bind_entries: a row's hash group is out of range");
            goto done;
        }
    }
    if (PyList_GET_SIZE(free) + PyList_GET_SIZE(owner) - fresh < n) {
        PyErr_SetString(PyExc_ValueError, "bind_entries: fewer free entries than directions");
        goto done;
    }
    out = PyMem_Malloc(4 * 8 * (n ? n : 1));      /* picked, entries, again, again_rows */
    if (out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *picked = out, *entries = out + n, *again = out + 2 * n, *again_rows = out + 3 * n;
    Py_ssize_t npicked = 0, nagain = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *who = PyList_GET_ITEM(owners, i);
        if (!PyTuple_Check(who) || PyTuple_GET_SIZE(who) != 2) {
            PyErr_SetString(PyExc_TypeError, "bind_entries: an owner is not a (flow, side) pair");
            goto done;
        }
        PyObject *flow = PyTuple_GET_ITEM(who, 0);
        FlowObject *bound = as_flow(flow);
        long side = PyLong_AsLong(PyTuple_GET_ITEM(who, 1));
        if (bound == NULL || (side == -1 && PyErr_Occurred()) || (side != 0 && side != 1)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "bind_entries: a side is not 0 or 1");
            goto done;
        }
        if (bound->end)                            /* shed for capacity by a later add */
            continue;
        side ^= flips[i] != 0;                     /* the flow's side the entry's first direction counts */
        int64_t held = current[group[i]];         /* the entry holding this row's hash, or -1 */
        if (held >= 0) {
            PyObject *was = PyList_GetItem(owner, (Py_ssize_t)held);   /* borrowed; NULL: out of range */
            if (was == NULL)
                goto done;
            if (was == flow && sides[held] == side)   /* the same direction, quiet: its last time moves on */
                again[nagain] = held, again_rows[nagain++] = i;
            continue;                              /* another key with this hash: it stays on the slow path */
        }
        Py_ssize_t last = PyList_GET_SIZE(free) - 1;
        PyObject *handle;                          /* entry << 2 | ordinal (directions.DirectionIndex) */
        if (last >= 0) {
            handle = PyList_GET_ITEM(free, last);
            Py_INCREF(handle);
            if (PyList_SetSlice(free, last, last + 1, NULL) < 0) {
                Py_DECREF(handle);
                goto done;
            }
        } else if ((handle = PyLong_FromSsize_t(fresh++ << 2 | ordinal)) == NULL) {
            goto done;
        }
        long long held_handle = PyLong_AsLongLong(handle);
        Py_ssize_t entry = (Py_ssize_t)(held_handle >> 2);
        if (held_handle == -1 && PyErr_Occurred()) {
            Py_DECREF(handle);
            goto done;
        }
        if (held_handle < 0 || (held_handle & 3) != ordinal || entry >= PyList_GET_SIZE(owner)) {
            Py_DECREF(handle);
            PyErr_SetString(PyExc_IndexError, "bind_entries: a free entry is out of range");
            goto done;
        }
        current[group[i]] = entry;
        Py_INCREF(flow);
        if (PyList_SetItem(owner, entry, flow) < 0) {
            Py_DECREF(handle);
            goto done;
        }
        sides[entry] = (int8_t)side;
        /* flow.entries = handle, the flow's earlier handle (or -1) chained behind it */
        chain[entry] = bound->entries;
        bound->entries = (int32_t)held_handle;
        Py_DECREF(handle);
        picked[npicked] = i, entries[npicked++] = entry;
    }
    result = Py_BuildValue("y#y#y#y#n", (char *)picked, npicked * 8, (char *)entries, npicked * 8, (char *)again,
                           nagain * 8, (char *)again_rows, nagain * 8, fresh);
done:
    PyMem_Free(out);
    PyBuffer_Release(&chain_buf);
    PyBuffer_Release(&sides_buf);
    PyBuffer_Release(&group_buf);
    PyBuffer_Release(&current_buf);
    PyBuffer_Release(&flips_buf);
    return result;
}

/* ---- end of input (directions.DirectionIndex.settle_all) ----------------- */

static PyObject *insert_hashes(PyObject *self, PyObject *args)
{
    Py_buffer table, hashes, entries;
    int bits;
    if (!PyArg_ParseTuple(args, "w*iy*y*", &table, &bits, &hashes, &entries))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = hashes.len / 8, used = 0, pending = n;
    size_t slots = (size_t)1 << bits, mask = slots - 1;
    Py_ssize_t *rows = NULL;
    size_t *at = NULL;
    if (bits < 1 || bits > 62 || need(&table, 8 * (Py_ssize_t)slots, "table") || need(&entries, 8 * n, "entries"))
        goto done;
    const uint64_t *h = hashes.buf;
    int64_t *te = table.buf;
    const int64_t *e = entries.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (e[i] < 0 || e[i] > 0xFFFFFFFF) {
            PyErr_SetString(PyExc_IndexError, "insert_hashes: entry out of range");
            goto done;
        }
    rows = PyMem_Malloc(sizeof *rows * (n ? n : 1));
    at = PyMem_Malloc(sizeof *at * (n ? n : 1));
    if (rows == NULL || at == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        rows[i] = i;
        at[i] = (size_t)((h[i] * FIB) >> (64 - bits));
    }
    for (size_t round = 0; pending; round++) {   /* rows[] and at[] keep the rows not placed, in order */
        if (round == slots) {                   /* every slot tried: the table is full */
            PyErr_SetString(PyExc_ValueError, "insert_hashes: more hashes than open slots");
            goto done;
        }
        Py_ssize_t left = 0;
        for (Py_ssize_t k = 0; k < pending; k++) {
            Py_ssize_t i = rows[k];
            size_t s = at[k];
            if (te[s] < 0) {
                used += te[s] == -1;
                te[s] = (int64_t)(h[i] >> 33) << 32 | e[i];
            } else {
                rows[left] = i;
                at[left++] = (s + 1) & mask;
            }
        }
        pending = left;
    }
    result = PyLong_FromSsize_t(used);
done:
    PyMem_Free(rows);
    PyMem_Free(at);
    PyBuffer_Release(&table);
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&entries);
    return result;
}

static PyObject *settle_entries(PyObject *self, PyObject *args)
{
    PyObject *owner;
    Py_buffer live, sides, pkts, octets, last;
    if (!PyArg_ParseTuple(args, "O!y*y*y*y*y*", &PyList_Type, &owner, &live, &sides, &pkts, &octets, &last))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = live.len / 8, entries = PyList_GET_SIZE(owner);
    if (need(&sides, entries, "sides") || need(&pkts, 16 * entries, "packets") || need(&octets, 16 * entries, "octets")
        || need(&last, 8 * entries, "last"))
        goto done;
    const int64_t *e = live.buf, *p = pkts.buf, *o = octets.buf;
    const double *l = last.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t entry = e[i];
        if (entry < 0 || entry >= entries) {
            PyErr_SetString(PyExc_IndexError, "settle_entries: entry out of range");
            goto done;
        }
        PyObject *flow = PyList_GET_ITEM(owner, entry);
        if (flow == Py_None) {
            PyErr_SetString(PyExc_TypeError, "settle_entries: a live entry has no owner");
            goto done;
        }
        FlowObject *held = as_flow(flow);
        if (held == NULL)
            goto done;
        int8_t side = ((const int8_t *)sides.buf)[entry];       /* of the entry's first direction; its mirror the other */
        fold(held, side, p[2 * entry], o[2 * entry], l[entry]);
        fold(held, !side, p[2 * entry + 1], o[2 * entry + 1], l[entry]);
        held->entries = -1;
        Py_INCREF(Py_None);
        PyList_SetItem(owner, entry, Py_None);     /* releases the owner's reference */
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&live);
    PyBuffer_Release(&sides);
    PyBuffer_Release(&pkts);
    PyBuffer_Release(&octets);
    PyBuffer_Release(&last);
    return result;
}

static PyMethodDef methods[] = {
    {"pcap_records", pcap_records, METH_VARARGS, "Walk the whole pcap records of a buffer (see the module source)."},
    {"split", split, METH_VARARGS, "Classify and group a chunk's frames as split.split does (see the module source)."},
    {"entry_keys", entry_keys, METH_VARARGS, "The keys the direction index holds groups by (see the module source)."},
    {"account", account, METH_VARARGS, "Add groups of known directions to their counters (see the module source)."},
    {"open_directions", open_directions, METH_VARARGS, "Open new directions in the flow table (see the module source)."},
    {"bind_entries", bind_entries, METH_VARARGS, "Give opened directions their index entries (see the module source)."},
    {"insert_hashes", insert_hashes, METH_VARARGS, "Place absent hashes in the direction table (see the module source)."},
    {"settle_entries", settle_entries, METH_VARARGS, "Fold live entries into their flows (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastpath", "The per-frame passes in C.", -1, methods};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    PyObject *mod = PyModule_Create(&module), *names = PyTuple_New(FLOW_FIELDS);
    if (mod == NULL || names == NULL)
        goto fail;
    for (int k = 0; k < FLOW_FIELDS; k++) {
        PyObject *name = PyUnicode_InternFromString(FLOW_SLOTS[k]);
        if (name == NULL)
            goto fail;
        PyTuple_SET_ITEM(names, k, name);
    }
    if (Flow_Type == NULL && (Flow_Type = (PyTypeObject *)PyType_FromSpec(&flow_spec)) == NULL)
        goto fail;
    if (no_macs == NULL && (no_macs = PyFrozenSet_New(NULL)) == NULL)
        goto fail;
    if (end_names == NULL && (end_names = PyList_New(0)) == NULL)
        goto fail;
#ifndef SOURCE_SHA256
#define SOURCE_SHA256 "unknown"          /* built without setup.py */
#endif
    Py_INCREF(Flow_Type);
    Py_INCREF(no_macs);
    if (PyModule_AddObject(mod, "Flow", (PyObject *)Flow_Type) < 0) {     /* steals on success only */
        Py_DECREF(Flow_Type);
        Py_DECREF(no_macs);
        goto fail;
    }
    if (PyModule_AddObject(mod, "NO_MACS", no_macs) < 0) {
        Py_DECREF(no_macs);
        goto fail;
    }
    if (PyModule_AddObject(mod, "FLOW_SLOTS", names) < 0)
        goto fail;
    names = NULL;
    if (PyModule_AddStringConstant(mod, "SOURCE_SHA256", SOURCE_SHA256) == 0)
        return mod;
fail:
    Py_XDECREF(names);
    Py_XDECREF(mod);
    return NULL;
}
