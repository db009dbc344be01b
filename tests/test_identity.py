"""Identities as on the IC (``persist.identity``, ``graphcopy identity``).

* keys and principals: the self-authenticating id of a key is the one an independent
  implementation (icp-py-core's ``icp_identity``) derives; only the anonymous principal and
  self-authenticating ones send ingress messages;
* the per-user identity directory, laid out like dfx's, ``default`` made on first need;
* no impersonation: a principal typed with ``--caller`` is never a controller, so controller-only
  operations (upgrade, stop, delete, snapshots, controller-gated management calls, Motoko's
  ``__motoko_*`` endpoints) cannot be reached by typing a controller's principal;
* ``identity adopt``: stores whose canisters the store's own identity controls are not locked out.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from cli.main import app
from persist import api
from persist.errors import InvalidArgumentError, NotAuthorizedError
from persist.identity import (
    IdentityError,
    check_ingress_sender,
    current_identity,
    generate_ed25519_pem,
    held_identity,
    list_identities,
    load_identity,
    new_identity,
    parse_sender,
    principal_of_pem,
    remove_identity,
    selected_name,
    use_identity,
)
from persist.identity.keys import IdentityKeyError, public_key_der
from persist.principal import Principal
from persist.session import open_store, store_identity
from tests.upgrade_helpers import history_kinds

ROOT = Path(__file__).resolve().parent.parent
COUNTER = ROOT / "examples" / "counter" / "counter.wasm"
COUNTER_V2 = ROOT / "examples" / "counter" / "counter_v2.wasm"
runner = CliRunner()


@pytest.fixture(autouse=True)
def own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user of their own for each test: an empty identity directory."""
    config = tmp_path / "config"
    monkeypatch.setenv("GRAPHCOPY_CONFIG_DIR", str(config))
    return config


def gc(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    assert "Traceback" not in res.output
    return res.exit_code, res.stdout, res.stderr


# ------------------------------------------------------------------------------- keys, principals


def test_the_principal_of_a_key_is_the_self_authenticating_id_others_derive() -> None:
    from icp_identity import Identity as IcpIdentity

    pem = generate_ed25519_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    der = public_key_der(pem)
    assert der[:12].hex() == "302a300506032b6570032100" and len(der) == 44  # RFC 8410 SubjectPublicKeyInfo
    principal = principal_of_pem(pem)
    assert len(principal.raw) == 29 and principal.raw[-1] == 0x02
    assert principal.to_text() == IcpIdentity.from_pem(pem.decode()).sender().to_str()
    # dfx's default key type, secp256k1 (SEC1 PEM), imports with the same principal as elsewhere.
    k1 = ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    assert principal_of_pem(k1).to_text() == IcpIdentity.from_pem(k1.decode()).sender().to_str()


@pytest.mark.parametrize("pem", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_a_file_that_is_no_key_is_one_line(pem: bytes) -> None:
    with pytest.raises(IdentityKeyError) as info:
        principal_of_pem(pem, "k.pem")
    assert "\n" not in str(info.value) and "k.pem" in str(info.value)


def test_a_p256_key_is_no_ic_identity() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(IdentityKeyError, match="Ed25519 or secp256k1"):
        principal_of_pem(p256)


@pytest.mark.parametrize(("text", "reason"), [
    ("rwlgt-iiaaa-aaaaa-aaaaa-cai", "is a canister id (an opaque principal, class 0x01)"),
    ("aaaaa-aa", "is the management canister"),
    (Principal(b"\x05" * 10 + b"\x03").to_text(), "is a derived principal (class 0x03)"),
    (Principal(b"\x05" * 3 + b"\x7f").to_text(), "is a reserved principal (class 0x7f)"),
    (Principal(b"\x05" * 5 + b"\x02").to_text(), "is not a self-authenticating principal"),
])
def test_only_users_send_ingress_messages(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(f"cannot call as {text}: it {reason}")):
        parse_sender(text)
    with pytest.raises(InvalidArgumentError, match=re.escape(reason)):
        open_store("sqlite://", allow_in_memory=True, caller=text)


def test_the_anonymous_and_self_authenticating_principals_send() -> None:
    assert parse_sender("anonymous") == Principal.anonymous() == parse_sender("2vxsx-fae")
    p = Principal.self_authenticating(b"some key")
    assert check_ingress_sender(p) == p and parse_sender(p.to_text()) == p
    with pytest.raises(InvalidArgumentError, match="--caller takes a principal"):
        parse_sender("not-a-principal")


# ---------------------------------------------------------------------------- the identity directory


def test_the_directory_is_laid_out_like_dfx_and_default_is_made_on_first_need(own_config: Path) -> None:
    assert not own_config.exists()
    assert selected_name() == "default"
    first = current_identity()
    assert first.name == "default" and first.created and first.key_type == "ed25519"
    pem = own_config / "identity" / "default" / "identity.pem"
    assert first.pem_path == pem and stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE(pem.parent.stat().st_mode) == 0o700
    again = current_identity()
    assert again.principal == first.principal and not again.created
    alice = new_identity("alice")
    assert use_identity("alice").principal == alice.principal
    assert json.loads((own_config / "identity.json").read_text()) == {"default": "alice"}
    assert current_identity().name == "alice" and current_identity("default").principal == first.principal
    assert [i.name for i in list_identities()] == ["alice", "anonymous", "default"]
    assert held_identity(alice.principal) == load_identity("alice")
    assert held_identity(Principal.self_authenticating(b"nobody")) is None


def test_the_principal_is_cached_beside_the_key_for_that_key_only(own_config: Path) -> None:
    """Every command needs the principal of the identity in use; deriving it imports `cryptography`.
    It is kept in principal.json under the PEM's SHA-256: a command with the cache does not import
    `cryptography`, and a key that changes (or a cache that lies) is parsed again."""
    import subprocess
    import sys

    alice = new_identity("alice")
    cache = own_config / "identity" / "alice" / "principal.json"
    doc = json.loads(cache.read_text())
    assert doc["principal"] == alice.principal.to_text() and doc["key_type"] == "ed25519"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    probe = ("import sys; from persist.identity import load_identity; p = load_identity('alice').principal; "
             "print(p.to_text(), 'cryptography' in sys.modules)")
    env = {"GRAPHCOPY_CONFIG_DIR": str(own_config), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [alice.principal.to_text(), "False"]

    other = generate_ed25519_pem()  # a new key under the same name: the old cache no longer matches
    (own_config / "identity" / "alice" / "identity.pem").write_bytes(other)
    assert load_identity("alice").principal == principal_of_pem(other) != alice.principal
    assert json.loads(cache.read_text())["principal"] == principal_of_pem(other).to_text()

    forged = {**json.loads(cache.read_text()), "pem_sha256": "00" * 32, "principal": "aaaaa-aa"}
    cache.write_text(json.dumps(forged))
    assert load_identity("alice").principal == principal_of_pem(other)
    cache.write_text("not json")
    assert load_identity("alice").principal == principal_of_pem(other)


def test_identity_rules() -> None:
    new_identity("bob")
    with pytest.raises(IdentityError, match="exists already"):
        new_identity("bob")
    replaced = new_identity("bob", force=True)
    assert replaced.principal == load_identity("bob").principal
    with pytest.raises(IdentityError, match="built in"):
        new_identity("anonymous")
    with pytest.raises(IdentityError, match="is not an identity name"):
        new_identity("../escape")
    with pytest.raises(IdentityError, match="no identity named 'carol'"):
        load_identity("carol")
    with pytest.raises(IdentityError, match="to send calls as a principal, give --caller PRINCIPAL"):
        load_identity("2vxsx-fae")
    use_identity("bob")
    with pytest.raises(IdentityError, match="is in use"):
        remove_identity("bob")
    with pytest.raises(IdentityError, match="built in and cannot be removed"):
        remove_identity("anonymous")
    use_identity("default")
    remove_identity("bob")
    assert [i.name for i in list_identities()] == ["anonymous", "default"]
    assert load_identity("anonymous").principal == Principal.anonymous()


def test_a_broken_config_file_is_one_line(own_config: Path) -> None:
    own_config.mkdir()
    (own_config / "identity.json").write_text("{not json")
    code, _, err = gc("identity", "whoami")
    assert code == 2 and "identity.json is not readable JSON" in err and len(err.strip().splitlines()) == 1


def test_identity_commands(tmp_path: Path) -> None:
    code, out, _ = gc("identity", "list")
    assert code == 0 and out.splitlines() == ["anonymous", "default *"]
    code, out, _ = gc("identity", "new", "alice", "--json")
    alice = json.loads(out)
    assert code == 0 and alice["name"] == "alice" and alice["key_type"] == "ed25519"
    assert gc("identity", "get-principal", "--identity", "alice")[1].strip() == alice["principal"]
    assert gc("--identity", "alice", "identity", "whoami")[1].strip() == "alice"
    assert gc("identity", "use", "alice")[0] == 0
    assert gc("identity", "whoami")[1].strip() == "alice"
    assert json.loads(gc("identity", "list", "--json")[1])["current"] == "alice"
    pem = tmp_path / "k.pem"
    pem.write_bytes(generate_ed25519_pem())
    code, out, _ = gc("identity", "import", "bob", str(pem))
    assert code == 0 and principal_of_pem(pem.read_bytes()).to_text() in out
    code, _, err = gc("identity", "import", "bob", str(pem))
    assert code == 2 and "exists already" in err
    code, _, err = gc("identity", "remove", "alice")
    assert code == 2 and "in use" in err
    assert gc("identity", "use", "default")[0] == 0 and gc("identity", "remove", "alice")[0] == 0
    code, _, err = gc("--identity", "nosuch", "list", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "no identity named 'nosuch'" in err
    code, _, err = gc("list", "--identity", "bob", "--caller", "anonymous", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "not both" in err


# ------------------------------------------------------------------------------- no impersonation


def test_a_typed_principal_is_never_a_controller(tmp_path: Path, own_config: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    alice = new_identity("alice")
    assert gc("--identity", "alice", "install", "c", str(COUNTER), "--db", url)[0] == 0
    assert gc("--identity", "alice", "call", "c", "inc", "--db", url)[1].strip() == "(1 : nat)"
    # The same principal typed by someone who does not hold alice's key (here: after it is removed).
    remove_identity("alice")
    who = alice.principal.to_text()
    for args in (["upgrade", "c", str(COUNTER_V2)], ["stop", "c"], ["delete", "c", "--yes"],
                 ["snapshot", "take", "c"], ["rollback", "c"], ["stabilize-before-upgrade", "c"],
                 ["install", "c", str(COUNTER), "--mode", "reinstall", "--yes"]):
        code, _, err = gc(*args, "--caller", who, "--db", url)
        assert code == 5, (args, err)
        assert "graphcopy does not hold" in err or "does not hold its key" in err, (args, err)
    # Calls to the canister it controls (the canister's own controller checks would let it through):
    for method in ("inc", "__motoko_stabilize_before_upgrade", "get"):
        code, _, err = gc("call", "c", method, "--caller", who, "--db", url)
        assert code == 5 and "controls 'c'" in err, (method, err)
    # Controller-gated management calls, and every other one.
    with open_store(url, caller=who) as st:
        cid = api.status(st, "c").principal
    code, _, err = gc("call", "aaaaa-aa", "canister_status", f'(record {{ canister_id = principal "{cid}" }})',
                      "--caller", who, "--db", url)
    assert code == 5 and "given as a principal (--caller)" in err
    # Nothing changed: still running alice's module, count 1, no snapshot.
    with open_store(url, caller=who) as st:  # a script holding the key is trusted
        assert api.status(st, "c").status == "running" and history_kinds(st, "c").count("upgrade") == 0
        from persist.api import snapshots

        assert snapshots.list_snapshots(st, "c") == []
        assert api.call(st, "c", "get").reply.endswith(b"\x01")


def test_a_typed_principal_may_call_as_a_user(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    assert gc("install", "d", str(ROOT / "examples" / "directory" / "directory.wasm"), "--db", url)[0] == 0
    someone = Principal.self_authenticating(b"a user graphcopy holds no key of").to_text()
    code, out, _ = gc("call", "d", "whoami", "--caller", someone, "--db", url)
    assert code == 0 and out.strip() == f'(principal "{someone}")'
    # One of the user's own principals typed with --caller is that identity: it controls.
    mine = current_identity().principal.to_text()
    assert gc("stop", "d", "--caller", mine, "--db", url)[0] == 0
    code, _, err = gc("install", "e", str(COUNTER), "--caller", someone, "--db", url)
    assert code == 5 and "given as a principal (--caller)" in err  # it would control what it creates


def test_the_api_refuses_an_unheld_caller_as_controller(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with open_store(url) as st:
        api.install(st, "c", COUNTER.read_bytes())
        me = st.identity.to_text()
    with open_store(url, caller=me, caller_held=False) as st, pytest.raises(NotAuthorizedError):
        api.stop(st, "c")


# ---------------------------------------------------------------------------------------- adopt


def test_adopt_hands_the_store_identitys_canisters_to_the_user(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    # A store from before named identities: its canisters are controlled by the store's own identity.
    with open_store(url) as st:
        own = store_identity(st.engine).to_text()
    with open_store(url, caller=own) as st:
        api.install(st, "a", COUNTER.read_bytes())
        api.install(st, "b", COUNTER.read_bytes())
    code, _, err = gc("upgrade", "a", str(COUNTER_V2), "--db", url)
    assert code == 5 and "`graphcopy identity adopt` makes your identity a controller too" in err
    code, out, _ = gc("identity", "adopt", "--dry-run", "--db", url)
    assert code == 0 and "would make" in out and "2 canisters: a, b" in out
    assert gc("upgrade", "a", str(COUNTER_V2), "--db", url)[0] == 5  # a dry run changed nothing
    code, out, _ = gc("identity", "adopt", "--json", "--db", url)
    doc = json.loads(out)
    me = current_identity().principal.to_text()
    assert code == 0 and doc["adopted"] == ["a", "b"] and doc["principal"] == me and doc["store_identity"] == own
    assert gc("upgrade", "a", str(COUNTER_V2), "--db", url)[0] == 0
    with open_store(url) as st:
        assert api.status(st, "b").controllers == [own, me]
        assert history_kinds(st, "b")[-1] == "controllers"
    code, out, _ = gc("identity", "adopt", "--db", url)
    assert code == 0 and "nothing to adopt" in out and "already a controller of: a, b" in out
    assert gc("--identity", "anonymous", "identity", "adopt", "--db", url)[0] == 2
