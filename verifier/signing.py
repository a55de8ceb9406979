"""Signed certificates: a DSSE envelope holding an in-toto Statement v1,
signed with Ed25519 (SPEC "Signed certificates").

Why these formats: DSSE and in-toto Statements are what supply-chain tools
(in-toto, Sigstore, SLSA verifiers) sign and check, so an auditor can verify
a certificate with their own tools, or with openssl alone (README). The
envelope is small enough to write here (the PyPI package named ``dsse`` is
an unrelated project); Ed25519 comes from ``cryptography``.

- ``keygen``: a private key (PKCS#8 PEM, mode 0600, never overwritten) and
  its public key beside it (``KEY.pub``, SubjectPublicKeyInfo PEM).
- ``sign``: the Statement lists each subject file (the certificate JSON, the
  HTML report, evidence pcaps) by its path relative to the JSON's directory
  and its sha256; the predicate carries what an auditor reads first. The
  signature is over DSSE's pre-authentication encoding (``pae``) of the
  payload type and the payload, so neither can be swapped.
- ``verify``: every check an auditor needs, each failure named.

``keyid`` (in the envelope, the certificate, the HTML and the console) is
the sha256 of the public key's DER SubjectPublicKeyInfo, which
``openssl pkey -pubin -in KEY.pub -outform DER | sha256sum`` reproduces.
"""

import base64
import hashlib
import json
import os

from .atomic import write_atomic
from .errors import VerifierError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:clean-path-verifier:audit-certificate:v1"
ENVELOPE_SUFFIX = ".dsse"


def pae(payload_type, payload):
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


# --- keys -------------------------------------------------------------------------

def keygen(path):
    """Write a new Ed25519 key to ``path`` and its public key to ``path.pub``;
    returns the keyid. Existing files are never overwritten."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    for target in (path, path + ".pub"):
        if os.path.lexists(target):
            raise VerifierError(f"{target} exists: keygen never overwrites a key (move it away first)")
    _create(path, private, 0o600)
    _create(path + ".pub", public, 0o644)
    return keyid(key.public_key())


def _create(path, data, mode):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise VerifierError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def keyid(public_key):
    """sha256 (hex) of the public key's DER SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_private_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    data = _read(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise VerifierError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise VerifierError(f"{path}: a {type(key).__name__}, not an Ed25519 key (make one with verifier keygen)")
    return key


def load_public_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise VerifierError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise VerifierError(f"{path}: a {type(key).__name__}, not an Ed25519 public key")
    return key


def _read(path, what):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise VerifierError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


# --- signing ----------------------------------------------------------------------

def envelope_path(json_path):
    return json_path + ENVELOPE_SUFFIX


def predicate(cert):
    """What the signature vouches for, beside the subjects' digests."""
    return {
        "result": cert["result"],
        "period": cert["period"],
        "site": cert.get("site"),
        "generated_at": cert["generated_at"],
        "policy": {"sha256": cert["policy"]["sha256"], "files": [os.path.basename(f) for f in cert["policy"]["files"]]},
        "data": [{k: d.get(k) for k in ("source", "version", "build_date")} for d in cert["data"]],
        "zones": [{"name": z["name"], "status": z["status"]} for z in cert["zones"]],
        "captures": [{"path": os.path.basename(c["path"]), "sha256": c["sha256"]} for c in cert["captures"]],
        "tool": {"name": "clean-path-verifier", "version": cert["tool_version"]},
    }


def statement(json_path, others, pred):
    """The in-toto Statement v1 over the certificate JSON and ``others``."""
    base = os.path.dirname(os.path.abspath(json_path))
    subjects = []
    for path in [json_path] + list(others):
        subjects.append({"name": os.path.relpath(os.path.abspath(path), base),
                         "digest": {"sha256": _file_sha256(path)}})
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": pred}


def sign(key, json_path, others, pred):
    """Write ``json_path.dsse``: the signed Statement over the written files."""
    payload = json.dumps(statement(json_path, others, pred), indent=2, sort_keys=True).encode()
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {"payload": base64.b64encode(payload).decode(), "payloadType": PAYLOAD_TYPE,
                "signatures": [{"keyid": keyid(key.public_key()), "sig": base64.b64encode(signature).decode()}]}
    # One field per line, so the README's sed/openssl recipe can take them apart without a JSON tool.
    path = envelope_path(json_path)
    write_atomic(path, json.dumps(envelope, indent=2) + "\n")
    return path


def _file_sha256(path):
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise VerifierError(f"cannot read {path}: {exc.strerror or exc}") from None


# --- verifying --------------------------------------------------------------------

class Invalid(Exception):
    """The envelope, its signature or a subject does not check out."""


def verify(json_path, public_key):
    """Check ``json_path.dsse`` against ``json_path`` and the files it names.
    Returns (statement, [lines of what was checked]); raises ``Invalid``."""
    done = []
    path = envelope_path(json_path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise Invalid(f"no signature: cannot read {path}: {exc.strerror or exc}") from None
    try:
        envelope = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"{path}: not JSON ({exc})") from None
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "payloadType", "signatures"}:
        raise Invalid(f"{path}: not a DSSE envelope (keys payload, payloadType, signatures)")
    if envelope["payloadType"] != PAYLOAD_TYPE:
        raise Invalid(f"{path}: payload type {envelope['payloadType']!r}, expected {PAYLOAD_TYPE!r}")
    payload = _b64(envelope["payload"], "payload")
    want = keyid(public_key)
    signatures = envelope["signatures"]
    if not isinstance(signatures, list) or not signatures:
        raise Invalid(f"{path}: no signature")
    mine = [s for s in signatures if isinstance(s, dict) and set(s) == {"keyid", "sig"} and s["keyid"] == want]
    if not mine:
        raise Invalid(f"{path}: no signature by key {want} (signed by: "
                      + ", ".join(str(s.get("keyid")) for s in signatures if isinstance(s, dict)) + ")")
    from cryptography.exceptions import InvalidSignature
    try:
        public_key.verify(_b64(mine[0]["sig"], "signature"), pae(PAYLOAD_TYPE, payload))
    except InvalidSignature:
        raise Invalid(f"{path}: the signature does not match the envelope's payload (altered, or another key)") \
            from None
    done.append(f"signature by key {want}: valid")
    try:
        stmt = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"signed payload is not JSON ({exc})") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != \
            PREDICATE_TYPE or not isinstance(stmt.get("subject"), list):
        raise Invalid("signed payload is not a clean-path verifier audit statement")
    base = os.path.dirname(os.path.abspath(json_path))
    names = set()
    for subject in stmt["subject"]:
        name, digest = subject.get("name"), (subject.get("digest") or {}).get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str):
            raise Invalid("a subject of the statement has no name or sha256")
        names.add(name)
        target = os.path.normpath(os.path.join(base, name))
        try:
            got = _file_sha256(target)
        except VerifierError:
            raise Invalid(f"{name}: named by the signature, missing beside {os.path.basename(json_path)}") from None
        if got != digest:
            raise Invalid(f"{name}: sha256 {got} differs from the signed {digest}: the file was changed")
        done.append(f"{name}: sha256 {digest}: matches")
    own = os.path.basename(json_path)
    if own not in names:
        raise Invalid(f"the signature does not cover {own} (it covers: {', '.join(sorted(names))})")
    return stmt, done


def _b64(text, what):
    """Strict base64: canonical padding and bits, so an altered character is never ignored."""
    if not isinstance(text, str):
        raise Invalid(f"envelope {what} is not a string")
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise Invalid(f"envelope {what} is not base64") from None
    if base64.b64encode(data).decode() != text:
        raise Invalid(f"envelope {what} is not canonical base64")
    return data
