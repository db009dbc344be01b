"""The user's named identities, kept per user outside every store, laid out like dfx's.

::

    <config>/identity.json                     {"default": "<the identity in use>"}
    <config>/identity/<name>/identity.pem      the key (PEM, mode 0600; its directory 0700)

``<config>`` is ``$GRAPHCOPY_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/graphcopy``, else
``~/.config/graphcopy`` (dfx: ``~/.config/dfx``, the same file names). ``anonymous`` is built in
(the anonymous principal, no key). ``default`` is made on first need, as dfx makes it: the first
command that needs the identity in use while none exists creates an Ed25519 key for it. The key
makes the identity's principal the user's own: canisters a user creates are controlled by it, and
only an identity whose key the user holds acts as a controller (``persist.session.Store``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from persist.errors import GraphcopyError, InvalidArgumentError
from persist.principal import Principal

__all__ = [
    "ANONYMOUS",
    "DEFAULT",
    "Identity",
    "IdentityError",
    "config_dir",
    "current_identity",
    "held_identity",
    "identity_pem_path",
    "import_identity",
    "list_identities",
    "load_identity",
    "new_identity",
    "remove_identity",
    "selected_name",
    "use_identity",
]

ANONYMOUS = "anonymous"
DEFAULT = "default"
PEM_FILE = "identity.pem"
# The principal and key type derived from identity.pem, keyed by the PEM's SHA-256: every command
# needs the principal, and deriving it means importing `cryptography` (tens of milliseconds of a
# command's start) to parse the key. A key file that changes no longer matches, and is parsed again.
PRINCIPAL_CACHE_FILE = "principal.json"
CONFIG_FILE = "identity.json"
_TEMP_PREFIX = ".tmp-"
# dfx's rule for identity names: ASCII letters, digits and . _ - @ (not starting with a dot).
_NAME = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,99}$")


class IdentityError(InvalidArgumentError):
    """An identity is missing, misnamed, or cannot be created, used or removed (exit 2)."""


@dataclass(frozen=True)
class Identity:
    """A named identity: its principal, and (unless anonymous) the key file that makes it the user's."""

    name: str
    principal: Principal
    key_type: str | None = None  # "ed25519" | "secp256k1"; None for anonymous
    pem_path: Path | None = None
    created: bool = False  # made by this call (``default`` on first need, or ``new``)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (the key's path, never the key)."""
        return {"name": self.name, "principal": self.principal.to_text(), "key_type": self.key_type,
                "pem_path": str(self.pem_path) if self.pem_path else None}


def config_dir() -> Path:
    """Where the identities live: ``$GRAPHCOPY_CONFIG_DIR``, ``$XDG_CONFIG_HOME/graphcopy`` or
    ``~/.config/graphcopy``."""
    explicit = os.environ.get("GRAPHCOPY_CONFIG_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    if xdg:
        return Path(xdg).expanduser() / "graphcopy"
    return Path.home() / ".config" / "graphcopy"


def identity_pem_path(name: str) -> Path:
    """The key file of identity ``name``."""
    return config_dir() / "identity" / name / PEM_FILE


def _check_name(name: str, *, creating: bool = False) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith(_TEMP_PREFIX):
        shown = name if isinstance(name, str) and name.isprintable() and len(name) <= 80 else repr(name)[:80]
        raise IdentityError(f"{shown!r} is not an identity name: use letters, digits and . _ - @ (at most 100)")
    if creating and name == ANONYMOUS:
        raise IdentityError("`anonymous` is built in (the anonymous principal, no key): pick another name")


def selected_name() -> str:
    """The identity in use (``graphcopy identity use``): ``identity.json``'s ``default``, else ``default``."""
    path = config_dir() / CONFIG_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT
    except (OSError, ValueError) as exc:
        raise IdentityError(f"{path} is not readable JSON ({exc}); fix or delete it "
                            "(`graphcopy identity use NAME` writes it again)") from None
    name = doc.get(DEFAULT) if isinstance(doc, dict) else None
    if not isinstance(name, str) or not name:
        raise IdentityError(f"{path} names no identity in use (expected {{\"default\": \"NAME\"}})")
    return name


def _read(name: str, *, created: bool = False) -> Identity:
    path = identity_pem_path(name)
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        if _is_principal(name):
            raise IdentityError(f"no identity named {name!r}: --identity takes an identity's name (`graphcopy "
                                "identity list`); to send calls as a principal, give --caller PRINCIPAL") from None
        raise IdentityError(f"no identity named {name!r} (`graphcopy identity list` shows them, "
                            f"`graphcopy identity new {name}` makes it)") from None
    except OSError as exc:
        raise IdentityError(f"cannot read the key of identity {name!r} ({path}): {exc.strerror}") from None
    principal, key_type = _derived(path, pem)
    return Identity(name=name, principal=principal, key_type=key_type, pem_path=path, created=created)


def _derived(path: Path, pem: bytes) -> tuple[Principal, str]:
    """The principal and key type of the key in ``pem``: from :data:`PRINCIPAL_CACHE_FILE` when it
    was written for this very PEM, else parsed (and the cache written, if the directory lets us)."""
    digest = hashlib.sha256(pem).hexdigest()
    cache = path.with_name(PRINCIPAL_CACHE_FILE)
    try:
        doc = json.loads(cache.read_text(encoding="utf-8"))
        if doc.get("pem_sha256") == digest and doc.get("key_type") in ("ed25519", "secp256k1"):
            return Principal.from_text(str(doc["principal"])), str(doc["key_type"])
    except (OSError, ValueError, AttributeError, KeyError, GraphcopyError):
        pass  # no cache, or one that is not ours to trust: parse the key
    from persist.identity.keys import key_type_of_pem, principal_of_pem

    principal, key_type = principal_of_pem(pem, str(path)), key_type_of_pem(pem, str(path))
    text = json.dumps({"pem_sha256": digest, "principal": principal.to_text(), "key_type": key_type})
    with contextlib.suppress(OSError):  # a read-only config directory: the next command parses the key again
        _replace_file(cache, text + "\n", 0o600)  # as private as the key beside it
    return principal, key_type


def _replace_file(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it, so that a reader sees
    the old file or the new one, never a part. Raises OSError."""
    temp = path.with_name(f"{_TEMP_PREFIX}{path.name}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    temp.replace(path)


def _is_principal(text: str) -> bool:
    try:
        Principal.from_text(text)
    except GraphcopyError:
        return False
    return True


def _write(name: str, pem: bytes, *, force: bool) -> Identity:
    """Write the key of ``name`` (in a temporary directory renamed into place, as dfx does)."""
    root = config_dir() / "identity"
    final = root / name
    if (final / PEM_FILE).exists() and not force:
        raise IdentityError(f"identity {name!r} exists already (`--force` replaces it, and its key is lost)")
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = root / f"{_TEMP_PREFIX}{name}"
        if temp.exists():
            shutil.rmtree(temp)  # what an interrupted creation left
        temp.mkdir(mode=0o700)
        fd = os.open(temp / PEM_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        temp.rename(final)
    except OSError as exc:
        raise IdentityError(f"cannot write identity {name!r} under {root}: {exc.strerror}") from None
    return _read(name, created=True)


def load_identity(name: str) -> Identity:
    """Identity ``name`` (``anonymous`` is built in; ``default`` is made on first need)."""
    if name == ANONYMOUS:
        return Identity(name=ANONYMOUS, principal=Principal.anonymous())
    _check_name(name)
    if name == DEFAULT and not identity_pem_path(DEFAULT).exists():
        from persist.identity.keys import generate_ed25519_pem

        return _write(DEFAULT, generate_ed25519_pem(), force=False)
    return _read(name)


def current_identity(name: str | None = None) -> Identity:
    """The identity a command acts as: ``name`` (the global ``--identity NAME``), else the one in use."""
    return load_identity(name if name is not None else selected_name())


def new_identity(name: str, *, force: bool = False) -> Identity:
    """Make identity ``name`` with a new Ed25519 key (IdentityError if it exists, unless ``force``)."""
    from persist.identity.keys import generate_ed25519_pem

    _check_name(name, creating=True)
    return _write(name, generate_ed25519_pem(), force=force)


def import_identity(name: str, pem: bytes, *, source: str = "the key file", force: bool = False) -> Identity:
    """Make identity ``name`` from a PEM private key (Ed25519 or secp256k1, as dfx writes them)."""
    from persist.identity.keys import principal_of_pem

    _check_name(name, creating=True)
    principal_of_pem(pem, source)  # refuse what is not a usable key before writing anything
    return _write(name, pem, force=force)


def use_identity(name: str) -> Identity:
    """Make ``name`` the identity in use (dfx's ``identity use``)."""
    identity = load_identity(name)
    path = config_dir() / CONFIG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _replace_file(path, json.dumps({DEFAULT: name}, indent=2) + "\n", 0o666)  # as write_text made it (umask)
    except OSError as exc:
        raise IdentityError(f"cannot write {path}: {exc.strerror}") from None
    return identity


def list_identities() -> list[Identity]:
    """Every identity of the user, by name (``anonymous`` included); keys that cannot be read are left out."""
    root = config_dir() / "identity"
    found = [Identity(name=ANONYMOUS, principal=Principal.anonymous())]
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") or not (entry / PEM_FILE).is_file() or not _NAME.match(entry.name):
                continue
            try:
                found.append(_read(entry.name))
            except IdentityError:
                continue
    return sorted(found, key=lambda i: i.name)


def remove_identity(name: str) -> None:
    """Delete identity ``name`` and its key. Not ``anonymous``, not the identity in use (as dfx)."""
    if name == ANONYMOUS:
        raise IdentityError("`anonymous` is built in and cannot be removed")
    _check_name(name)
    if name == selected_name():
        raise IdentityError(f"identity {name!r} is in use; `graphcopy identity use OTHER` first (the key is lost "
                            "when it is removed)")
    directory = config_dir() / "identity" / name
    if not (directory / PEM_FILE).exists():
        raise IdentityError(f"no identity named {name!r} (`graphcopy identity list` shows them)")
    try:
        shutil.rmtree(directory)
    except OSError as exc:
        raise IdentityError(f"cannot remove identity {name!r} ({directory}): {exc.strerror}") from None


def held_identity(principal: Principal) -> Identity | None:
    """The user's identity whose principal this is (so the user holds its key), or None."""
    for identity in list_identities():
        if identity.principal == principal:
            return identity
    return None
