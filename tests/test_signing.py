"""Signed certificates (issue 19): keygen, audit --sign-key, verify; every
altered byte of a subject or of the envelope caught; the envelope checked by
openssl as the README shows, by securesystemslib and by in-toto's Statement
validation."""

import base64
import json
import os
import re
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, need_tool
from verifier import signing


def verifier(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "verifier", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A demo audit signed with a new key: report.json, report.html, report.json.dsse, signing.key(.pub)."""
    d = tmp_path_factory.mktemp("signed")
    done = verifier("keygen", "--out", str(d / "signing.key"))
    assert done.returncode == 0, done.stderr
    keyid = re.search(r"keyid .*: ([0-9a-f]{64})", done.stdout).group(1)
    audit = verifier("--data-dir", str(d / "data"), "audit", "--demo", "--json", str(d / "report.json"),
                     "--html", str(d / "report.html"), "--sign-key", str(d / "signing.key"))
    assert audit.returncode == 1, audit.stderr            # the demo has violations
    assert keyid in audit.stdout
    return d, keyid


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    done = verifier("keygen", "--out", str(tmp_path / "k"))
    assert done.returncode == 0
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = (tmp_path / "k").read_bytes()
    again = verifier("keygen", "--out", str(tmp_path / "k"))
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert (tmp_path / "k").read_bytes() == before


def test_a_signed_audit_verifies_and_names_its_key_everywhere(signed):
    d, keyid = signed
    done = verifier("verify", str(d / "report.json"), "--key", str(d / "signing.key.pub"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID: VIOLATION" in done.stdout and "report.html: sha256" in done.stdout
    cert = json.loads((d / "report.json").read_text())
    assert cert["signed_by"] == {"algorithm": "ed25519", "keyid": keyid}
    assert keyid in (d / "report.html").read_text()
    stmt = json.loads(base64.b64decode(json.loads((d / "report.json.dsse").read_text())["payload"]))
    assert [s["name"] for s in stmt["subject"]] == ["report.json", "report.html"]
    pred = stmt["predicate"]
    assert pred["result"] == cert["result"] == "VIOLATION"
    assert pred["period"] == cert["period"] and pred["period"]["start"] == cert["captures"][0]["first_ts"]
    assert pred["policy"]["sha256"] == cert["policy"]["sha256"] and pred["site"] == cert["site"]
    assert pred["site"]["name"].startswith("Embassy of Examplestan")


def test_any_altered_byte_of_a_subject_or_of_the_envelope_is_caught(signed, tmp_path):
    """Every byte of the envelope flipped in turn, and every 7th byte (and
    the last) of the JSON and the HTML, whose digests change with any byte
    alike (in process: one verify per altered byte)."""
    d, _ = signed
    for name in ("report.json", "report.html", "report.json.dsse", "signing.key.pub"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    key = signing.load_public_key(str(tmp_path / "signing.key.pub"))
    cert = str(tmp_path / "report.json")
    signing.verify(cert, key)                                       # the copy is valid
    for name in ("report.json.dsse", "report.json", "report.html"):
        path = tmp_path / name
        original = path.read_bytes()
        caught = 0
        positions = range(len(original)) if name.endswith(".dsse") else \
            sorted(set(range(0, len(original), 7)) | {len(original) - 1})
        for i in positions:
            altered = bytearray(original)
            altered[i] ^= 0x01
            path.write_bytes(bytes(altered))
            try:
                signing.verify(cert, key)
            except signing.Invalid:
                caught += 1
        path.write_bytes(original)
        assert caught == len(positions), f"{name}: {len(positions) - caught} altered bytes passed"
    signing.verify(cert, key)


def test_a_missing_subject_another_key_or_no_envelope_is_invalid(signed, tmp_path):
    d, _ = signed
    for name in ("report.json", "report.json.dsse"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    verifier("keygen", "--out", str(tmp_path / "other"))
    missing = verifier("verify", str(tmp_path / "report.json"), "--key", str(d / "signing.key.pub"))
    assert missing.returncode == 1 and "report.html: named by the signature, missing" in missing.stdout
    (tmp_path / "report.html").write_bytes((d / "report.html").read_bytes())
    other = verifier("verify", str(tmp_path / "report.json"), "--key", str(tmp_path / "other.pub"))
    assert other.returncode == 1 and "no signature by key" in other.stdout
    os.unlink(tmp_path / "report.json.dsse")
    unsigned = verifier("verify", str(tmp_path / "report.json"), "--key", str(d / "signing.key.pub"))
    assert unsigned.returncode == 1 and "no signature" in unsigned.stdout


def test_usage_errors_exit_2(signed, tmp_path):
    d, _ = signed
    assert verifier("verify", str(tmp_path / "nope.json"), "--key", str(d / "signing.key.pub")).returncode == 2
    (tmp_path / "bad.pub").write_text("not a key\n")
    bad = verifier("verify", str(d / "report.json"), "--key", str(tmp_path / "bad.pub"))
    assert bad.returncode == 2 and "not a PEM public key" in bad.stderr
    nojson = verifier("audit", "--demo", "--sign-key", str(d / "signing.key"), "-q")
    assert nojson.returncode == 2 and "--json" in nojson.stderr
    nokey = verifier("audit", "--demo", "--json", str(tmp_path / "x.json"), "--sign-key", str(tmp_path / "none"))
    assert nokey.returncode == 2 and "cannot read signing key" in nokey.stderr
    assert not (tmp_path / "x.json").exists()                        # refused before the audit ran


def readme_block():
    text = open(os.path.join(ROOT, "README.md")).read()
    after = text.split("<!-- tests/test_signing.py runs this block as written -->", 1)[1]
    return re.search(r"```sh\n(.*?)```", after, re.S).group(1)


def test_openssl_alone_verifies_as_the_readme_shows(signed, tmp_path):
    need_tool("openssl")
    d, keyid = signed
    for name in ("report.json", "report.html", "report.json.dsse", "signing.key.pub"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    script = readme_block()
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert keyid in done.stdout
    assert "Signature Verified Successfully" in done.stdout
    assert "report.json: signed" in done.stdout and "report.html: signed" in done.stdout
    # The same recipe refuses an altered statement.
    env = json.loads((tmp_path / "report.json.dsse").read_text())
    payload = base64.b64decode(env["payload"]).replace(b"VIOLATION", b"CERTIFIED", 1)
    env["payload"] = base64.b64encode(payload).decode()
    (tmp_path / "report.json.dsse").write_text(json.dumps(env, indent=2) + "\n")
    forged = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                            text=True)
    assert forged.returncode != 0 and "Signature Verified Successfully" not in forged.stdout


def test_securesystemslib_and_in_toto_accept_the_envelope(signed):
    pytest.importorskip("securesystemslib")
    pytest.importorskip("in_toto_attestation")
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey
    d, keyid = signed
    env = json.loads((d / "report.json.dsse").read_text())
    key = SSlibKey.from_crypto(signing.load_public_key(str(d / "signing.key.pub")), keyid=keyid, scheme="ed25519")
    assert set(Envelope.from_dict(env).verify([key], 1)) == {keyid}
    pb = json_format.Parse(base64.b64decode(env["payload"]), statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    assert pb.predicate_type == signing.PREDICATE_TYPE and len(pb.subject) == 2
