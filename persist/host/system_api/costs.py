"""``ic0.cost_*``: what the IC would charge for a call, a canister creation, an HTTP outcall or a
threshold signature.

graphcopy charges nothing, but canisters budget with these functions, so they answer with the IC's
fee schedule for a 13-node application subnet (the "Cycles costs" reference page:
``xnet_call_fee`` 260,000 plus 1,000 per transmitted byte; canister creation 500e9; HTTP outcalls
``(3,000,000 + 60,000·n)·n + 400·n`` per request byte ``+ 800·n`` per response byte with n = 13).
``cost_call`` also includes, as the spec says, the reservations for the largest response (2 MiB
at 1,000 cycles a byte) and for executing its callback (5,000,000 plus 0.4 cycles per instruction
of the 40e9 limit). These are computed from that table, not measured against a replica. graphcopy
holds no threshold keys, so every key name is unknown to the ``cost_sign_with_*`` /
``cost_vetkd_derive_key`` functions (result 2), as it is to ``sign_with_ecdsa`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import SystemEnv
from persist.host.system_api.spec import Ic0, ic0

SUBNET_SIZE = 13
XNET_CALL_FEE = 260_000
XNET_BYTE_FEE = 1_000
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
UPDATE_MESSAGE_FEE = 5_000_000
MAX_CALLBACK_INSTRUCTIONS = 40_000_000_000
CREATE_CANISTER_FEE = 500_000_000_000
HTTP_REQUEST_BASE = (3_000_000 + 60_000 * SUBNET_SIZE) * SUBNET_SIZE
HTTP_REQUEST_BYTE = 400 * SUBNET_SIZE
HTTP_RESPONSE_BYTE = 800 * SUBNET_SIZE
# Curves and algorithms the spec numbers (``ecdsa_curve: 0 → secp256k1`` ...).
KNOWN_CURVES = {"cost_sign_with_ecdsa": {0}, "cost_sign_with_schnorr": {0, 1}, "cost_vetkd_derive_key": {0}}
INVALID_CURVE, UNKNOWN_KEY = 1, 2

SPEC: dict[str, Ic0] = {
    "cost_call": ic0("(method_name_size : i64, payload_size : i64, dst : I) -> ()", "* s"),
    "cost_create_canister": ic0("(dst : I) -> ()", "* s"),
    "cost_http_request": ic0("(request_size : i64, max_res_bytes : i64, dst : I) -> ()", "* s"),
    "cost_sign_with_ecdsa": ic0("(src : I, size : I, ecdsa_curve : i32, dst : I) -> i32", "* s"),
    "cost_sign_with_schnorr": ic0("(src : I, size : I, algorithm : i32, dst : I) -> i32", "* s"),
    "cost_vetkd_derive_key": ic0("(src : I, size : I, vetkd_curve : i32, dst : I) -> i32", "* s"),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def call_cost(method_name_size: int, payload_size: int) -> int:
    """``cost_call``: the call's fee plus the reservations for its largest response and callback."""
    request = XNET_CALL_FEE + XNET_BYTE_FEE * (method_name_size + payload_size)
    response = XNET_BYTE_FEE * MAX_RESPONSE_BYTES
    callback = UPDATE_MESSAGE_FEE + MAX_CALLBACK_INSTRUCTIONS * 4 // 10
    return request + response + callback


def http_request_cost(request_size: int, max_res_bytes: int) -> int:
    """``cost_http_request`` for a 13-node subnet."""
    return HTTP_REQUEST_BASE + HTTP_REQUEST_BYTE * request_size + HTTP_RESPONSE_BYTE * max_res_bytes


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_read, heap_write = env.ctx_for, env.heap_read, env.heap_write

    def u128(dst: int, value: int) -> None:
        heap_write(dst, value.to_bytes(16, "little"))

    def cost_call(method_name_size: int, payload_size: int, dst: int) -> None:
        ctx_for("cost_call")
        u128(dst, call_cost(method_name_size, payload_size))

    def cost_create_canister(dst: int) -> None:
        ctx_for("cost_create_canister")
        u128(dst, CREATE_CANISTER_FEE)

    def cost_http_request(request_size: int, max_res_bytes: int, dst: int) -> None:
        ctx_for("cost_http_request")
        u128(dst, http_request_cost(request_size, max_res_bytes))

    def threshold(name: str) -> Callable[[int, int, int, int], int]:
        def f(src: int, size: int, curve: int, dst: int) -> int:
            ctx_for(name)
            heap_read(src, size)  # bounds-checked like the replica: traps past the heap
            heap_read(dst, 16)
            return UNKNOWN_KEY if curve in KNOWN_CURVES[name] else INVALID_CURVE
        return f

    return {
        "cost_call": cost_call,
        "cost_create_canister": cost_create_canister,
        "cost_http_request": cost_http_request,
        "cost_sign_with_ecdsa": threshold("cost_sign_with_ecdsa"),
        "cost_sign_with_schnorr": threshold("cost_sign_with_schnorr"),
        "cost_vetkd_derive_key": threshold("cost_vetkd_derive_key"),
    }
