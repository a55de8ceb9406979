"""What a collector learnt, kept across restarts: templates, sampling, boot times.

In:  a ``decode.Collector`` and a file in the data directory
     (``flow-export/state.json``).
Out: ``save`` writes it atomically (atomic.py: a crash leaves the old file);
     ``load`` gives a restarted daemon the templates it had, so the data
     sets of an exporter that sends its templates every few minutes decode
     at once instead of waiting (or being counted ``no_template``).

The file is JSON, one entry per (protocol, exporter address, domain): its
templates as the fields they list (IE, length, enterprise number; scope
fields negative, as decode.py keeps them), whether each is an options
template, and the exporter's sampling per sampler and boot time. A loaded
template is as fresh as the load (``TEMPLATE_LIFETIME`` runs from then);
an exporter that redefines a template replaces it as it would any other.
A file that does not read is set aside with a log line, never fatal.
"""

import ipaddress
import json
import os

from ..atomic import AtomicFile
from .decode import Template

VERSION = 1


def save(collector, path):
    entries = []
    for (address, domain, protocol), exporter in sorted(collector.exporters.items(), key=lambda kv: repr(kv[0])):
        if not exporter.templates and not exporter.sampling:
            continue
        entries.append({
            "protocol": protocol, "address": str(ipaddress.ip_address(address)), "domain": domain,
            "boot": exporter.boot,
            "sampling": [[sampler, n] for sampler, n in sorted(exporter.sampling.items(), key=repr)],
            "templates": [{"id": tid, "options": bool(t.options), "fields": [list(f) for f in t.fields]}
                          for tid, t in sorted(exporter.templates.items())]})
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with AtomicFile(path) as fh:
        json.dump({"version": VERSION, "exporters": entries}, fh, indent=1)
        fh.write("\n")


def load(collector, path, now):
    """Templates and sampling from ``path`` into ``collector``; returns how
    many templates, or raises ValueError/OSError (the caller logs it)."""
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"{path}: not a version {VERSION} flow-export state file")
    count = 0
    try:
        for entry in data["exporters"]:
            address = ipaddress.ip_address(entry["address"]).packed
            exporter = collector.exporter(address, entry["domain"], entry["protocol"])
            exporter.boot = entry["boot"]
            exporter.sampling.update({sampler: int(n) for sampler, n in entry["sampling"]})
            for t in entry["templates"]:
                fields = [(int(ie), int(length), int(pen)) for ie, length, pen in t["fields"]]
                exporter.templates[int(t["id"])] = Template(fields, bool(t["options"]), now)
                count += 1
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {type(exc).__name__}: {exc}") from None
    return count
