"""Real Motoko canisters (compiled by the pinned moc) running on graphcopy's host.

These exercise the host the way users will: EOP heaps, moc's runtime, `await` (self-calls and
calls between canisters, with callbacks through the module's table), timers, stable memory and
regions, and the environment functions, with Candid text in and out as the CLI sends it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from persist import api
from persist.candid import encode_args
from persist.errors import CanisterRejectError, CanisterTrapError
from persist.session import Store, open_store
from tests.canister_helpers import Canister, install
from toolchain.moc import compile_motoko

CANISTERS = Path(__file__).parent / "canisters"
EXAMPLES = Path(__file__).parent.parent / "examples"


def build(name: str) -> bytes:
    return compile_motoko(CANISTERS / f"{name}.mo").wasm


@pytest.fixture
def store(sqlite_url: str, moc: None) -> Store:
    with open_store(sqlite_url) as st:
        yield st  # type: ignore[misc]


def test_counter_state_survives_new_store_on_both_backends(db_url: str, moc: None) -> None:
    wasm = (EXAMPLES / "counter" / "counter.wasm").read_bytes()
    with open_store(db_url) as st:
        c = install(st, "counter", wasm)
        assert c("inc") == "(1 : nat)"
        assert c("add", "(41 : nat)") == "(42 : nat)"
        assert c("get") == "(42 : nat)"
    with open_store(db_url) as st:
        c = Canister(st, "counter")
        assert c("get") == "(42 : nat)"
        assert c("inc") == "(43 : nat)"
        # queries discard their changes: moc's runtime would trap on the next message otherwise
        for _ in range(3):
            assert c("get") == "(43 : nat)"
        assert c("inc") == "(44 : nat)"


def test_ledger_loads_and_reads_back_after_reopen(db_url: str, moc: None) -> None:
    wasm = (EXAMPLES / "ledger" / "ledger.wasm").read_bytes()
    with open_store(db_url) as st:
        led = install(st, "ledger", wasm)
        assert led("load", "(3000 : nat, 5 : nat)") == "(3_000 : nat)"
        assert led("load", "(500 : nat, 6 : nat)") == "(3_500 : nat)"
        digest = led("digest")
        entry = led("get", "(1234 : nat)")
        page = led("range", "(100 : nat, 3 : nat)")
        assert "key = 1_234 : nat" in entry
    with open_store(db_url) as st:
        led = Canister(st, "ledger")
        assert led("count") == "(3_500 : nat)"
        assert led("digest") == digest
        assert led("get", "(1234 : nat)") == entry
        assert led("range", "(100 : nat, 3 : nat)") == page


def test_self_calls_and_callbacks(store: Store) -> None:
    s = install(store, "self", build("selfcall"))
    assert s("selfCall") == "(1 : nat)"
    out = s("selfCallCatch")
    assert 'code = "#canister_error"' in out and "boom: deliberate trap" in out
    assert s("get") == "(1 : nat)"  # boom's +1000 rolled back
    with pytest.raises(CanisterTrapError, match="callback trap after a state change"):
        s("callbackTraps")
    # +10 before the await and +1 from bump are committed; the callback's +100 is not
    assert s("get") == "(12 : nat)"
    assert s("chain", "(20 : nat)") == "(20 : nat)"
    assert s("fanOut", "(5 : nat)") == "(75 : nat)"  # five bumps in flight: 13+14+15+16+17
    st = api.status(store, "self")
    assert st.pending_messages == 0 and st.open_call_contexts == 0


def test_calls_between_canisters(store: Store) -> None:
    callee = install(store, "callee", build("callee"))
    callee_id = api.status(store, "callee").principal
    caller = install(store, "caller", build("caller"), f'(principal "{callee_id}")')
    caller_id = api.status(store, "caller").principal
    assert caller("calleeId") == f'(principal "{callee_id}")'
    assert caller("callBump", "(5 : nat)") == "(5 : nat)"
    assert caller("callPeek") == "(5 : nat)"
    assert caller("callEcho", '("hi", blob "\\00\\01")') == '("hi", blob "\\00\\01")'
    assert caller("callWhoami") == f'(principal "{caller_id}")'
    failed = caller("callFail", '("nope")')
    assert "nope" in failed
    assert callee("peek") == "(5 : nat)"  # fail's change rolled back in the callee only
    rejected = caller("callReject", '("go away")')
    assert "go away" in rejected
    # Motoko re-throws the callee's error from the callback: a reject (code 4), not a trap
    with pytest.raises(CanisterRejectError, match="uncaught") as exc:
        caller("callFailUncaught", '("uncaught")')
    assert exc.value.code == 4
    assert caller("fanOut", "(4 : nat, 1 : nat)") == "(9 : nat)"
    cycles = caller("sendCycles", "(1_000 : nat, 300 : nat)")
    assert "accepted = 300 : nat" in cycles and "refunded = 700 : nat" in cycles
    for name in ("caller", "callee"):
        st = api.status(store, name)
        assert st.pending_messages == 0 and st.open_call_contexts == 0


def test_stopped_canister_rejects_inter_canister_calls(store: Store) -> None:
    install(store, "callee", build("callee"))
    callee_id = api.status(store, "callee").principal
    caller = install(store, "caller", build("caller"), f'(principal "{callee_id}")')
    assert api.stop(store, "callee") == "stopped"
    out = caller("callFail", '("x")')  # callFail catches any reject and returns its text
    assert "is stopped" in out
    api.start(store, "callee")
    assert caller("callBump", "(2 : nat)") == "(2 : nat)"


def test_timers(store: Store) -> None:
    t = install(store, "timer", build("timer"))
    t("after", "(0 : nat64)")
    api.run_pending(store)
    assert t("count") == "(1 : nat)"
    # a timer far in the future does not fire
    t("after", "(3_600_000_000_000 : nat64)")
    api.run_pending(store)
    assert t("count") == "(1 : nat)"
    g = install(store, "global", build("globaltimer"))
    before = int(g("count").strip("()").split(" ")[0].replace("_", ""))
    api.run_pending(store)
    after = int(g("count").strip("()").split(" ")[0].replace("_", ""))
    assert after >= before


def test_stable_memory_and_regions(store: Store) -> None:
    m = install(store, "stable", compile_motoko(CANISTERS / "stablemem.mo", flags=["-A", "M0199"]).wasm)
    assert m("grow", "(3 : nat64)") == "(0 : nat64)"
    assert m("size") == "(3 : nat64)"
    m("writeBlob", '(65_530 : nat64, blob "hello world")')
    assert m("readBlob", "(65_530 : nat64, 11 : nat)") == '(blob "hello world")'
    m("writeNat64", "(8 : nat64, 12_345_678_901 : nat64)")
    with pytest.raises(CanisterTrapError):
        m("readBlob", "(196_600 : nat64, 100 : nat)")  # past the end: traps, as on the IC
    m("regionGrow", "(2 : nat64)")
    m("regionWrite", '(10 : nat64, blob "region")')
    store.close()
    with open_store(store.url) as again:
        m2 = Canister(again, "stable")
        assert m2("readNat64", "(8 : nat64)") == "(12_345_678_901 : nat64)"
        assert m2("readBlob", "(65_530 : nat64, 11 : nat)") == '(blob "hello world")'
        assert m2("regionRead", "(10 : nat64, 6 : nat)") == '(blob "region")'


def test_environment_functions(store: Store) -> None:
    i = install(store, "info", build("info"))
    me = store.identity.to_text()
    assert i("whoami") == f'(principal "{me}")'
    assert i("amController") == "(true)"
    assert i("self") == f'(principal "{api.status(store, "info").principal}")'
    t1 = int(i("time").strip("()").split(" ")[0].replace("_", ""))
    assert t1 > 1_600_000_000 * 10**9
    small = i("work", "(10 : nat)")
    big = i("work", "(10_000 : nat)")
    assert small != big
    assert i("replicatedUpdate") == "(true)"
    assert i("replicatedQuery") == "(false)"
    assert i("certificate") == "(null)"
    i("print", '("hello from motoko")')
    assert any(line.message == "hello from motoko" for line in api.logs(store, "info"))
    with pytest.raises(CanisterTrapError, match="oops"):
        i("trap", '("oops")')
    with open_store(store.url, caller="anonymous") as anon:
        assert Canister(anon, "info")("amController") == "(false)"


def test_bad_candid_and_unknown_method_change_nothing(store: Store) -> None:
    c = install(store, "counter", (EXAMPLES / "counter" / "counter.wasm").read_bytes())
    version = api.status(store, "counter").version
    from persist.errors import CandidError, MethodNotFoundError

    with pytest.raises(CandidError):
        c("add", '("x")')
    with pytest.raises(MethodNotFoundError):
        api.call(store, "counter", "nope")
    with pytest.raises(CanisterRejectError):
        # moc rejects a Candid argument of the wrong type with a trap during decoding
        try:
            api.call(store, "counter", "add", encode_args('("x")', None))
        except CanisterTrapError as exc:
            raise CanisterRejectError(5, str(exc)) from exc
    assert api.status(store, "counter").version == version
