"""The readable summary ``verifier audit`` prints on stdout."""


def render_summary(cert):
    s = cert["summary"]
    site = cert.get("site") or {}
    period = cert.get("period") or {}
    lines = [f"result: {cert['result']}" + (f"  site: {site['name']}" if site.get("name") else "")
             + (f"  period: {period['start']} to {period['end']}" if period.get("start") else ""),
             f"clean-path audit  {cert['generated_at']}  policy {cert['policy']['sha256'][:12]}",
             f"captures: {len(cert['captures'])}  packets: {s['packets']}  bytes: {s['bytes']}  flows: {s['flows']}"]
    if cert.get("signed_by"):
        lines.append(f"signed: Ed25519 key {cert['signed_by']['keyid']} (signature beside the JSON: .dsse; verifier verify checks it)")
    for cap in cert["captures"]:
        for err in cap["errors"]:
            lines.append(f"  capture error: {err}")
    if s["decode_errors"]:
        lines.append("decode errors: " + ", ".join(f"{k} {v}" for k, v in sorted(s["decode_errors"].items())))
    lines.append("")
    lines.append(f"{'zone':<20} {'status':<14} {'clean':>8} {'violation':>10} {'unverified':>11} {'coverage':>9}")
    for z in cert["zones"]:
        cov = z["coverage"]["flows"]
        lines.append(f"{z['name']:<20} {z['status']:<14} {z['flows']['CLEAN']:>8} {z['flows']['VIOLATION']:>10} "
                     f"{z['flows']['UNVERIFIED']:>11} {'-' if cov is None else f'{cov:.1%}':>9}")
    if s["violations"]:
        lines.append("")
        lines.append(f"violations: {s['violations']} flow(s)")
        for v in cert["violations"][:10]:
            why = v["reasons"][0]["text"] if v["reasons"] else ""
            lines.append(f"  [{v['zone'] or 'any'}/{v['rule']}] {v['proto']} {v['src']}:{v['sport']} -> "
                         f"{v['dst']}:{v['dport']}  {why}")
        if s["violations"] > 10:
            lines.append(f"  ... {s['violations'] - 10} more in the JSON/HTML report")
    for e in cert["expired_exceptions"]:
        lines.append(f"expired exception (no longer applied): rule {e['rule']}, expired {e['expires']}: {e['reason']}")
    return "\n".join(lines)
