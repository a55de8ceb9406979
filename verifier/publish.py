"""Scheduled audits -> Prometheus: ``cleanpath_audit_*`` gauges.

Two ways out, both from one private registry built from the certificate:

- ``write_textfile(dir, ...)``: ``DIR/<name>.prom`` for node_exporter's
  textfile collector, written atomically (temp file in the same directory,
  fsync, rename, fsync of the directory) so the collector never reads half
  a file.
- ``push(url, ...)``: prometheus-client's ``push_to_gateway`` (PUT: the
  group holds exactly this run's series; a failed run POSTs instead).

``cleanpath_audit_last_success_timestamp_seconds`` is the time of the last
audit that read all its input (exit 0, 1 or 3); a failed run (exit 2)
publishes its own status but carries the previous success time forward
(read back from the previous textfile), so "no successful audit for a day"
is one alert.
"""

import os
import re
import time

from .atomic import write_atomic
from prometheus_client import (CollectorRegistry, Gauge, generate_latest, push_to_gateway,
                               pushadd_to_gateway)

from . import series as S
from .model import VERDICTS
from .sinks.report import CERTIFIED, NO_TRAFFIC, NOT_CERTIFIED, ZONE_UNVERIFIED

STATUSES = (CERTIFIED, NOT_CERTIFIED, ZONE_UNVERIFIED, NO_TRAFFIC)
SUCCESS_CODES = (0, 1, 3)
LAST_SUCCESS = S.AUDIT_LAST_SUCCESS.name


def audit_registry(cert, exit_code, duration, now=None, last_success=None):
    now = time.time() if now is None else now
    reg = CollectorRegistry(auto_describe=True)

    def gauge(series):
        return Gauge(series.name, series.help, list(series.labels), registry=reg)

    status, flows, octets = gauge(S.AUDIT_ZONE_STATUS), gauge(S.AUDIT_FLOWS), gauge(S.AUDIT_BYTES)
    coverage = gauge(S.AUDIT_COVERAGE)
    for zone in cert["zones"]:
        for st in STATUSES:
            status.labels(zone["name"], st).set(1 if zone["status"] == st else 0)
        for v in VERDICTS:
            flows.labels(zone["name"], v).set(zone["flows"][v])
            octets.labels(zone["name"], v).set(zone["bytes"][v])
        coverage.labels(zone["name"]).set(zone["coverage"]["flows"] or 0)
    summary = cert["summary"]
    gauge(S.AUDIT_VIOLATIONS).set(summary["violations"])
    gauge(S.AUDIT_PACKETS).set(summary["packets"])
    gauge(S.AUDIT_CAPTURE_ERRORS).set(sum(1 for c in cert["captures"] if c["errors"]))
    gauge(S.AUDIT_EXIT_CODE).set(exit_code)
    gauge(S.AUDIT_DURATION).set(duration)
    gauge(S.AUDIT_LAST_RUN).set(now)
    success = now if exit_code in SUCCESS_CODES else last_success
    if success is not None:
        gauge(S.AUDIT_LAST_SUCCESS).set(success)
    return reg


def write_textfile(directory, cert, exit_code, duration, name="cleanpath_audit", now=None):
    path = os.path.join(directory, name + ".prom")
    reg = audit_registry(cert, exit_code, duration, now, previous_success(path))
    write_atomic(path, generate_latest(reg))     # the collector never reads half a file
    return path


def push(url, cert, exit_code, duration, job="cleanpath_audit", grouping_key=None, now=None):
    reg = audit_registry(cert, exit_code, duration, now)
    # A failed run POSTs (replaces only the series it sends), so the gateway
    # keeps the previous last-success time; a successful run PUTs the group.
    send = push_to_gateway if exit_code in SUCCESS_CODES else pushadd_to_gateway
    send(url, job=job, registry=reg, grouping_key=grouping_key or {}, timeout=10)


def previous_success(path):
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return None
    match = re.search(r"^" + LAST_SUCCESS + r" (\S+)$", text, re.M)
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None
