"""Where frames come from.

Every source is a ``FrameSource``: ``interfaces`` (link type and name per
index) and ``chunks()`` yielding ``Chunk`` batches (chunk.py); the pipeline
does not care whether frames come from a file, a socket or tshark. A source
that receives frames one at a time builds its chunks with
``chunk.from_frames``. The daemon's one source is a ``DaemonSource``: also
its clock and the kernel's counters (the flow-export listeners,
export/listen.py, are one too: their chunks are batches of flow records) (tests/test_capture.py holds every
daemon source class to it).
"""

import os
from typing import Iterator, Protocol, runtime_checkable

from .chunk import Chunk

from .files import open_capture  # noqa: F401


@runtime_checkable
class FrameSource(Protocol):
    interfaces: list                       # Interface(linktype, name) per index the chunks use

    def chunks(self) -> Iterator[Chunk]:
        """Batches of frames in arrival order (a daemon's source may yield
        None or an empty chunk when nothing came: the pipeline ticks)."""


@runtime_checkable
class DaemonSource(FrameSource, Protocol):
    def now(self) -> float:
        """The source's clock, on the packets' time scale (a replay's or a watched directory's)."""

    def drops(self) -> dict:
        """Interface name -> packets the kernel dropped before we read them."""

    def received(self) -> dict:
        """Interface name -> packets the kernel passed the capture filter."""

    def close(self):
        """Stop reading; ``chunks()`` ends."""


def expand_paths(paths):
    """Files named directly, plus the files of named directories (sorted)."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files))
        else:
            out.append(path)
    return out
