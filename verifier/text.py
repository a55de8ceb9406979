"""Hot records hold bytes and numbers; these make their text, for sinks,
reports and messages (STYLE: strings are made in sinks). One place, so the
certificate, the CSV, the events and the HTML spell an address or a time
the same way.
"""

import datetime
import socket


def mac_text(mac):
    """b"\\x00\\x00\\x0c..." -> "00:00:0c:...": lower-case, colon-separated."""
    return mac.hex(":")


def ip_text(addr):
    """4 or 16 address bytes -> the address's text (IPv6 in RFC 5952 form)."""
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def iso_time(ts):
    """Epoch seconds -> ISO 8601 UTC with a Z ("2026-06-01T00:00:00.250000Z"),
    None for None; a corrupt or far-future timestamp keeps its raw value
    ("@1e+20")."""
    if ts is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return f"@{ts:.6f}"


def epoch(text):
    """``iso_time``'s text back to epoch seconds."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
