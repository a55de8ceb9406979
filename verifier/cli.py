"""Command line (click). Thin: builds the app objects, maps errors to exit codes.

Exit codes of ``audit``: 0 every zone with traffic certified, 1 a violation,
3 unverified traffic in a zone that requires attribution, 2 usage, policy or
input error (including a capture that could not be read completely, or of
which nothing decoded as IP), 4 internal error: an exception nothing expected
is a bug, reported in one line (the traceback with ``--debug``), and never
leaves an output file behind nor exits with a code that reads as a result.
"""

import contextlib
import datetime
import json
import os
import sys
import time
import traceback

import click

from . import __version__
from .atomic import AtomicFile, write_atomic
from .errors import VerifierError
from .app import App, default_data_dir, default_policy_path  # noqa: F401 - App: re-exported for tests
from .runtime import leave, quiet_start, tune_for_throughput

EXIT_USAGE = 2
EXIT_INTERNAL = 4


class Verifier(click.Group):
    """The command group; an exception no command expected (a bug) ends the
    process with exit code 4 and one line on stderr, never the code 1 that
    Python gives an uncaught exception — 1 means "violation found"."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                SystemExit, KeyboardInterrupt):
            raise
        except VerifierError as exc:      # what a user can fix: its lines, its exit code (2)
            for line in exc.lines():
                click.echo(line, err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:          # noqa: BLE001 - the one place that turns a bug into exit 4
            if ctx.params.get("debug"):
                traceback.print_exc()
            where = traceback.extract_tb(exc.__traceback__)[-1]
            click.echo(f"internal error: {type(exc).__name__}: {exc} (at {os.path.basename(where.filename)}:"
                       f"{where.lineno}; a bug: please report it, with the traceback --debug prints)", err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=Verifier, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="verifier")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where imported registries and caches live (default: per-user dir, or $VERIFIER_DATA_DIR).")
@click.option("--debug", is_flag=True, help="On an internal error, print the traceback.")
@click.pass_context
def cli(ctx, data_dir, debug):
    """Clean-path verifier: does your traffic cross equipment you do not trust?"""
    ctx.obj = App(data_dir or default_data_dir())


def attribution_options(asn=True, bgp=False):
    """--policy, --inventory, --asn-db (and --bgp-mrt), declared once for
    every command that judges or attributes."""
    def apply(command):
        if bgp:
            command = click.option("--bgp-mrt", "bgp_mrts", multiple=True, type=click.Path(),
                                   help="MRT RIB dump (TABLE_DUMP_V2 or TABLE_DUMP; gzip/bzip2 too) of the "
                                        "site's border router: its routes name the transit carriers "
                                        "(repeatable).")(command)
        if asn:
            command = click.option("--asn-db", "asn_dbs", multiple=True, type=click.Path(),
                                   help="MaxMind-format ASN database, in precedence order (repeatable).")(command)
        command = click.option("--inventory", type=click.Path(),
                               help="Inventory (YAML or CSV): its answers come first.")(command)
        return click.option("--policy", "policies", multiple=True, type=click.Path(),
                            help="Policy file (repeatable; default: the shipped policy).")(command)
    return apply


# --- audit -------------------------------------------------------------------

def _ports(_ctx, _param, text):
    """A comma-separated list of UDP ports ('none': none)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        ports = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a comma-separated list of ports") from None
    if not all(0 < p < 65536 for p in ports):
        raise click.BadParameter(f"'{text}': ports are 1 to 65535")
    return ports


@cli.command()
@click.argument("captures", nargs=-1, type=click.Path())
@attribution_options(bgp=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the JSON certificate.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write the HTML report.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write one CSV row per flow and zone ('-': to stdout, instead of the summary).")
@click.option("--demo", is_flag=True, help="Audit the demo capture with the demo inventory and ASN database.")
@click.option("--idle-timeout", default=300.0, show_default=True, help="Seconds of silence that end a flow.")
@click.option("--active-timeout", default=1800.0, show_default=True, help="Seconds after which a long flow is cut.")
@click.option("--max-flows", default=500_000, show_default=True, help="Flow table capacity (LRU eviction).")
@click.option("--max-violations", default=1000, show_default=True,
              help="Violating flows listed in the certificate (counts stay exact; --csv lists every flow).")
@click.option("--now", "now", default=None, help="Judge as of this ISO time (exception expiry; reproducible reports).")
@click.option("--textfile", "textfile_dir", type=click.Path(file_okay=False),
              help="Publish cleanpath_audit_* to DIR/cleanpath_audit.prom (node_exporter textfile collector).")
@click.option("--pushgateway", "pushgateway_url", help="Publish cleanpath_audit_* to this Pushgateway URL.")
@click.option("--job", default="cleanpath_audit", show_default=True, help="Pushgateway job name.")
@click.option("--evidence", "evidence_dir", type=click.Path(file_okay=False),
              help="Write each listed violating flow's first packets to DIR/<Community ID>.pcap (a second pass "
                   "over the captures, made only when there are violations).")
@click.option("--evidence-packets", default=20, show_default=True, help="Packets per evidence pcap, at most.")
@click.option("--sign-key", type=click.Path(dir_okay=False),
              help="Ed25519 key (verifier keygen): write JSON.dsse, a signed statement over the JSON, HTML "
                   "and evidence.")
@click.option("--flow-export-ports", default="2055,4739,6343", show_default=True, callback=_ports,
              help="UDP ports whose datagrams are also read as NetFlow/IPFIX/sFlow, their records judged as flows "
                   "('none': no port).")
@click.option("--quiet", "-q", is_flag=True, help="No summary on stdout.")
@click.pass_obj
def audit(app, captures, policies, inventory, asn_dbs, bgp_mrts, json_out, html_out, csv_out, demo, idle_timeout,
          active_timeout, max_flows, max_violations, now, textfile_dir, pushgateway_url, job, evidence_dir,
          evidence_packets, sign_key, flow_export_ports, quiet):
    """Audit capture files (pcap, pcapng, gzip; directories are walked) against a policy.

    \b
    Exit codes:
      0  every zone with traffic certified
      1  at least one violation
      3  no violation, but unverified traffic where a zone requires attribution
      2  usage, policy or input error (a capture not read completely, or of
         which nothing decoded, when nothing was violated)
      4  internal error (a bug; no output written; --debug shows the traceback)
    """
    from .audit import run_audit
    from .demo import demo_inputs
    if demo:
        captures, policies, inventory, asn_dbs, bgp_mrts = demo_inputs(captures, policies, inventory, asn_dbs,
                                                                       bgp_mrts)
    if not captures:
        raise click.UsageError("give at least one capture file or directory (or --demo)")
    try:
        when = datetime.datetime.fromisoformat(now.replace("Z", "+00:00")) if now else \
            datetime.datetime.now(datetime.timezone.utc)
    except ValueError:
        raise click.BadParameter(f"'{now}' is not an ISO date/time", param_hint="--now") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    when = when.replace(microsecond=0)
    if textfile_dir and not os.path.isdir(textfile_dir):
        raise click.BadParameter(f"'{textfile_dir}' is not a directory", param_hint="--textfile")
    key = keyid = None
    if sign_key:
        if not json_out:
            raise click.UsageError("--sign-key signs the certificate: give --json OUT.json too")
        from . import signing
        key = signing.load_private_key(sign_key)
        keyid = signing.keyid(key.public_key())
    started = time.monotonic()
    # Nothing is written unless the audit ends: the CSV grows in an unnamed
    # file and is renamed into place after the certificate (atomic.py).
    with _csv_output(csv_out) as csv_fh:
        policy = app.policy(policies)
        attributor = app.attributor(inventory, asn_dbs, bgp_mrts)
        tune_for_throughput(finite=True)
        result = run_audit(captures, policy, attributor, when, csv_fh=csv_fh, idle_timeout=idle_timeout,
                           active_timeout=active_timeout, max_flows=max_flows,
                           progress=sys.stderr.isatty() and not quiet, max_violations=max_violations,
                           catalogue=app.catalogue, signed_by=keyid, flow_export_ports=flow_export_ports)
        cert = result.certificate
        evidence = []
        if evidence_dir:
            from .evidence import collect
            evidence = collect(cert, evidence_dir, evidence_packets)
        outputs = []
        if json_out:
            from .sinks.report import to_json
            outputs.append((json_out, to_json(cert)))
        if html_out:
            from .sinks.html import render
            outputs.append((html_out, render(cert)))
        for path, text in outputs:
            try:
                write_atomic(path, text)
            except OSError as exc:
                raise VerifierError(f"cannot write {path}: {exc.strerror or exc}") from None
        if key is not None:
            from . import signing
            try:
                signing.sign(key, json_out, ([html_out] if html_out else []) + evidence, signing.predicate(cert))
            except OSError as exc:
                raise VerifierError(f"cannot sign: {exc}") from None
    if not quiet and csv_out != "-":
        from .sinks.summary import render_summary
        click.echo(render_summary(cert))
    code = result.exit_code
    if textfile_dir or pushgateway_url:
        code = _publish(cert, code, time.monotonic() - started, textfile_dir, pushgateway_url, job)
    sys.exit(code)


def _publish(cert, code, duration, textfile_dir, pushgateway_url, job):
    """cleanpath_audit_* to a textfile and/or a Pushgateway; a failure to publish is exit 2."""
    from . import publish
    try:
        if textfile_dir:
            publish.write_textfile(textfile_dir, cert, code, duration)
        if pushgateway_url:
            publish.push(pushgateway_url, cert, code, duration, job=job)
    except OSError as exc:                      # urllib's URLError is an OSError
        click.echo(f"error: cannot publish audit metrics: {getattr(exc, 'reason', None) or exc}", err=True)
        return EXIT_USAGE
    return code


def _csv_output(csv_out):
    """The CSV's file object for the audit: stdout, a file that appears when
    the audit succeeds, or none."""
    if not csv_out:
        return contextlib.nullcontext(None)
    if csv_out == "-":
        return contextlib.nullcontext(sys.stdout)
    try:
        return AtomicFile(csv_out)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {csv_out}: {exc.strerror or exc}", param_hint="--csv") from None


# --- run ---------------------------------------------------------------------

@cli.command()
@click.option("--interface", "-i", "interfaces", multiple=True, help="Capture live on this interface (repeatable).")
@click.option("--engine", type=click.Choice(["socket", "tshark"]), default="socket", show_default=True,
              help="socket: Linux packet ring (needs CAP_NET_RAW); tshark: Wireshark's dumpcap does the capture.")
@click.option("--filter", "bpf_filter", help="BPF capture filter (tcpdump syntax).")
@click.option("--watch-dir", type=click.Path(file_okay=False), help="Read rotated capture files as they are closed.")
@click.option("--state-file", type=click.Path(dir_okay=False),
              help="Where --watch-dir records the files it has read (default: in the data dir).")
@click.option("--settle", default=10.0, show_default=True,
              help="--watch-dir: seconds a newest file must be unchanged (and not open) to count as closed.")
@click.option("--replay", type=click.Path(dir_okay=False), help="Replay a capture file (demos).")
@click.option("--speed", default=1.0, show_default=True, help="--replay: N times the recorded pace (0: flat out).")
@click.option("--demo", is_flag=True,
              help="Replay the shipped demo capture with the demo policy, inventory and ASN database (each unless "
                   "given), then keep serving.")
@click.option("--ipfix", metavar="HOST:PORT", help="Listen for IPFIX from routers (UDP, and TCP on the same port).")
@click.option("--netflow", metavar="HOST:PORT", help="Listen for NetFlow v5 and v9 (UDP).")
@click.option("--sflow", metavar="HOST:PORT", help="Listen for sFlow v5 (UDP).")
@click.option("--export-rcvbuf", default=8 << 20, show_default=True,
              help="Receive buffer asked for each flow-export socket, bytes.")
@attribution_options(bgp=True)
@click.option("--bmp", metavar="HOST:PORT",
              help="Listen for BMP (RFC 7854) from routers: their Loc-RIB and post-policy routes name the "
                   "transit carriers as they change.")
@click.option("--metrics-addr", default="127.0.0.1:9108", show_default=True,
              help="Where /metrics listens; anything but loopback is your explicit choice.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Serve /metrics over TLS with this certificate.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="Private key for --tls-cert.")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False), help="Require client certificates signed by this CA.")
@click.option("--events", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write one JSON line per violation to this file ('-': stdout).")
@click.option("--events-all", is_flag=True, help="One event per judged flow, not only violations.")
@click.option("--events-max-bytes", default=100 << 20, show_default=True, help="Rotate the events file at this size.")
@click.option("--events-keep", default=5, show_default=True, help="Rotated event files kept.")
@click.option("--idle-timeout", default=60.0, show_default=True, help="Seconds of silence that end a flow.")
@click.option("--active-timeout", default=600.0, show_default=True, help="Long flows are judged every N seconds.")
@click.option("--max-flows", default=500_000, show_default=True, help="Flow table capacity.")
@click.option("--window", default=900.0, show_default=True,
              help="Seconds behind cleanpath_zone_certified and cleanpath_coverage_ratio.")
@click.option("--probe", is_flag=True,
              help="Trace the remote ends of protected zones' flows (sends packets; opt-in).")
@click.option("--probe-proto", type=click.Choice(["udp", "tcp", "icmp"]), default="udp", show_default=True)
@click.option("--probe-rate", default=10.0, show_default=True, help="Probes per second, at most.")
@click.option("--probe-cache-ttl", default=3600.0, show_default=True, help="Seconds a trace stays valid.")
@click.pass_obj
def run(app, **params):
    """Watch traffic continuously; serve Prometheus metrics and write violation events.

    Exactly one source: --interface (socket or tshark engine), --watch-dir, --replay, --demo, or flow
    exports from routers (--ipfix, --netflow, --sflow: any of the three together).
    SIGHUP reloads policy, inventory and databases; SIGTERM ends every open flow, then exits.
    """
    from .daemon.run import Daemon, Options
    given = [name for name, key in (("--interface", "interfaces"), ("--watch-dir", "watch_dir"),
                                    ("--replay", "replay"), ("--demo", "demo")) if params[key]]
    if any(params[key] for key in ("ipfix", "netflow", "sflow")):
        given.append("flow export")
    if len(given) != 1:
        raise click.UsageError("give exactly one source: --interface, --watch-dir, --replay, --demo, or flow "
                               "export (--ipfix, --netflow, --sflow)")
    if params.pop("demo"):
        from .demo import demo_inputs
        (params["replay"],), params["policies"], params["inventory"], params["asn_dbs"], params["bgp_mrts"] = \
            demo_inputs((), params["policies"], params["inventory"], params["asn_dbs"], params["bgp_mrts"])
    if params["engine"] == "tshark" and not params["interfaces"]:
        raise click.UsageError("--engine tshark needs --interface")
    if bool(params["tls_cert"]) != bool(params["tls_key"]):
        raise click.UsageError("--tls-cert and --tls-key go together")
    daemon = Daemon(app, Options(**params))
    daemon.install_signals()
    try:
        daemon.start()
        tune_for_throughput()
        daemon.run()
    finally:
        daemon.close_server()


# --- keygen, verify -------------------------------------------------------------

@cli.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Private key file (PKCS#8 PEM, mode 0600); the public key goes to OUT.pub.")
def keygen(out):
    """Make an Ed25519 key for signing certificates (audit --sign-key)."""
    from .signing import keygen as make
    keyid = make(out)
    click.echo(f"wrote {out} (private: keep it on the audit host, mode 0600) and {out}.pub (give it to auditors)")
    click.echo(f"keyid (sha256 of the public key, DER): {keyid}")


@cli.command()
@click.argument("certificate", type=click.Path(dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="The signer's public key (KEY.pub from verifier keygen).")
def verify(certificate, key_path):
    """Check CERTIFICATE.dsse: the signature by KEY over the certificate, the
    HTML report and evidence files it names (by sha256).

    \b
    Exit codes:
      0  valid: signed by KEY, every named file unchanged
      1  invalid or not matching (the first problem is printed)
      2  usage: the certificate or key cannot be read
    """
    from . import signing
    if not os.path.isfile(certificate):
        raise VerifierError(f"no such certificate: {certificate}")
    key = signing.load_public_key(key_path)
    try:
        stmt, checked = signing.verify(certificate, key)
    except signing.Invalid as exc:
        click.echo(f"INVALID: {exc}")
        sys.exit(1)
    for line in checked:
        click.echo(f"ok  {line}")
    pred = stmt["predicate"]
    period = pred.get("period") or {}
    site = (pred.get("site") or {}).get("name")
    click.echo(f"VALID: {pred.get('result')}" + (f" for {site}" if site else "")
               + f", {period.get('start')} to {period.get('end')}, policy sha256 {pred['policy']['sha256']}")


# --- discover ----------------------------------------------------------------

@cli.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
@attribution_options(asn=False)
@click.pass_obj
def discover(app, captures, as_json, inventory, policies):
    """Devices learned from LLDP, CDP and STP frames in capture files."""
    from .audit import run_audit
    policy_ = app.policy(policies)
    attributor = app.attributor(inventory, [])
    result = run_audit(captures, policy_, attributor, datetime.datetime.now(datetime.timezone.utc),
                       catalogue=app.catalogue, require_ip=False)
    devices = result.certificate["discovered_devices"]
    errors = [e for c in result.certificate["captures"] for e in c["errors"]]
    if as_json:
        click.echo(json.dumps(devices, indent=2))
    else:
        click.echo(f"{'interface':<10} {'vlan':>4} {'proto':<5} {'device':<28} {'vendor':<10} {'trust':<14} "
                   f"{'matched by':<11} {'chassis':<17} {'address':<15} platform / description")
        for d in devices:
            text = (d["platform"] or d["description"] or "").replace("\n", " ")[:60]
            click.echo(f"{d['interface'] or '-':<10} {d['vlan'] if d['vlan'] is not None else '-':>4} "
                       f"{d['protocol']:<5} {(d['name'] or d['id'])[:28]:<28} {d['vendor'] or '-':<10} "
                       f"{d['trust']:<14} {d['matched_by'] or '-':<11} {d['chassis_mac'] or '-':<17} "
                       f"{(d['addresses'] or ['-'])[0]:<15} {text}")
        click.echo(f"{len(devices)} device(s)")
    for err in errors:
        click.echo(f"capture error: {err}", err=True)
    sys.exit(EXIT_USAGE if errors else 0)


# --- trace -------------------------------------------------------------------

@cli.command()
@click.argument("destinations", nargs=-1, required=True)
@click.option("--proto", type=click.Choice(["udp", "tcp", "icmp"]), default="udp", show_default=True)
@click.option("--port", type=int, default=None, help="Destination port (udp 33434, tcp 443 by default).")
@click.option("--max-ttl", default=16, show_default=True)
@click.option("--timeout", default=1.0, show_default=True, help="Seconds to wait for each hop's answer.")
@click.option("--rate", default=20.0, show_default=True, help="Probes per second, at most.")
@attribution_options()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def trace(app, destinations, proto, port, max_ttl, timeout, rate, policies, inventory, asn_dbs, as_json):
    """Probe the routers toward each destination (flow-stable traceroute; sends
    packets: needs root or CAP_NET_RAW) and judge them against the policy.

    Exit code: 0 clean, 1 a router the policy forbids, 3 unverified, 2 error."""
    from .tracecmd import run_traces
    try:
        policy_ = app.policy(policies)
        attributor = app.attributor(inventory, asn_dbs)
        results = run_traces(destinations, policy_, attributor, proto, port, max_ttl, timeout, rate)
    except ValueError as exc:
        raise VerifierError(str(exc)) from None
    except PermissionError:
        raise VerifierError("sending probes needs root or CAP_NET_RAW") from None
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for res in results:
            click.echo(f"trace to {res['destination']} ({res['proto']}/{res['port']}) from {res['source']}, "
                       f"zone {res['zone'] or 'none'}")
            for hop in res["hops"]:
                el = hop.get("element") or {}
                rtt = f"{hop['rtt_ms']:.2f} ms" if hop["rtt_ms"] is not None else ""
                click.echo(f"{hop['ttl']:>3}  {hop['address'] or '*':<40} {el.get('vendor') or '-':<10} "
                           f"{el.get('trust', '') if not hop['reached'] else 'destination':<14} {rtt}")
            click.echo(f"verdict: {res['verdict']}" + "".join(f"\n  [{r['rule']}] {r['text']}" for r in res["reasons"]))
    verdicts = {r["verdict"] for r in results}
    sys.exit(1 if "VIOLATION" in verdicts else 3 if "UNVERIFIED" in verdicts else 0)


# --- policy ------------------------------------------------------------------

@cli.group()
def policy():
    """Validate and inspect policy files."""


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--dump", is_flag=True, help="Print the effective (merged, validated) policy as YAML.")
@click.pass_obj
def policy_check(app, files, dump):
    """Report every error as file:line:column; exit 2 when there is one."""
    import yaml
    from .policy.load import dump as dump_policy
    compiled = app.policy(files)
    if dump:
        click.echo(yaml.safe_dump(dump_policy(compiled), sort_keys=False), nl=False)
    else:
        click.echo(f"ok: {len(compiled.zones)} zone(s), {len(compiled.rules)} rule(s), "
                   f"{len(compiled.exceptions)} exception(s); sha256 {compiled.sha256[:16]}")


# --- lookup ------------------------------------------------------------------

@cli.command()
@click.argument("queries", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable answers.")
@attribution_options(bgp=True)
@click.pass_obj
def lookup(app, queries, as_json, inventory, asn_dbs, bgp_mrts, policies):
    """Every source's answer for MAC or IP addresses, with evidence (and,
    with --bgp-mrt, the selected route toward an IP and its carriers)."""
    from .lookup import answers_for, parse_query, text_lines
    try:
        policy_ = app.policy(policies)
        attributor = app.attributor(inventory, asn_dbs, bgp_mrts)
        parsed = [parse_query(q) for q in queries]
    except ValueError as exc:
        raise VerifierError(str(exc)) from None
    results = [answers_for(q, raw, is_mac, attributor, policy_) for q, (raw, is_mac) in zip(queries, parsed)]
    if not policies and not as_json:
        click.echo(f"trust as the shipped default policy judges it ({default_policy_path()}); "
                   "--policy FILE for your own", err=True)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for res, (_raw, is_mac) in zip(results, parsed):
        for line in text_lines(res, is_mac, bool(asn_dbs), bool(bgp_mrts)):
            click.echo(line)


# --- db ----------------------------------------------------------------------

@cli.group()
def db():
    """Manage attribution data in the data directory."""


@db.command("import-oui")
@click.argument("csvs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def import_oui(app, csvs):
    """Import IEEE registry CSVs (oui.csv, mam.csv, oui36.csv, iab.csv)."""
    from .attribution.oui import import_ieee
    counts = import_ieee(csvs, app.data_dir)
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    click.echo(f"imported into {os.path.join(app.data_dir, 'oui')}: {parts}")


def main():
    """The console script: click always ends with ``SystemExit``; its code
    becomes the process's without a heap teardown (runtime.leave)."""
    quiet_start()
    try:
        cli(prog_name="verifier")
    except SystemExit as done:
        leave(done.code)
