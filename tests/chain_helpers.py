"""The test canisters of ``tests/canisters/chains``: enhanced migration chains compiled by the pinned moc.

One pool of migration modules (``migrations/``, in name order: Init, AddAccounts, CountToInt,
DropOwner, Fails) and one actor per version; version N is compiled with the first N modules of the
pool, as mops compiles a chain that grows by one migration per release:

========  ==============  =====================================================
version   actor           chain
========  ==============  =====================================================
v1        chain_v1.mo     Init (count : Nat, owner : Text)
v2        chain_v2.mo     + AddAccounts (a new field)
v3        chain_v3.mo     + CountToInt (Nat -> Int)
v4        chain_v4.mo     + DropOwner (a dropped field)
v4_fails  chain_v4.mo     + Fails (traps when the count is not negative)
========  ==============  =====================================================

``chain(version, rename=..., drop=..., extra=...)`` compiles variants: migrations renamed (the same
module under another file name), left out, added, or edited (``variants/`` holds the edited and
the adopting modules). ``long_chain(n)`` is Init plus ``n``
generated steps (``long_step.mo.in``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from persist.session import Store
from tests.upgrade_helpers import call, install
from toolchain.moc import CompiledCanister, compile_motoko

CHAINS = Path(__file__).parent / "canisters" / "chains"
POOL = sorted((CHAINS / "migrations").glob("*.mo"))
INIT, ADD_ACCOUNTS, COUNT_TO_INT, DROP_OWNER, FAILS = (p.stem for p in POOL)
VERSIONS = {"v1": ("chain_v1", 1), "v2": ("chain_v2", 2), "v3": ("chain_v3", 3), "v4": ("chain_v4", 4),
            "v4_fails": ("chain_v4", 5)}


def chain(version: str, *, rename: Mapping[str, str] | None = None, drop: tuple[str, ...] = (),
          extra: Mapping[str, str] | None = None, actor: str | None = None,
          flags: tuple[str, ...] = ()) -> CompiledCanister:
    """Version ``version`` of the chain canister; ``rename`` maps a pool module's name to the name
    it is compiled under, ``drop`` leaves modules out, ``extra`` sets ``{name: source}`` where the
    source is ``migrations/<stem>`` or ``variants/<stem>`` (a module under a new name, or another
    module under an existing name: an edited migration); ``actor`` compiles another version's
    actor (``"chain_v2"``); ``flags`` go to moc (``-A M0254`` for a chain that leaves fields
    uninitialized, as mops does for a trimmed chain)."""
    main, n = VERSIONS[version]
    files = {p.stem: p for p in POOL[:n] if p.stem not in drop}
    texts = {f"{(rename or {}).get(stem, stem)}.mo": p.read_text(encoding="utf-8") for stem, p in files.items()}
    for new_name, source in (extra or {}).items():
        texts[f"{new_name}.mo"] = (CHAINS / f"{source}.mo").read_text(encoding="utf-8")
    return compile_motoko(CHAINS / f"{actor or main}.mo", migrations=texts, flags=flags)


def long_chain(steps: int) -> CompiledCanister:
    """Init plus ``steps`` generated steps; step k appends k to ``log`` and counts ``steps``."""
    init = (CHAINS / "long_init.mo.in").read_text(encoding="utf-8")
    step = (CHAINS / "long_step.mo.in").read_text(encoding="utf-8")
    texts = {"20240101_000000_Init.mo": init}
    texts.update({f"20240102_{k:06d}_Step.mo": step.replace("@N@", str(k)) for k in range(1, steps + 1)})
    return compile_motoko(CHAINS / "long_chain.mo", migrations=texts)


def inline(name: str) -> CompiledCanister:
    """One of the inline-migration (``with migration``) canisters ``inline_*.mo``."""
    return compile_motoko(CHAINS / f"{name}.mo")


def install_with_data(store: Store, name: str, compiled: CompiledCanister, *, incs: int = 0,
                      owner: str | None = None) -> None:
    """Install ``compiled`` as ``name``, call ``inc`` ``incs`` times and ``setOwner(owner)``."""
    install(store, name, compiled.wasm)
    for _ in range(incs):
        call(store, name, "inc")
    if owner is not None:
        call(store, name, "setOwner", f'("{owner}")')
