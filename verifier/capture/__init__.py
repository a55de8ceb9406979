"""Where frames come from.

Every source offers ``interfaces`` (link type and name per index) and
``chunks()`` yielding ``Chunk`` batches (chunk.py); the pipeline does not care
whether frames come from a file, a socket or tshark. A source that receives
frames one at a time builds its chunks with ``chunk.from_frames``.
"""

import os

from .files import open_capture  # noqa: F401


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
