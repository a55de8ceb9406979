"""Certificate -> one self-contained HTML report (no scripts, fonts or links).

Rendered from the JSON certificate only, so the two can never disagree. It is
meant to be read and printed by the person certifying a site: the overall
result, site, audit period, policy and signing key first; then zone status,
the zone x vendor matrices (equipment crossed apart from the zones' own
devices), violations over time (inline SVG with axes), and every violating
flow with its path and the evidence behind each element. Print CSS keeps
headings with what follows them and cards whole (tests/test_report_pdf.py
prints it with headless Chromium and checks the pages).
"""

import datetime
import html

from ..text import epoch

STATUS_COLOUR = {"CERTIFIED": "#1b7f3b", "NOT_CERTIFIED": "#b3261e", "UNVERIFIED": "#9a6700", "NO_TRAFFIC": "#6b7280"}
RESULT_COLOUR = {"CERTIFIED": "#1b7f3b", "VIOLATION": "#b3261e", "UNVERIFIED": "#9a6700", "INCOMPLETE": "#6b7280"}
RESULT_TEXT = {
    "CERTIFIED": "Every zone with traffic took a clean path.",
    "VIOLATION": "Traffic of a protected zone crossed equipment or networks the policy does not allow.",
    "UNVERIFIED": "No violation, but traffic crossed elements that could not be attributed where the policy "
                  "requires attribution.",
    "INCOMPLETE": "A capture could not be read completely: the audit cannot certify what it did not see.",
}
TRUST_COLOUR = {"trusted": "#1b7f3b", "untrusted": "#b3261e", "unknown": "#9a6700", "unattributable": "#6b7280"}
MAX_FLOWS_SHOWN = 500

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;margin:2em auto;max-width:1100px;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#57606a}.cards{display:flex;flex-wrap:wrap;gap:.8em}
.result{border:2px solid;border-radius:8px;padding:.7em 1em;margin:1em 0}.result b{font-size:1.5em}
.card{border:1px solid #d0d7de;border-left:6px solid;border-radius:6px;padding:.6em .9em;min-width:14em}
.status{font-weight:700}table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}.chain{display:flex;flex-wrap:wrap;align-items:center;gap:.3em}
.el{border:1px solid;border-radius:4px;padding:.15em .45em;font-size:.9em}.arrow{color:#57606a}
.flow{border:1px solid #d0d7de;border-radius:6px;padding:.6em .8em;margin:.8em 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}.small{font-size:.85em;color:#57606a}
.hash{word-break:break-all}dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.5em 0}
dt{color:#57606a}dd{margin:0}
h1,h2,h3{break-after:avoid;page-break-after:avoid}
.card,.flow,.result,tr,svg,dl{break-inside:avoid;page-break-inside:avoid}
@media print{body{margin:0;max-width:none;font-size:12px}@page{margin:15mm}}
"""


def _e(value):
    return html.escape("" if value is None else str(value))


def _n(count, word, plural=None):
    """'1 packet', '7 packets' (``plural`` when not word + s)."""
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def render(cert):
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>Clean-path audit {_e(cert['generated_at'])}</title><style>{CSS}</style></head><body>"]
    parts.append(_header(cert))
    parts.append(_zones(cert))
    parts.append(_matrix(cert))
    parts.append(_timeline(cert))
    parts.append(_violations(cert))
    parts.append(_devices(cert))
    parts.append(_inputs(cert))
    parts.append("</body></html>\n")
    return "".join(parts)


def _header(cert):
    """The result first, then who, when and by which rules: what a reader certifying a site needs on page one."""
    s = cert["summary"]
    result = cert.get("result") or "-"
    colour = RESULT_COLOUR.get(result, "#6b7280")
    site = cert.get("site") or {}
    period = cert.get("period") or {}
    title = "Clean-path audit certificate" + (f": {_e(site['name'])}" if site.get("name") else "")
    rows = []
    if site:
        rows.append(("site", _e(site.get("name"))))
        for key in ("operator", "location", "contact"):
            if site.get(key):
                rows.append((key, _e(site[key])))
    rows.append(("audit period", f"{_e(period.get('start') or '-')} to {_e(period.get('end') or '-')} (UTC)"))
    rows.append(("traffic", f"{_n(s['packets'], 'packet')}, {_n(s['bytes'], 'byte')}, {_n(s['flows'], 'flow')} in "
                            f"{_n(len(cert['captures']), 'capture file')}"))
    rows.append(("policy", f"{_e(', '.join(cert['policy']['files']))}<br>sha256 "
                           f"<code class='hash'>{_e(cert['policy']['sha256'])}</code>"))
    signed = cert.get("signed_by")
    rows.append(("signature", f"Ed25519 key <code class='hash'>{_e(signed['keyid'])}</code> (sha256 of the public "
                              "key; the signed statement is the JSON certificate's <code>.dsse</code> file)"
                 if signed else "not signed"))
    rows.append(("generated", f"{_e(cert['generated_at'])} by clean-path verifier {_e(cert['tool_version'])}"))
    return (f"<h1>{title}</h1><div class='result' style='border-color:{colour}'><b style='color:{colour}'>"
            f"{_e(result)}</b><br>{_e(RESULT_TEXT.get(result, ''))} {_n(s['violations'], 'violating flow')}.</div>"
            "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>")


def _zones(cert):
    out = ["<h2>Zones</h2><div class='cards'>"]
    for z in cert["zones"]:
        colour = STATUS_COLOUR.get(z["status"], "#6b7280")
        cov = z["coverage"]["flows"]
        out.append(f"<div class='card' style='border-left-color:{colour}'><div><b>{_e(z['name'])}</b></div>"
                   f"<div class='status' style='color:{colour}'>{_e(z['status'].replace('_', ' '))}</div>"
                   f"<div class='small'>{_n(z['flows']['CLEAN'], 'clean flow')} &middot; "
                   f"{_n(z['flows']['VIOLATION'], 'violating flow')} &middot; "
                   f"{_n(z['flows']['UNVERIFIED'], 'unverified flow')}<br>coverage "
                   f"{'-' if cov is None else f'{cov:.1%}'} of flows fully attributed</div></div>")
    out.append("</div>")
    return "".join(out)


def _matrix(cert):
    """Two tables: the equipment the zones' traffic crossed, and the zones'
    own devices (endpoint-device), which the traffic did not cross."""
    out = ["<h2>Zone &times; vendor</h2>"]
    for key, caption in (("vendors", "Equipment crossed: flows of each zone whose path included equipment of each "
                                     "vendor (neighbours, segment devices, tunnel endpoints, routers)."),
                         ("endpoint_vendors", "The zone's own devices: flows of each zone by the vendor of the "
                                              "zone-side host (endpoint-device), which the traffic did not cross.")):
        vendors = sorted({v for z in cert["zones"] for v in z.get(key, {})})
        if not vendors:
            continue
        out.append(f"<p class='small'>{caption}</p><table><tr><th>zone</th>")
        out.extend(f"<th>{_e(v)}</th>" for v in vendors)
        out.append("</tr>")
        for z in cert["zones"]:
            out.append(f"<tr><th>{_e(z['name'])}</th>")
            out.extend(f"<td class='n'>{z.get(key, {}).get(v, '') or ''}</td>" for v in vendors)
            out.append("</tr>")
        out.append("</table>")
    if len(out) == 1:
        out.append("<p>No equipment seen in any zone.</p>")
    return "".join(out)


def _timeline(cert):
    """Violating flows by first-seen time: an SVG bar chart with a count axis
    and time labels (UTC)."""
    times = sorted(epoch(v["first_ts"]) for v in cert["violations"] if v["first_ts"])
    out = ["<h2>Violations over time</h2>"]
    if not times:
        return out[0] + "<p>No violations.</p>"
    lo, hi = times[0], times[-1]
    buckets = 48 if hi > lo else 1
    span = max(hi - lo, 1e-9)
    counts = [0] * buckets
    for t in times:
        counts[min(buckets - 1, int((t - lo) / span * buckets))] += 1
    top = max(counts)
    left, width, height, base = 40, 960, 170, 130           # plot area: x from left to width, y from 10 to base
    bar = (width - left) / buckets
    parts = [f"<line x1='{left}' y1='10' x2='{left}' y2='{base}' stroke='#57606a'/>",
             f"<line x1='{left}' y1='{base}' x2='{width}' y2='{base}' stroke='#57606a'/>",
             f"<text x='{left - 6}' y='{base}' font-size='11' text-anchor='end' fill='#57606a'>0</text>",
             f"<text x='{left - 6}' y='18' font-size='11' text-anchor='end' fill='#57606a'>{top}</text>",
             f"<text x='12' y='{(base + 10) / 2:.0f}' font-size='11' fill='#57606a' "
             f"transform='rotate(-90 12 {(base + 10) / 2:.0f})' text-anchor='middle'>flows</text>"]
    for i, c in enumerate(counts):
        if c:
            h = c / top * (base - 10)
            parts.append(f"<rect x='{left + i * bar + 1:.1f}' y='{base - h:.1f}' width='{max(bar - 2, 1):.1f}' "
                         f"height='{h:.1f}' fill='#b3261e'><title>{_n(c, 'flow')}</title></rect>")
    ticks = 5 if hi > lo else 1
    for k in range(ticks):
        t = lo + (hi - lo) * k / max(ticks - 1, 1)
        x = left + (width - left) * (k / max(ticks - 1, 1) if ticks > 1 else 0.5)
        anchor = "start" if k == 0 and ticks > 1 else "end" if k == ticks - 1 and ticks > 1 else "middle"
        parts.append(f"<line x1='{x:.1f}' y1='{base}' x2='{x:.1f}' y2='{base + 4}' stroke='#57606a'/>"
                     f"<text x='{x:.1f}' y='{base + 16}' font-size='11' text-anchor='{anchor}' fill='#57606a'>"
                     f"{_fmt(t, date=k == 0 or _day(t) != _day(lo))}</text>")
    each = (hi - lo) / buckets
    note = (f"{_n(len(times), 'violating flow')} first seen between {_fmt(lo)} and {_fmt(hi)} UTC; "
            + (f"each bar is {_duration(each)}, " if buckets > 1 else "all at one instant, ")
            + ("every bar is one flow" if top == 1 else f"the tallest bar is {_n(top, 'flow')}") + ".")
    out.append(f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='100%' role='img' "
               f"aria-label='violating flows over time'>{''.join(parts)}</svg><p class='small'>{note}</p>")
    return "".join(out)


def _violations(cert):
    out = ["<h2>Violating flows</h2>"]
    shown = cert["violations"][:MAX_FLOWS_SHOWN]
    if not shown:
        return out[0] + "<p>None.</p>"
    if cert["summary"]["violations"] > len(shown):
        out.append(f"<p class='small'>Showing {len(shown)} of {cert['summary']['violations']} violating flows; "
                   f"the JSON certificate lists up to {cert['summary']['violations_listed']}.</p>")
    for v in shown:
        out.append(f"<div class='flow'><b>{_e(v['zone'] or 'any zone')}</b> &middot; rule <b>{_e(', '.join(v['rules']))}</b>"
                   f"<br><code>{_e(v['proto'])} {_e(v['src'])}:{v['sport']} &rarr; {_e(v['dst'])}:{v['dport']}</code>"
                   f" &middot; {_n(v['packets'], 'packet')}, {_n(v['bytes'], 'byte')} &middot; {_e(v['first_ts'])} &ndash; "
                   f"{_e(v['last_ts'])}<br><span class='small'>Community ID <code>{_e(v['community_id'])}</code>"
                   + (f" &middot; evidence <code>{_e(v['evidence']['file'])}</code> "
                      f"({_n(v['evidence']['packets'], 'packet')}, sha256 "
                      f"<code class='hash'>{_e(v['evidence']['sha256'])}</code>)" if v.get("evidence") else "")
                   + "</span>"
                   "<div class='chain'>")
        for i, el in enumerate(v["path"]):
            colour = TRUST_COLOUR.get(el["trust"], "#6b7280")
            if i:
                out.append("<span class='arrow'>&rarr;</span>")
            name = el["vendor"] or el["organization"] or (f"AS{el['asn']}" if el.get("asn") is not None else
                                                           el["trust"])      # a carrier: its AS
            out.append(f"<span class='el' style='border-color:{colour};color:{colour}'>{_e(el['kind'])}: "
                       f"{_e(name)}</span>")
        out.append("</div><table><tr><th>element</th><th>subject</th><th>vendor / organization</th><th>trust</th>"
                   "<th>evidence</th></tr>")
        for el in v["path"]:
            ev = el["evidence"] or {}
            evtext = ", ".join(f"{k} {val}" for k, val in ev.items() if val not in (None, ""))
            org = el["organization"] or ""
            if el.get("asn") is not None:
                org = f"AS{el['asn']} {org}"
            out.append(f"<tr><td>{_e(el['kind'])}</td><td><code>{_e(el['subject'])}</code></td>"
                       f"<td>{_e(el['vendor'] or '-')}<br><span class='small'>{_e(org)}</span></td>"
                       f"<td style='color:{TRUST_COLOUR.get(el['trust'], '#000')}'>{_e(el['trust'])}</td>"
                       f"<td class='small'>{_e(evtext)}</td></tr>")
        out.append("</table><ul class='small'>")
        out.extend(f"<li>{_e(r['rule'])}: {_e(r['text'])}</li>" for r in v["reasons"])
        out.append("</ul></div>")
    return "".join(out)


def _devices(cert):
    devices = cert.get("discovered_devices") or []
    if not devices:
        return ""
    out = ["<h2>Devices heard on the capture segments</h2><p class='small'>From LLDP, CDP and STP; each is a "
           "segment-device of the flows on its interface and VLAN while it was announced.</p><table><tr>"
           "<th>interface / VLAN</th><th>protocol</th><th>device</th><th>vendor</th><th>trust</th>"
           "<th>matched by</th><th>chassis / address</th><th>platform / description</th><th>seen</th></tr>"]
    for d in devices:
        colour = TRUST_COLOUR.get(d["trust"], "#000")
        where = f"{d['interface'] or '-'} / {d['vlan'] if d['vlan'] is not None else '-'}"
        ident = d["chassis_mac"] or ""
        if d["addresses"]:
            ident += (" " if ident else "") + ", ".join(d["addresses"])
        out.append(f"<tr><td>{_e(where)}</td><td>{_e(d['protocol'])}</td><td><code>{_e(d['name'] or d['id'])}</code>"
                   f"{'<br><span class=small>' + _e(d['role']) + '</span>' if d['role'] else ''}</td>"
                   f"<td>{_e(d['vendor'] or '-')}</td><td style='color:{colour}'>{_e(d['trust'])}</td>"
                   f"<td>{_e(d['matched_by'] or '-')}</td><td class='small'><code>{_e(ident)}</code></td>"
                   f"<td class='small'>{_e(d['platform'] or d['description'] or '')}</td>"
                   f"<td class='small'>{_e(d['first_seen'])}<br>{_e(d['last_seen'])}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _inputs(cert):
    out = ["<h2>Inputs</h2><table><tr><th>capture</th><th>packets</th><th>first / last</th><th>sha256</th>"
           "<th>errors</th></tr>"]
    for c in cert["captures"]:
        out.append(f"<tr><td><code>{_e(c['path'])}</code></td><td class='n'>{c['packets']}</td>"
                   f"<td class='small'>{_e(c['first_ts'])}<br>{_e(c['last_ts'])}</td>"
                   f"<td class='small'><code class='hash'>{_e(c['sha256'] or '')}</code></td>"
                   f"<td class='small'>{_e('; '.join(c['errors']))}</td></tr>")
    out.append("</table><table><tr><th>data source</th><th>path / database</th><th>version</th><th>build date</th></tr>")
    for d in cert["data"]:
        out.append(f"<tr><td>{_e(d['source'])}</td><td><code>{_e(d['path'])}</code></td><td>{_e(d['version'])}</td>"
                   f"<td>{_e(d['build_date'])}</td></tr>")
    out.append("</table>")
    if cert["expired_exceptions"]:
        out.append("<h2>Expired exceptions (no longer applied)</h2><ul>")
        out.extend(f"<li>rule {_e(e['rule'])}, expired {_e(e['expires'])}: {_e(e['reason'])}</li>"
                   for e in cert["expired_exceptions"])
        out.append("</ul>")
    if cert.get("exceptions_applied"):
        out.append("<h2>Exceptions applied</h2><ul>")
        out.extend(f"<li>rule {_e(e['rule'])} waived for {e['flows']} flow(s): {_e(e['reason'])}</li>"
                   for e in cert["exceptions_applied"])
        out.append("</ul>")
    return "".join(out)


def _fmt(ts, date=True):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def _day(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).date()


def _duration(seconds):
    if seconds >= 86400:
        return f"{seconds / 86400:.3g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"
