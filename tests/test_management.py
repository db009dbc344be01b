"""The management canister and the IC around a canister, with real Motoko programs compiled by the
pinned moc (``tests/canisters/family/``): actor classes created, upgraded, stopped and deleted by
their parent, a stable map of actor-class nodes through a graph copy of the parent, a canister
snapshotting itself, environment variables, and the texts a canister reads when things fail,
byte for byte as the replica writes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from migrate import upgrade
from persist import api
from persist.errors import CanisterRejectError, CanisterTrapError
from persist.execution.management.dispatch import METHODS
from persist.execution.management.interface import management_interface
from persist.host.system_api.subnet import SUBNET_ID
from persist.principal import Principal
from persist.session import Store, open_store
from tests.canister_helpers import Canister, init_arg
from toolchain.moc import compile_motoko

FAMILY = Path(__file__).parent / "canisters" / "family"
MANAGEMENT = "aaaaa-aa"
runner = CliRunner()

# The replica's texts, as Motoko's own test expectations record them (caffeinelabs/motoko at
# da83d273, 2026-01-16). A canister's trap reaching its caller, test/run-drun/ok/error-codes.drun-run.ok
# lines 4-5 (the "canister_error:" before it is that program's own prefix):
REPLICA_TRAP = ("IC0503: Error from Canister rwlgt-iiaaa-aaaaa-aaaaa-cai: Canister called `ic0.trap` with message: "
                "'assertion failed at error-codes.mo:11.33-11.50'.\n"
                "Consider gracefully handling failures from this canister or altering the canister to handle "
                "exceptions. See documentation: "
                "https://internetcomputer.org/docs/current/references/execution-errors#trapped-explicitly")
# A callback trapping and its call_on_cleanup trapping too, test/run-drun/ok/try-finally-trap.drun.ok
# lines 9-13:
REPLICA_CLEANUP = ("IC0503: Error from Canister rwlgt-iiaaa-aaaaa-aaaaa-cai: Canister called `ic0.trap` with message: "
                   "'assertion failed at try-finally-trap.mo:8.7-8.19'\n\ncall_on_cleanup also failed:\n\n"
                   "Canister called `ic0.trap` with message: 'assertion failed at try-finally-trap.mo:12.7-12.19'")
DRUN_CANISTER = "rwlgt-iiaaa-aaaaa-aaaaa-cai"


def build(name: str) -> bytes:
    return compile_motoko(FAMILY / f"{name}.mo").wasm


def blob(data: bytes) -> str:
    """``data`` as a Candid blob literal."""
    return 'blob "' + "".join(f"\\{b:02x}" for b in data) + '"'


def nat(text: str) -> int:
    return int(text.strip("()").split(":")[0].replace("_", "").strip())


@pytest.fixture
def store(sqlite_url: str, moc: None) -> Iterator[Store]:
    with open_store(sqlite_url) as st:
        yield st


@pytest.fixture
def both(db_url: str, moc: None) -> Iterator[Store]:
    """A store on SQLite and on PostgreSQL."""
    with open_store(db_url) as st:
        yield st


@pytest.fixture
def family(store: Store) -> Canister:
    return make_family(store)


def make_family(store: Store) -> Canister:
    """A parent and three Node children."""
    api.install(store, "parent", build("parent"))
    parent = Canister(store, "parent")
    assert parent('spawn', '("a", 1)') == "(1 : nat)"
    assert parent('spawn', '("b", 2)') == "(2 : nat)"
    assert parent('spawn', '("c", 3)') == "(3 : nat)"
    return parent


def child(parent: Canister, k: int) -> str:
    return parent("principalOf", f"({k})").split('"')[1]


# --------------------------------------------------------------------------- actor classes


def test_actor_classes_are_first_class_canisters_upgraded_from_their_parent(store: Store, family: Canister) -> None:
    parent_id = api.status(store, "parent").principal
    kids = [child(family, k) for k in (1, 2, 3)]
    # Ids allocated like the replica's, after the parent's (index 0).
    assert kids == [Principal.from_canister_index(i).to_text() for i in (1, 2, 3)]
    listed = {s.name: s for s in api.list_canisters(store)}
    for kid in kids:
        assert listed[kid].parent == parent_id and listed[kid].principal == kid
        assert listed[kid].controllers == [parent_id]  # the creator controls its child
    assert [s.name for s in api.list_canisters(store, parent="parent")] == kids
    res = runner.invoke(app, ["--db", store.url, "list", "--json"])
    assert {row["name"]: row["parent"] for row in json.loads(res.stdout)} == {"parent": None,
                                                                              **dict.fromkeys(kids, parent_id)}
    assert "parent" in runner.invoke(app, ["--db", store.url, "list"]).stdout.splitlines()[1]  # the column
    # Every child runs the class module the parent embeds.
    class_hash = listed[kids[0]].module_hash
    assert {listed[k].module_hash for k in kids} == {class_hash}
    assert build("node") in build("parent")
    assert hashlib.sha256(build("node")).hexdigest() == class_hash

    assert family("addTo", "(1, 10)") == "(11 : nat)"
    # `(system Node.Node)(#upgrade_with_persistence { wasm_memory_persistence = #keep; canister = n })`
    assert family("upgradeAll", '("v2")') == "(3 : nat)"
    described = family("describe")
    for k, value in ((1, 11), (2, 2), (3, 3)):
        assert f'record {{ {k} : nat; "v2"; {value} : nat; 1 : nat }}' in described
    history = [h.kind for h in api.status(store, kids[0]).history]
    assert history == ["create", "install", "upgrade"]
    # canister_info, as the parent reads it: creation, install, upgrade.
    assert family("info", "(1)") == f'(3 : nat64, vec {{ principal "{parent_id}" }})'
    # A user who controls nothing here is refused with the replica's text.
    with open_store(store.url, caller="anonymous") as anon:
        with pytest.raises(CanisterRejectError) as rej:
            Canister(anon, MANAGEMENT)("canister_status", f'(record {{ canister_id = principal "{kids[0]}" }})')
    assert rej.value.code == 5
    assert rej.value.reject_message == (f"IC0512: Only controllers of canister {kids[0]} can call ic00 method "
                                        "canister_status")


def test_a_parent_stops_and_deletes_its_child(both: Store) -> None:
    store, family = both, make_family(both)
    kids = [child(family, k) for k in (1, 2, 3)]
    # Deleting a running child: the replica's reject (CanisterManagerError::DeleteCanisterNotStopped).
    assert family.value("deleteRunning", "(2)") == (
        f"#canister_error IC0510: Canister {kids[1]} must be stopped before it is deleted.\nStop the canister "
        "before deleting it. See documentation: "
        "https://internetcomputer.org/docs/current/references/execution-errors#delete-canister-not-stopped")
    # stop_canister waits for the child's open call context: node 1 relays a call to node 3, and
    # the stop is answered only after that call came back (and node 1 answered the parent).
    assert family("stopWhileBusy", "(1, 3)") == '(4 : nat, "#stopped")'
    assert api.status(store, kids[0]).status == "running"  # started again
    assert family("stopAndDelete", "(2)") == '("#stopped")'
    assert family("keys") == "(vec { 1 : nat; 3 : nat })"
    assert kids[1] not in {s.name for s in api.list_canisters(store)}
    st = api.status(store, "parent")
    assert (st.pending_messages, st.open_call_contexts) == (0, 0)


def test_a_stable_map_of_actor_class_nodes_survives_a_graph_copy_of_the_parent(store: Store,
                                                                             family: Canister) -> None:
    family("addTo", "(2, 40)")
    before = family("describe")
    keys = family("keys")
    principals = [child(family, k) for k in (1, 2, 3)]
    outcome = upgrade(store, "parent", build("parent"), mode="graph-copy")
    assert outcome.path == "graph-copy" and outcome.migration is not None
    assert outcome.migration["phase"] == "done"
    # Each child is reported: it runs the class module the old and the new parent both embed.
    assert [c.principal for c in outcome.children] == principals
    assert all(c.in_old_parent and c.in_new_parent for c in outcome.children)
    assert "nothing to do" in outcome.children[0].describe()
    # The tree of actor references came through the graph copy: the same nodes, still callable.
    assert family("keys") == keys
    assert [child(family, k) for k in (1, 2, 3)] == principals
    assert family("describe") == before
    assert family("addTo", "(2, 1)") == "(43 : nat)"


def test_upgrade_of_a_parent_reports_children_left_on_another_class_module(store: Store, family: Canister) -> None:
    # A parent module that does not embed the class its children run (any other Motoko actor).
    other = build("selfsnap")
    outcome = upgrade(store, "parent", other, mode="replace", force=True)
    assert len(outcome.children) == 3
    report = outcome.children[0]
    assert report.in_old_parent and not report.in_new_parent
    assert "upgrade this child too" in report.describe()
    # graphcopy upgrade prints the same, one line per child.
    api.install(store, "p2", build("parent"))
    Canister(store, "p2")("spawn", '("x", 1)')
    new_wasm = FAMILY.parent.parent / ".." / "examples" / "counter" / "counter.wasm"
    res = runner.invoke(app, ["--db", store.url, "upgrade", "p2", str(new_wasm.resolve()), "--mode", "replace",
                              "--force"])
    assert res.exit_code == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if line.strip().startswith("child ")]
    assert len(lines) == 1 and "the class module of the old parent" in lines[0]


def test_a_pipeline_selects_a_parent_and_its_children(store: Store, family: Canister, tmp_path: Path) -> None:
    from migrate.pipeline import load_pipeline, pipeline_status, run_pipeline

    node = build("node")
    (tmp_path / "node.wasm").write_bytes(node)
    api.install(store, "loner", node, arg=init_arg(node, '("z", 9)'))
    spec = tmp_path / "family.toml"
    spec.write_text('name = "nodes"\nmodule = "node.wasm"\nchildren_of = ["par*"]\nsteps = ["upgrade"]\n'
                    'mode = "keep"\n')
    pipeline = load_pipeline(spec)
    kids = [child(family, k) for k in (1, 2, 3)]
    assert sorted(s.canister for s in pipeline_status(store, pipeline)) == sorted(kids)  # not "loner"
    report = run_pipeline(store, pipeline)
    assert report.ok and sorted(c.canister for c in report.canisters) == sorted(kids)


# --------------------------------------------------------------------------- environment variables


def test_environment_variables_set_by_update_settings_are_read_by_the_canister(store: Store,
                                                                              family: Canister) -> None:
    family("setEnv", '(2, vec { record { name = "ZETA"; value = "last" }; record { name = "ALPHA"; value = "1" } })')
    assert family("childEnv", '(2, "ALPHA")') == '(opt "1")'
    assert family("childEnv", '(2, "NOPE")') == "(null)"
    assert family("childEnvNames", "(2)") == '(vec { "ALPHA"; "ZETA" })'  # sorted by name, as the replica keeps them
    assert family("childEnvNames", "(1)") == "(vec {})"
    kid = child(family, 2)
    assert api.status(store, kid).environment_variables == {"ALPHA": "1", "ZETA": "last"}
    # The parent controls the child, the user does not: from the CLI, as the parent's controller,
    # update_settings on the parent itself, read back with canister_status.
    mgmt = Canister(store, MANAGEMENT)
    parent_id = api.status(store, "parent").principal
    mgmt("update_settings", f'(record {{ canister_id = principal "{parent_id}"; settings = record {{ '
                            'environment_variables = opt vec { record { name = "MODE"; value = "test" } } } })')
    status = mgmt.value("canister_status", f'(record {{ canister_id = principal "{parent_id}" }})')
    assert isinstance(status, dict)
    assert status["settings"]["environment_variables"] == [{"name": "MODE", "value": "test"}]
    assert status["status"] == {"running": None} and status["cycles"] == api.status(store, "parent").cycles


# --------------------------------------------------------------------------- snapshots


def test_a_motoko_canister_takes_and_loads_its_own_snapshot(both: Store) -> None:
    store = both
    api.install(store, "self", build("selfsnap"))
    me = api.status(store, "self").principal
    mgmt, snap = Canister(store, MANAGEMENT), Canister(store, "self")
    # It must control itself to snapshot itself; until then the replica's refusal.
    with pytest.raises(CanisterRejectError, match=f"IC0512: Only the controllers of the canister {me} can control"):
        snap("snap")
    mgmt("update_settings", f'(record {{ canister_id = principal "{me}"; settings = record {{ controllers = opt vec '
                            f'{{ principal "{store.identity.to_text()}"; principal "{me}" }} }} }})')
    snap("set", "(5)")
    first = snap("snap")
    snap("set", "(9)")
    assert snap("get") == "(9 : nat)"
    snap("restore")
    assert snap("get") == "(5 : nat)"  # its own snapshot, loaded by itself
    # The same snapshots as `graphcopy snapshot`: one taken here, listed there and by the canister.
    listed = api.snapshots.list_snapshots(store, "self")
    assert len(listed) == 1
    snapshot_id = listed[0].id.to_bytes(8, "big") + Principal.from_text(me).raw
    assert first == f"({blob(snapshot_id)})"
    assert snap("snapshots") == f"(vec {{ {blob(snapshot_id)} }})"
    assert api.status(store, "self").history[-1].kind == "snapshot-load"
    # Deleting through the CLI is deleting it for the canister too.
    api.snapshots.delete_snapshot(store, "self", listed[0].id)
    assert snap("snapshots") == "(vec {})"


# --------------------------------------------------------------------------- texts a canister reads


def test_a_callee_trap_reaches_the_caller_as_the_replica_writes_it(store: Store, family: Canister) -> None:
    kid = child(family, 1)
    got = family.value("childTraps", '(1, "boom")')
    expected = REPLICA_TRAP.replace(DRUN_CANISTER, kid).replace("assertion failed at error-codes.mo:11.33-11.50",
                                                                 "boom")
    assert got == expected


def test_a_failed_cleanup_reaches_the_caller_as_the_replica_writes_it(store: Store, family: Canister) -> None:
    kid = child(family, 1)
    got = family.value("childCleanupFails", "(1)")
    expected = (REPLICA_CLEANUP.replace(DRUN_CANISTER, kid)
                .replace("try-finally-trap.mo:8.7-8.19", "node.mo:42.7-42.19")
                .replace("try-finally-trap.mo:12.7-12.19", "node.mo:45.7-45.19"))
    assert got == expected
    assert any(line.message == "cleanup runs" for line in api.logs(store, kid))


def test_prints_of_a_trapping_install_are_kept(store: Store) -> None:
    wasm = build("inittrap")
    with pytest.raises(CanisterTrapError) as info:
        api.install(store, "fails", wasm)
    assert info.value.prints == ["initialising", "about to fail"]
    assert "init fails on purpose" in str(info.value)
    assert api.list_canisters(store) == []
    # The CLI shows them although no canister is left to hold them.
    res = runner.invoke(app, ["--db", store.url, "install", "fails", str(FAMILY / "inittrap.mo")])
    assert res.exit_code == 2  # a .mo source is not a module
    mod = Path(store.url.removeprefix("sqlite:///")).parent / "inittrap.wasm"
    mod.write_bytes(wasm)
    res = runner.invoke(app, ["--db", store.url, "install", "fails", str(mod)])
    assert res.exit_code == 7 and "initialising" in res.stderr and "about to fail" in res.stderr
    # Through the management canister the canister exists afterwards: its log keeps them, and the
    # installer gets the replica's reject.
    mgmt = Canister(store, MANAGEMENT)
    created = mgmt("provisional_create_canister_with_cycles", "(record {})")
    target = created.split('"')[1]
    empty_args = blob(b"DIDL\x00\x00")
    with pytest.raises(CanisterRejectError) as rej:
        mgmt("install_code", f'(record {{ mode = variant {{ install }}; canister_id = principal "{target}"; '
                             f"wasm_module = {blob(wasm)}; arg = {empty_args} }})")
    assert rej.value.code == 5
    assert rej.value.reject_message == REPLICA_TRAP.replace(DRUN_CANISTER, target).replace(
        "assertion failed at error-codes.mo:11.33-11.50", "init fails on purpose")
    assert [(line.kind, line.message) for line in api.logs(store, target)] == [
        ("print", "initialising"), ("print", "about to fail"),
        ("trap", "Canister called `ic0.trap` with message: 'init fails on purpose'")]
    assert api.status(store, target).module_hash is None
    # fetch_canister_logs (a query call) returns them as the replica does, traps as "[TRAP]: …".
    logs = mgmt.value("fetch_canister_logs", f'(record {{ canister_id = principal "{target}" }})')
    assert isinstance(logs, dict)
    assert [r["content"] for r in logs["canister_log_records"]] == [
        b"initialising", b"about to fail", b"[TRAP]: Canister called `ic0.trap` with message: 'init fails on purpose'"]


# --------------------------------------------------------------------------- the management canister from the CLI


def test_cli_calls_the_management_canister_with_its_interface(both: Store) -> None:
    store = both
    url = store.url
    node = build("node")
    res = runner.invoke(app, ["--db", url, "call", MANAGEMENT, "provisional_create_canister_with_cycles",
                              "(record { amount = opt 5_000_000 })"])
    assert res.exit_code == 0, res.stderr
    target = res.stdout.split('"')[1]
    # The chunked install: upload, list, install from the chunk store.
    size = 200_000
    parts = [node[i:i + size] for i in range(0, len(node), size)]
    for part in parts:
        res = runner.invoke(app, ["--db", url, "call", MANAGEMENT, "upload_chunk",
                                  f'(record {{ canister_id = principal "{target}"; chunk = {blob(part)} }})'])
        assert res.exit_code == 0, res.stderr
        assert blob(hashlib.sha256(part).digest()) in res.stdout
    stored = json.loads(runner.invoke(app, ["--db", url, "call", MANAGEMENT, "stored_chunks",
                                            f'(record {{ canister_id = principal "{target}" }})', "--json"]).stdout)
    assert len(stored["value"][0]) == len(parts)
    chunk_list = "; ".join(f"record {{ hash = {blob(hashlib.sha256(p).digest())} }}" for p in parts)
    arg = blob(init_arg(node, '("chunked", 7)'))
    res = runner.invoke(app, ["--db", url, "call", MANAGEMENT, "install_chunked_code",
                              f'(record {{ mode = variant {{ install }}; target_canister = principal "{target}"; '
                              f"chunk_hashes_list = vec {{ {chunk_list} }}; "
                              f"wasm_module_hash = {blob(hashlib.sha256(node).digest())}; "
                              f"arg = {arg} }})"])
    assert res.exit_code == 0, res.stderr
    assert Canister(store, target)("get") == '(record { tag = "chunked"; value = 7 : nat; upgrades = 0 : nat })'
    # canister_status is a query of the interface; its reply is printed as dfx prints it.
    res = runner.invoke(app, ["--db", url, "call", MANAGEMENT, "canister_status",
                              f'(record {{ canister_id = principal "{target}" }})'])
    assert res.exit_code == 0 and "cycles = 5_000_000 : nat" in res.stdout
    assert f"module_hash = opt {blob(hashlib.sha256(node).digest())}" in res.stdout
    # Methods users may not call, and methods that do not exist.
    res = runner.invoke(app, ["--db", url, "call", MANAGEMENT, "raw_rand"])
    assert res.exit_code == 8 and "IC0406: Only canisters can call ic00 method raw_rand" in res.stderr
    res = runner.invoke(app, ["--db", url, "call", MANAGEMENT, "nope"])
    assert res.exit_code == 2 and "the management canister has no method 'nope'" in res.stderr
    # graphcopy list shows who created what (here: nobody; the user did).
    assert json.loads(runner.invoke(app, ["--db", url, "list", "--json"]).stdout)[0]["parent"] is None


def test_methods_a_local_host_cannot_serve_reject_without_trapping(store: Store) -> None:
    api.install(store, "platform", build("platform"))
    plat = Canister(store, "platform")
    assert plat("randomBytes") == "(32 : nat)"
    assert plat.value("sign") == (
        '#destination_invalid Unable to route management canister request sign_with_ecdsa: ChainKeyError("'
        f'Requested unknown threshold key ecdsa:Secp256k1:key_1 on subnet {SUBNET_ID.to_text()}, '
        'subnet has keys: []")')
    assert str(plat.value("outcall")).startswith("#system_transient graphcopy makes no HTTP outcalls")
    assert plat.value("unknown") == "#canister_error IC0536: Management canister has no method 'no_such_method'"
    # Cycles: attached cycles leave the sender, deposit_cycles puts them on the target.
    api.install(store, "other", build("selfsnap"))
    other = api.status(store, "other").principal
    before = api.status(store, "platform").cycles
    balance, reported = plat("deposit", f'(principal "{other}", 1_000_000)').strip("()").split(", ")
    assert nat(balance) == nat(reported) == before - 1_000_000
    assert api.status(store, "other").cycles == before + 1_000_000
    # Attaching more than the balance: the replica's out-of-cycles trap (InsufficientCyclesBalance).
    have = api.status(store, "platform").cycles
    with pytest.raises(CanisterTrapError) as info:
        plat("deposit", f'(principal "{other}", {have + 5})')
    me = api.status(store, "platform").principal
    assert info.value.trap == (f"Canister {me} is out of cycles: please top up the canister with at least 5 "
                               "additional cycles")
    st = api.status(store, "platform")
    assert (st.pending_messages, st.open_call_contexts, st.cycles) == (0, 0, have)


def test_the_management_interface_is_the_current_spec() -> None:
    methods = management_interface().methods
    for name in ("create_canister", "install_chunked_code", "take_canister_snapshot", "fetch_canister_logs",
                 "canister_metrics", "list_canisters", "vetkd_derive_key"):
        assert name in methods
    assert methods["canister_status"].is_query and methods["fetch_canister_logs"].is_query
    assert set(methods) == set(METHODS)  # every method is served or refused on purpose
