"""Rotated capture files (dumpcap ``-b``, tcpdump ``-G``/``-C``), each once.

A file is read when it is closed: when a newer capture file exists in the
directory (the writer has moved on), or when it has not changed for
``settle`` seconds and no process on this host holds it open (checked
through /proc; a writer in another container is invisible, hence the
settle time). Files are taken oldest first (modification time, then the
name with its numbers compared as numbers, so ``cap9`` precedes ``cap10``).

Exactly once across restarts: after the pipeline has taken a file's last
chunk, its identity (name, size, inode, mtime) is written to the state file
(temp file, fsync, rename). On start, recorded files are skipped; entries
for files that rotation has deleted are dropped. Timestamps stay those of
the capture; ``now()`` advances the capture clock with wall time since the
last packet, so idle flows still time out while the directory is quiet.
"""

import json
import os
import re
import time

import numpy as np

from ..errors import CaptureError
from .files import Interface, open_capture

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".dmp")
_NUMBERS = re.compile(r"(\d+)")


class WatchDir:
    def __init__(self, directory, state_path, settle=10.0, poll_interval=0.5, clock=time.time):
        if not os.path.isdir(directory):
            raise CaptureError(f"--watch-dir {directory}: not a directory")
        self.directory = directory
        self.state_path = state_path
        self.settle = settle
        self.poll_interval = poll_interval
        self.clock = clock
        self.interfaces = []             # shared by every file: (name, linktype) -> index
        self._iface_index = {}
        self.done = self._load_state()
        self.errors = []                 # (file, message)
        self.closed = False
        self._last_ts = None
        self._last_wall = clock()

    # --- state ----------------------------------------------------------

    def _load_state(self):
        try:
            with open(self.state_path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CaptureError(f"watch state {self.state_path}: {exc}") from None
        if doc.get("directory") != os.path.abspath(self.directory):
            return {}
        return {name: tuple(ident) for name, ident in doc.get("files", {}).items()}

    def _save_state(self):
        present = set(os.listdir(self.directory))
        self.done = {n: v for n, v in self.done.items() if n in present}
        doc = {"directory": os.path.abspath(self.directory), "files": self.done}
        tmp = self.state_path + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(self.state_path)), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    # --- scanning -------------------------------------------------------

    def _candidates(self):
        """(name, stat) of capture files not yet read, oldest first."""
        out = []
        for name in os.listdir(self.directory):
            if name.startswith(".") or not name.lower().endswith(CAPTURE_SUFFIXES):
                continue
            try:
                st = os.stat(os.path.join(self.directory, name))
            except FileNotFoundError:
                continue
            out.append((st.st_mtime_ns, _natural(name), name, st))
        out.sort()
        return [(name, st) for _m, _k, name, st in out]

    def ready(self):
        """Files to read now, in order."""
        files = self._candidates()
        out = []
        now = self.clock()
        for i, (name, st) in enumerate(files):
            if _identity(st) == self.done.get(name):
                continue
            newer = i + 1 < len(files)
            if newer or (now - st.st_mtime >= self.settle and not _open_elsewhere(os.path.join(self.directory, name))):
                out.append(name)
            else:
                break                                    # keep order: never skip ahead of an open file
        return out

    def chunks(self):
        while not self.closed:
            names = self.ready()
            if not names:
                yield None
                if not self.closed:
                    time.sleep(self.poll_interval)
                continue
            for name in names:
                if self.closed:
                    return
                yield from self._read(name)
                if self.closed:
                    return           # stopped mid-file: not recorded, read again after a restart

    def _read(self, name):
        path = os.path.join(self.directory, name)
        try:
            st = os.stat(path)
            capture = open_capture(path)
        except (OSError, CaptureError) as exc:
            self.errors.append((name, str(exc)))
            self.done[name] = (0, 0, 0)                  # unreadable: do not retry forever
            self._save_state()
            return
        remap = []
        for chunk in capture.chunks():
            if len(chunk):
                # File interface indexes -> the watcher's (interfaces may be declared mid-file).
                remap.extend(self._index(i) for i in capture.interfaces[len(remap):])
                chunk.ifx = np.asarray(remap, np.int64)[chunk.ifx]
                self._last_ts, self._last_wall = float(chunk.ts[-1]), self.clock()
                yield chunk
        for err in capture.errors:
            self.errors.append((name, err))
        self.done[name] = _identity(st)
        self._save_state()

    def _index(self, iface):
        key = (iface.name, iface.linktype)
        if key not in self._iface_index:
            self._iface_index[key] = len(self.interfaces)
            self.interfaces.append(Interface(iface.linktype, iface.name))
        return self._iface_index[key]

    def now(self):
        if self._last_ts is None:
            return float("-inf")
        return self._last_ts + (self.clock() - self._last_wall)

    def drops(self):
        return {}                  # files: nothing is dropped between the kernel and us

    def received(self):
        return {}

    def close(self):
        self.closed = True


def _identity(st):
    return (st.st_size, st.st_ino, st.st_mtime_ns)


def _natural(name):
    return [int(p) if p.isdigit() else p for p in _NUMBERS.split(name)]


def _open_elsewhere(path):
    """Does another process hold ``path`` open for writing? (/proc scan; False when not visible)."""
    me = str(os.getpid())
    try:
        target = os.path.realpath(path)
        pids = [p for p in os.listdir("/proc") if p.isdigit() and p != me]
    except OSError:
        return False
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    return True
            except OSError:
                continue
    return False
