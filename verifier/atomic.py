"""Output files that appear whole or not at all.

In:  a destination path; the caller writes through ``AtomicFile`` like an
     ordinary file object (text or binary).
Out: on ``commit()`` the destination holds exactly what was written (the
     data flushed and fsynced, then renamed into place, the directory
     fsynced); on ``discard()`` — or a process killed with ``kill -9`` at any
     moment — the destination is as it was before.

An auditor must never find half a certificate, nor a report beside a
certificate that was never written. Where the kernel offers ``O_TMPFILE``
(Linux), the data goes into an unnamed file in the destination's directory,
so nothing is left behind if the process dies; it is given a name only once
complete (``linkat`` through ``/proc/self/fd``) and renamed over the
destination. Elsewhere a hidden ``.NAME.PID.tmp`` beside it takes that role.
"""

import io
import os

O_TMPFILE = getattr(os, "O_TMPFILE", 0)          # 0: not Linux


class AtomicFile:
    def __init__(self, path, text=True):
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self._named = None
        fd = self._unnamed()
        if fd is None:
            self._named = self._temp_name()
            fd = os.open(self._named, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        raw = io.FileIO(fd, "w", closefd=True)
        buffered = io.BufferedWriter(raw, 1 << 20)
        self.file = io.TextIOWrapper(buffered, encoding="utf-8", newline="") if text else buffered
        self._fd = fd
        self._open = True

    def _temp_name(self):
        return os.path.join(self.directory, f".{os.path.basename(self.path)}.{os.getpid()}.tmp")

    def _unnamed(self):
        if not O_TMPFILE:
            return None
        try:
            return os.open(self.directory, O_TMPFILE | os.O_WRONLY, 0o666)
        except OSError:              # a file system without O_TMPFILE (some network and FUSE mounts)
            return None

    def write(self, data):
        return self.file.write(data)

    def commit(self):
        """Make the destination hold what was written."""
        self.file.flush()
        os.fsync(self._fd)
        if self._named is None:
            named = self._temp_name()
            try:
                os.unlink(named)
            except FileNotFoundError:
                pass
            # A directory descriptor makes CPython call linkat(2) with
            # AT_SYMLINK_FOLLOW (plain link(2) would link the /proc symlink).
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.link(f"/proc/self/fd/{self._fd}", os.path.basename(named), dst_dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
            self._named = named
        self.file.close()
        self._open = False
        os.replace(self._named, self.path)
        _sync_directory(self.directory)

    def discard(self):
        """Forget what was written; the destination is untouched."""
        if self._open:
            self.file.close()
            self._open = False
            if self._named is not None:
                try:
                    os.unlink(self._named)
                except FileNotFoundError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None and self._open:
            self.commit()
        else:
            self.discard()


def write_atomic(path, data):
    """``data`` (str or bytes) to ``path``, whole or not at all."""
    with AtomicFile(path, text=isinstance(data, str)) as out:
        out.write(data)


def _sync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
