"""The application object every command gets in ``ctx.obj`` (click's way):
the data directory, the vendor catalogue, and how a command builds its
policy and attributor from the paths it was given. Built lazily: a command
that needs no catalogue loads none.
"""

import os

import click


class App:
    """What every command needs, built lazily and carried in ``ctx.obj``."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self._catalogue = None
        self._warned = set()

    @property
    def catalogue(self):
        if self._catalogue is None:
            from .attribution.vendors import VendorCatalogue
            self._catalogue = VendorCatalogue.load()
        return self._catalogue

    def policy(self, paths):
        """The compiled policy (the shipped default without ``paths``); its
        warnings go to stderr, each once per process."""
        from .policy.load import load_policy
        policy = load_policy(list(paths) or [default_policy_path()], self.catalogue)
        for warning in policy.warnings:
            if str(warning) not in self._warned:
                self._warned.add(str(warning))
                click.echo(f"warning: {warning}", err=True)
        return policy

    def attributor(self, inventory_path, asn_dbs, mrt_dumps=(), live_routes=None):
        from .attribution import Attributor
        from .attribution.asn import AsnDatabase
        from .attribution.inventory import load_inventory
        from .attribution.oui import OuiRegistry
        inventory = load_inventory(inventory_path, self.catalogue) if inventory_path else None
        providers = ([inventory] if inventory else []) + [OuiRegistry.load(self.catalogue, self.data_dir)]
        providers += [AsnDatabase(p) for p in asn_dbs]
        routes = None
        if mrt_dumps or live_routes is not None:
            from .bgp.live import Routes
            from .bgp.rib import Rib
            routes = Routes(Rib.load(mrt_dumps) if mrt_dumps else None, live_routes)
        return Attributor(providers, inventory, routes)


def default_policy_path():
    from importlib import resources
    return str(resources.files("verifier.rules").joinpath("default-policy.yaml"))


def default_data_dir():
    return os.environ.get("VERIFIER_DATA_DIR") or click.get_app_dir("clean-path-verifier")
