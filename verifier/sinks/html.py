"""Certificate -> one self-contained HTML report (no scripts, fonts or links).

Rendered from the JSON certificate only, so the two can never disagree. It is
meant to be read and printed by the person certifying a site: zone status
first, then the zone x vendor matrix, violations over time (inline SVG), and
every violating flow with its path and the evidence behind each element.
"""

import datetime
import html

STATUS_COLOUR = {"CERTIFIED": "#1b7f3b", "NOT_CERTIFIED": "#b3261e", "UNVERIFIED": "#9a6700", "NO_TRAFFIC": "#6b7280"}
TRUST_COLOUR = {"trusted": "#1b7f3b", "untrusted": "#b3261e", "unknown": "#9a6700", "unattributable": "#6b7280"}
MAX_FLOWS_SHOWN = 500

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;margin:2em auto;max-width:1100px;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#57606a}.cards{display:flex;flex-wrap:wrap;gap:.8em}
.card{border:1px solid #d0d7de;border-left:6px solid;border-radius:6px;padding:.6em .9em;min-width:14em}
.status{font-weight:700}table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}.chain{display:flex;flex-wrap:wrap;align-items:center;gap:.3em}
.el{border:1px solid;border-radius:4px;padding:.15em .45em;font-size:.9em}.arrow{color:#57606a}
.flow{border:1px solid #d0d7de;border-radius:6px;padding:.6em .8em;margin:.8em 0;page-break-inside:avoid}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}.small{font-size:.85em;color:#57606a}
@media print{body{margin:0;max-width:none}.flow{break-inside:avoid}}
"""


def _e(value):
    return html.escape("" if value is None else str(value))


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
    s = cert["summary"]
    return (f"<h1>Clean-path audit certificate</h1><p class='meta'>Generated {_e(cert['generated_at'])} by "
            f"clean-path verifier {_e(cert['tool_version'])} &middot; policy sha256 "
            f"<code>{_e(cert['policy']['sha256'][:16])}</code> ({_e(', '.join(cert['policy']['files']))})<br>"
            f"{s['packets']:,} packets, {s['bytes']:,} bytes, {s['flows']:,} flows in "
            f"{len(cert['captures'])} capture file(s); {s['violations']:,} violating flow(s).</p>")


def _zones(cert):
    out = ["<h2>Zones</h2><div class='cards'>"]
    for z in cert["zones"]:
        colour = STATUS_COLOUR.get(z["status"], "#6b7280")
        cov = z["coverage"]["flows"]
        out.append(f"<div class='card' style='border-left-color:{colour}'><div><b>{_e(z['name'])}</b></div>"
                   f"<div class='status' style='color:{colour}'>{_e(z['status'].replace('_', ' '))}</div>"
                   f"<div class='small'>{z['flows']['CLEAN']} clean &middot; {z['flows']['VIOLATION']} violation "
                   f"&middot; {z['flows']['UNVERIFIED']} unverified<br>coverage "
                   f"{'-' if cov is None else f'{cov:.1%}'} of flows</div></div>")
    out.append("</div>")
    return "".join(out)


def _matrix(cert):
    vendors = sorted({v for z in cert["zones"] for v in z["vendors"]})
    if not vendors:
        return "<h2>Zone &times; vendor</h2><p>No equipment seen in any zone.</p>"
    out = ["<h2>Zone &times; vendor</h2><p class='small'>Flows of each zone that crossed equipment of each vendor "
           "(any path element).</p><table><tr><th>zone</th>"]
    out.extend(f"<th>{_e(v)}</th>" for v in vendors)
    out.append("</tr>")
    for z in cert["zones"]:
        out.append(f"<tr><th>{_e(z['name'])}</th>")
        out.extend(f"<td class='n'>{z['vendors'].get(v, '') or ''}</td>" for v in vendors)
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _timeline(cert):
    times = [_parse(v["first_ts"]) for v in cert["violations"] if v["first_ts"]]
    out = ["<h2>Violations over time</h2>"]
    if not times:
        return out[0] + "<p>No violations.</p>"
    lo, hi = min(times), max(times)
    buckets = 48
    span = max(hi - lo, 1e-9)
    counts = [0] * buckets
    for t in times:
        counts[min(buckets - 1, int((t - lo) / span * buckets))] += 1
    top = max(counts)
    width, height, bar = 960, 140, 960 / buckets
    rects = "".join(f"<rect x='{i * bar:.1f}' y='{height - 20 - c / top * (height - 30):.1f}' width='{bar - 2:.1f}' "
                    f"height='{c / top * (height - 30):.1f}' fill='#b3261e'><title>{c}</title></rect>"
                    for i, c in enumerate(counts) if c)
    label = f"{_fmt(lo)} &ndash; {_fmt(hi)} (UTC), {len(times)} flow(s), busiest bucket {top}"
    out.append(f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='100%' role='img' "
               f"aria-label='violations over time'><line x1='0' y1='{height - 20}' x2='{width}' y2='{height - 20}' "
               f"stroke='#57606a'/>{rects}<text x='0' y='{height - 4}' font-size='12' fill='#57606a'>{label}</text></svg>")
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
                   f" &middot; {v['packets']} packets, {v['bytes']} bytes &middot; {_e(v['first_ts'])} &ndash; "
                   f"{_e(v['last_ts'])}<br><span class='small'>Community ID <code>{_e(v['community_id'])}</code></span>"
                   "<div class='chain'>")
        for i, el in enumerate(v["path"]):
            colour = TRUST_COLOUR.get(el["trust"], "#6b7280")
            if i:
                out.append("<span class='arrow'>&rarr;</span>")
            out.append(f"<span class='el' style='border-color:{colour};color:{colour}'>{_e(el['kind'])}: "
                       f"{_e(el['vendor'] or el['organization'] or el['trust'])}</span>")
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
                   f"<td class='small'><code>{_e((c['sha256'] or '')[:16])}</code></td>"
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


def _parse(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _fmt(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
