"""deploy/: the files operators install are valid for the tools that read them."""

import json
import os
import re
import subprocess

import yaml

from conftest import ROOT, need_tool

DEPLOY = os.path.join(ROOT, "deploy")


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def test_promtool_accepts_the_rules_and_the_config():
    need_tool("promtool")
    res = run("promtool", "check", "rules", os.path.join(DEPLOY, "prometheus", "rules.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    res = run("promtool", "check", "config", os.path.join(DEPLOY, "prometheus", "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_amtool_accepts_the_alertmanager_config():
    need_tool("amtool")
    res = run("amtool", "check-config", os.path.join(DEPLOY, "alertmanager", "alertmanager.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_systemd_units_verify():
    need_tool("systemd-analyze")
    units = [os.path.join(DEPLOY, "systemd", n) for n in sorted(os.listdir(os.path.join(DEPLOY, "systemd")))]
    res = run("systemd-analyze", "verify", *units)
    # The binary is not installed at /usr/local/bin on a test machine; everything else must be clean.
    problems = [line for line in (res.stdout + res.stderr).splitlines()
                if line.strip() and "is not executable" not in line]
    assert not problems, problems
    service = open(os.path.join(DEPLOY, "systemd", "clean-path-verifier.service")).read()
    for setting in ("AmbientCapabilities=CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_RAW", "NoNewPrivileges=yes",
                    "ProtectSystem=strict", "PrivateTmp=yes", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert setting in service


def test_compose_kubernetes_and_dashboard_are_well_formed():
    compose = yaml.safe_load(open(os.path.join(DEPLOY, "docker-compose.yml")))
    assert set(compose["services"]) == {"verifier", "prometheus", "alertmanager", "pushgateway", "grafana"}
    verifier = compose["services"]["verifier"]
    assert verifier["cap_drop"] == ["ALL"] and verifier["cap_add"] == ["NET_RAW"]
    docs = list(yaml.safe_load_all(open(os.path.join(DEPLOY, "kubernetes", "daemonset.yaml"))))
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert ds["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    dockerfile = open(os.path.join(DEPLOY, "Dockerfile")).read()
    assert re.search(r"^USER verifier$", dockerfile, re.M) and "cap_net_raw+ep" in dockerfile
    dash = json.load(open(os.path.join(DEPLOY, "grafana", "dashboards", "cleanpath.json")))
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("zone status", "vendor", "rule", "coverage", "verdict", "capture"):
        assert topic in titles
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    provisioning = yaml.safe_load(open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources",
                                                    "prometheus.yml")))
    uid = provisioning["datasources"][0]["uid"]
    assert dash["templating"]["list"][0]["current"]["value"] == uid
