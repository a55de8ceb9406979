"""Command line (click). Thin: builds the app objects, maps errors to exit codes.

Exit codes of ``audit``: 0 every zone with traffic certified, 1 a violation,
3 unverified traffic in a zone that requires attribution, 2 usage, policy or
input error (including a capture that could not be read completely).
"""

import datetime
import json
import os
import sys

import click

from . import __version__
from .errors import ConfigError, VerifierError

EXIT_USAGE = 2


class App:
    """What every command needs, built lazily and carried in ``ctx.obj``."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self._catalogue = None

    @property
    def catalogue(self):
        if self._catalogue is None:
            from .attribution.vendors import VendorCatalogue
            self._catalogue = VendorCatalogue.load()
        return self._catalogue

    def policy(self, paths):
        from .policy.load import load_policy
        return load_policy(list(paths) or [default_policy_path()], self.catalogue)

    def attributor(self, inventory_path, asn_dbs):
        from .attribution import Attributor
        from .attribution.asn import AsnDatabase
        from .attribution.inventory import load_inventory
        from .attribution.oui import OuiRegistry
        inventory = load_inventory(inventory_path, self.catalogue) if inventory_path else None
        providers = ([inventory] if inventory else []) + [OuiRegistry.load(self.catalogue, self.data_dir)]
        providers += [AsnDatabase(p) for p in asn_dbs]
        return Attributor(providers, inventory)


def default_policy_path():
    from importlib import resources
    return str(resources.files("verifier.rules").joinpath("default-policy.yaml"))


def default_data_dir():
    return os.environ.get("VERIFIER_DATA_DIR") or click.get_app_dir("clean-path-verifier")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="verifier")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where imported registries and caches live (default: per-user dir, or $VERIFIER_DATA_DIR).")
@click.pass_context
def cli(ctx, data_dir):
    """Clean-path verifier: does your traffic cross equipment you do not trust?"""
    ctx.obj = App(data_dir or default_data_dir())


def _fail(exc):
    """Print a VerifierError the way users should see it and exit 2."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} error(s)", err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_USAGE)


# --- audit -------------------------------------------------------------------

@cli.command()
@click.argument("captures", nargs=-1, type=click.Path())
@click.option("--policy", "policies", multiple=True, type=click.Path(), help="Policy file (repeatable).")
@click.option("--inventory", type=click.Path(), help="Inventory (YAML or CSV).")
@click.option("--asn-db", "asn_dbs", multiple=True, type=click.Path(),
              help="MaxMind-format ASN database, in precedence order (repeatable).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the JSON certificate.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write the HTML report.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), help="Write one CSV row per flow.")
@click.option("--demo", is_flag=True, help="Audit the demo capture with the demo inventory and ASN database.")
@click.option("--idle-timeout", default=300.0, show_default=True, help="Seconds of silence that end a flow.")
@click.option("--active-timeout", default=1800.0, show_default=True, help="Seconds after which a long flow is cut.")
@click.option("--max-flows", default=500_000, show_default=True, help="Flow table capacity (LRU eviction).")
@click.option("--max-violations", default=1000, show_default=True,
              help="Violating flows listed in the certificate (counts stay exact; --csv lists every flow).")
@click.option("--now", "now", default=None, help="Judge as of this ISO time (exception expiry; reproducible reports).")
@click.option("--quiet", "-q", is_flag=True, help="No summary on stdout.")
@click.pass_obj
def audit(app, captures, policies, inventory, asn_dbs, json_out, html_out, csv_out, demo, idle_timeout,
          active_timeout, max_flows, max_violations, now, quiet):
    """Audit capture files (pcap, pcapng, gzip; directories are walked) against a policy."""
    from .audit import run_audit
    from .demo import demo_inputs
    if demo:
        captures, policies, inventory, asn_dbs = demo_inputs(captures, policies, inventory, asn_dbs)
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
    try:
        policy = app.policy(policies)
        attributor = app.attributor(inventory, asn_dbs)
        result = run_audit(captures, policy, attributor, when, csv_out=csv_out, idle_timeout=idle_timeout,
                           active_timeout=active_timeout, max_flows=max_flows,
                           progress=sys.stderr.isatty() and not quiet, max_violations=max_violations)
    except VerifierError as exc:
        _fail(exc)
    cert = result.certificate
    if json_out:
        from .sinks.report import to_json
        _write(json_out, to_json(cert))
    if html_out:
        from .sinks.html import render
        _write(html_out, render(cert))
    if not quiet:
        from .sinks.summary import render_summary
        click.echo(render_summary(cert))
    sys.exit(result.exit_code)


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


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
    try:
        compiled = app.policy(files)
    except VerifierError as exc:
        _fail(exc)
    if dump:
        click.echo(yaml.safe_dump(dump_policy(compiled), sort_keys=False), nl=False)
    else:
        click.echo(f"ok: {len(compiled.zones)} zone(s), {len(compiled.rules)} rule(s), "
                   f"{len(compiled.exceptions)} exception(s); sha256 {compiled.sha256[:16]}")


# --- lookup ------------------------------------------------------------------

@cli.command()
@click.argument("queries", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable answers.")
@click.option("--inventory", type=click.Path())
@click.option("--asn-db", "asn_dbs", multiple=True, type=click.Path())
@click.option("--policy", "policies", multiple=True, type=click.Path(), help="Policy that decides trust.")
@click.pass_obj
def lookup(app, queries, as_json, inventory, asn_dbs, policies):
    """Every source's answer for MAC or IP addresses, with evidence."""
    from .lookup import parse_query, answers_for
    try:
        policy_ = app.policy(policies)
        attributor = app.attributor(inventory, asn_dbs)
        parsed = [parse_query(q) for q in queries]
    except (VerifierError, ValueError) as exc:
        _fail(exc)
    results = [answers_for(q, raw, is_mac, attributor, policy_) for q, (raw, is_mac) in zip(queries, parsed)]
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for res in results:
        click.echo(res["query"] + (f"  ({res['note']})" if res.get("note") else ""))
        if not res["answers"]:
            click.echo("  no source answers: unknown")
        for a in res["answers"]:
            extra = f" AS{a['asn']}" if a.get("asn") is not None else ""
            click.echo(f"  {a['source']:<10} {a['vendor'] or '-':<14} {a['trust']:<14}{extra} "
                       f"{a['organization'] or ''}  [/{a['prefix_len']} {a['database']} {a['version'] or ''}]")


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
    try:
        counts = import_ieee(csvs, app.data_dir)
    except VerifierError as exc:
        _fail(exc)
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    click.echo(f"imported into {os.path.join(app.data_dir, 'oui')}: {parts}")


def main():
    cli(prog_name="verifier")
