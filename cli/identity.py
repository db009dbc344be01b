"""``graphcopy identity``: the user's identities, with dfx's command names.

``new``, ``import``, ``use``, ``list``, ``whoami``, ``get-principal`` and ``remove`` work on the
per-user identity directory (``persist.identity``; no store is opened); ``adopt`` makes the identity
in use a controller of the canisters a store's own identity controls (``persist.api.adopt``), the
migration for stores made before named identities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.app import identity_app
from cli.common import JsonOpt, Options, err, errors, opened, out, print_json, read_file

NameArg = Annotated[str, typer.Argument(help="The identity's name (letters, digits, . _ - @).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an identity of that name (its key is lost).")]


@identity_app.command("new")
def new(name: NameArg, force: ForceOpt = False, as_json: JsonOpt = False) -> None:
    """Make an identity with a new Ed25519 key (as `dfx identity new`)."""
    from persist.identity import new_identity

    with errors():
        identity = new_identity(name, force=force)
    if as_json:
        print_json(identity.to_dict())
    else:
        out.print(f'created identity "{name}": principal {identity.principal} (key {identity.pem_path})',
                  highlight=False)


@identity_app.command("import")
def import_(
    name: NameArg,
    pem_file: Annotated[Path, typer.Argument(metavar="PEM_FILE", help="A PEM private key (Ed25519 or secp256k1; "
                                                                       "`dfx identity export NAME` writes one).")],
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Make an identity from a PEM key file (as `dfx identity import`): the same principal as in dfx."""
    from persist.identity import import_identity

    with errors():
        identity = import_identity(name, read_file(pem_file), source=str(pem_file), force=force)
    if as_json:
        print_json(identity.to_dict())
    else:
        out.print(f'imported identity "{name}": principal {identity.principal}', highlight=False)


@identity_app.command("use")
def use(name: NameArg, as_json: JsonOpt = False) -> None:
    """Act as this identity from now on (as `dfx identity use`)."""
    from persist.identity import use_identity

    with errors():
        identity = use_identity(name)
    if as_json:
        print_json(identity.to_dict())
    else:
        out.print(f'using identity "{name}" (principal {identity.principal})', highlight=False)


@identity_app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every identity; the one in use is marked `*` (as `dfx identity list`)."""
    from persist.identity import DEFAULT, list_identities, load_identity, selected_name

    opts: Options = ctx.obj
    with errors():
        current = opts.identity or selected_name()
        if current == DEFAULT:
            load_identity(DEFAULT)  # made on first need, as dfx makes it
        found = list_identities()
    if as_json:
        print_json({"current": current, "identities": [i.to_dict() for i in found]})
        return
    for identity in found:
        out.print(f"{identity.name}{' *' if identity.name == current else ''}", highlight=False)


@identity_app.command("whoami")
def whoami(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The name of the identity commands act as (as `dfx identity whoami`)."""
    from persist.identity import selected_name

    opts: Options = ctx.obj
    with errors():
        name = opts.identity or selected_name()
    if as_json:
        print_json({"identity": name})
    else:
        out.print(name, highlight=False)


@identity_app.command("get-principal")
def get_principal(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The principal of the identity commands act as (as `dfx identity get-principal`)."""
    from persist.identity import current_identity

    opts: Options = ctx.obj
    with errors():
        identity = current_identity(opts.identity)
    if as_json:
        print_json(identity.to_dict())
    else:
        out.print(identity.principal.to_text(), highlight=False)


@identity_app.command("remove")
def remove(name: NameArg, as_json: JsonOpt = False) -> None:
    """Delete an identity and its key (not the one in use; as `dfx identity remove`)."""
    from persist.identity import remove_identity

    with errors():
        remove_identity(name)
    if as_json:
        print_json({"removed": name})
    else:
        out.print(f'removed identity "{name}"', highlight=False)


@identity_app.command("adopt")
def adopt(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change; change nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make your identity a controller of every canister the store's own identity controls.

    Before named identities, commands ran as the store's own identity, so it controls the canisters
    made then (and those scripts make with the default caller). Whoever can write the store holds
    that identity; adopting adds your identity beside it, and `graphcopy status` shows the result.
    """
    from persist.api.adopt import adopt as adopt_all

    with opened(ctx) as store, errors():
        res = adopt_all(store, dry_run=dry_run)
    if as_json:
        print_json(res)
        return
    verb = "would make" if dry_run else "made"
    if res.adopted:
        out.print(f"{verb} {res.principal} a controller of {len(res.adopted)} canister"
                  f"{'s' if len(res.adopted) != 1 else ''}: {', '.join(res.adopted)}", highlight=False)
    else:
        out.print(f"nothing to adopt: no canister controlled by the store's identity {res.store_identity} "
                  f"lacks {res.principal}", highlight=False)
    if res.already:
        out.print(f"already a controller of: {', '.join(res.already)}", highlight=False)
    for canister, reason in res.refused.items():
        err.print(f"warning: {canister} not adopted: {reason}", highlight=False)


@identity_app.command("default", hidden=True)
def default(ctx: typer.Context, name: Annotated[str | None, typer.Argument(help="The identity to use.")] = None,
            as_json: JsonOpt = False) -> None:
    """icp-cli's spelling: `identity default NAME` is `identity use NAME`; without NAME, `whoami`."""
    if name is None:
        whoami(ctx, as_json=as_json)
    else:
        use(name, as_json=as_json)


@identity_app.command("principal", hidden=True)
def principal(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """icp-cli's spelling of `identity get-principal`."""
    get_principal(ctx, as_json=as_json)
