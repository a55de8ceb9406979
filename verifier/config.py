"""Positioned YAML reading shared by the policy and inventory loaders.

YAML is composed into nodes (not constructed into Python objects) so every
value keeps its ``line:column``. A ``Reader`` collects problems instead of
raising, so a user sees every mistake in one run. Unknown keys and duplicate
keys are errors: a misspelt key must never silently weaken a policy.
"""

import ipaddress

import yaml

from .errors import ConfigError, Problem

# libyaml when PyYAML was built with it (several times faster), with the same marks.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Reader:
    def __init__(self, path):
        self.path = path
        self.problems = []
        self.warnings = []          # positioned like problems, but the file still loads

    def compose(self, text):
        """Root node of ``text``, or None (with a problem recorded)."""
        try:
            return yaml.compose(text, Loader=SAFE_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            self.problems.append(Problem(self.path, line, col, f"YAML syntax: {exc.problem}"))
        except yaml.YAMLError as exc:
            self.problems.append(Problem(self.path, 1, 1, f"YAML error: {exc}"))
        return None

    def error(self, node, message):
        self.problems.append(self.at(node, message))

    def warn(self, node, message):
        self.warnings.append(self.at(node, message))

    def at(self, node, message):
        """A ``Problem`` at ``node``'s position (its ``str`` is ``file:line:column: message``)."""
        mark = node.start_mark if node is not None else None
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Problem(self.path, line, col, message)

    def raise_if_any(self):
        if self.problems:
            raise ConfigError(self.problems)

    # --- shapes ---------------------------------------------------------

    def mapping(self, node, allowed, where, required=()):
        """``{key: value node}`` for a mapping node, checking keys against ``allowed``."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{where} must be a mapping")
            return {}
        out = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else None
            if key is None:
                self.error(knode, f"{where}: keys must be plain names")
                continue
            if key in out:
                self.error(knode, f"{where}: duplicate key '{key}'")
                continue
            if allowed is not None and key not in allowed:
                hint = _closest(key, allowed)
                self.error(knode, f"{where}: unknown key '{key}'" + (f" (did you mean '{hint}'?)" if hint else ""))
                continue
            out[key] = vnode
        for key in required:
            if key not in out:
                self.error(node, f"{where}: missing required key '{key}'")
        return out

    def seq(self, node, where):
        if node is None:
            return []
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{where} must be a list")
            return []
        return node.value

    def string(self, node, where, choices=None):
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.error(node, f"{where} must be a string")
            return None
        if choices is not None and node.value not in choices:
            self.error(node, f"{where}: '{node.value}' is not one of {', '.join(choices)}")
            return None
        return node.value

    def integer(self, node, where, low=None, high=None):
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{where} must be an integer")
            return None
        text = node.value.strip()
        if text[:2].upper() == "AS" and text[2:].isdigit():
            text = text[2:]
        try:
            value = int(text, 10)
        except ValueError:
            self.error(node, f"{where}: '{node.value}' is not an integer")
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            self.error(node, f"{where}: {value} is out of range {low}..{high}")
            return None
        return value

    def network(self, node, where):
        text = self.string(node, where)
        if text is None:
            return None
        try:
            return ipaddress.ip_network(text)
        except ValueError:
            pass
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            self.error(node, f"{where}: '{text}' is not an IP address or prefix")
            return None
        self.warn(node, f"{where}: '{text}' has host bits set; read as {network}")
        return network

    def strings(self, node, where, choices=None):
        values = [self.string(n, where, choices) for n in self.seq(node, where)]
        return [v for v in values if v is not None]


def read_text(path, reader):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        reader.problems.append(Problem(path, 1, 1, f"cannot read: {exc.strerror or exc}"))
    except UnicodeDecodeError:
        reader.problems.append(Problem(path, 1, 1, "not UTF-8 text"))
    return None


def _closest(word, choices):
    import difflib
    hits = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return hits[0] if hits else None
