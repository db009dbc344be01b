"""``ic0.env_var_*``: the canister's environment variables (set with ``update_settings``).

The variables are the ones the canister's row held when the message started, sorted by name as the
replica keeps them (a ``BTreeMap``), so ``env_var_name_*`` index them in that order. Traps use the
replica's texts (``EnvironmentVariableIndexOutOfBounds`` / ``EnvironmentVariableNotFound``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import MessageContext, SystemEnv
from persist.host.system_api.spec import Ic0, ic0
from persist.host.traps import HostTrap, TrapKind

#: The replica's limit on a variable's name (``MAX_ENVIRONMENT_VARIABLE_NAME_LENGTH``).
MAX_NAME_LENGTH = 128

SPEC: dict[str, Ic0] = {
    "env_var_count": ic0("() -> I", "*"),
    "env_var_name_size": ic0("(index : I) -> I", "*"),
    "env_var_name_copy": ic0("(index : I, dst : I, offset : I, size : I) -> ()", "*"),
    "env_var_name_exists": ic0("(name_src : I, name_size : I) -> i32", "*"),
    "env_var_value_size": ic0("(name_src : I, name_size : I) -> I", "*"),
    "env_var_value_copy": ic0("(name_src : I, name_size : I, dst : I, offset : I, size : I) -> ()", "*"),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_read, copy_out = env.ctx_for, env.heap_read, env.copy_out

    def name_at(ctx: MessageContext, index: int) -> bytes:
        if index >= len(ctx.env_vars):
            raise HostTrap(f"Environment variable index {index} is out of bounds. The number of environment "
                           f"variables is {len(ctx.env_vars)}.", TrapKind.ENV_VAR)
        return ctx.env_vars[index][0].encode()

    def read_name(fn: str, src: int, size: int) -> str:
        if size > MAX_NAME_LENGTH:
            raise HostTrap(f"ic0.{fn}: the name of {size} bytes is longer than {MAX_NAME_LENGTH} bytes")
        try:
            return heap_read(src, size).decode("utf-8")
        except UnicodeDecodeError:
            raise HostTrap(f"ic0.{fn}: the name is not valid UTF-8") from None

    def value_of(ctx: MessageContext, fn: str, src: int, size: int) -> bytes:
        name = read_name(fn, src, size)
        for key, value in ctx.env_vars:
            if key == name:
                return value.encode()
        raise HostTrap(f"Environment variable {name} not found.", TrapKind.ENV_VAR)

    def env_var_count() -> int:
        return len(ctx_for("env_var_count").env_vars)

    def env_var_name_size(index: int) -> int:
        return len(name_at(ctx_for("env_var_name_size"), index))

    def env_var_name_copy(index: int, dst: int, offset: int, size: int) -> None:
        copy_out("env_var_name_copy", name_at(ctx_for("env_var_name_copy"), index), dst, offset, size)

    def env_var_name_exists(src: int, size: int) -> int:
        ctx = ctx_for("env_var_name_exists")
        name = read_name("env_var_name_exists", src, size)
        return 1 if any(key == name for key, _ in ctx.env_vars) else 0

    def env_var_value_size(src: int, size: int) -> int:
        return len(value_of(ctx_for("env_var_value_size"), "env_var_value_size", src, size))

    def env_var_value_copy(src: int, size: int, dst: int, offset: int, n: int) -> None:
        value = value_of(ctx_for("env_var_value_copy"), "env_var_value_copy", src, size)
        copy_out("env_var_value_copy", value, dst, offset, n)

    return {
        "env_var_count": env_var_count,
        "env_var_name_size": env_var_name_size,
        "env_var_name_copy": env_var_name_copy,
        "env_var_name_exists": env_var_name_exists,
        "env_var_value_size": env_var_value_size,
        "env_var_value_copy": env_var_value_copy,
    }
