"""The replica's error codes and the texts of the rejects a canister receives.

A call the callee cannot answer comes back to the caller as a reject: a reject code (1-6) and a
message. Where the replica builds the message from a ``UserError``, the message is its ``Display``
(``IC0503: Error from Canister …``), as Motoko's tests show (``test/run-drun/ok/error-codes.drun-run.ok``:
``canister_error:IC0503: Error from Canister rwlgt-…: Canister called `ic0.trap` with message:
'assertion failed at …'.\\nConsider gracefully handling failures from this canister …``). The texts
come from dfinity/ic: ``HypervisorError``'s ``Display``, ``error_help`` and ``into_user_error``
(``rs/interfaces/src/execution_environment/errors.rs``), ``ErrorCode`` and its reject codes
(``rs/types/error_types/src/lib.rs``), ``ErrorHelp``'s ``Display`` and ``doc_ref``
(``rs/types/wasm_types/src/errors.rs``). Where the replica rejects without a ``UserError`` (a
stopped or missing callee) the message carries no code, as there.
"""

from __future__ import annotations

from persist.errors import MessageTooLargeError
from persist.host.system_api.context import (
    REJECT_CANISTER_ERROR,
    REJECT_CANISTER_REJECT,
    REJECT_DESTINATION_INVALID,
    REJECT_SYS_FATAL,
    REJECT_SYS_TRANSIENT,
    REJECT_SYS_UNKNOWN,
)
from persist.host.traps import TrapKind

__all__ = [
    "DOC_BASE",
    "IcError",
    "Response",
    "callee_missing",
    "check_ingress_size",
    "cleanup_reject",
    "did_not_reply",
    "doc_help",
    "method_not_found",
    "no_wasm_module",
    "no_wasm_module_error",
    "reject_code_of",
    "stopped",
    "trap_description",
    "trap_reject",
    "user_error_text",
]

Response = tuple[str, bytes, int, str]

DOC_BASE = "https://internetcomputer.org/docs/current/references/execution-errors#"
_TOOLCHAIN_HELP = ("If you are running this canister in a test environment (e.g., dfx), make sure the test "
                   "environment is up to date. Otherwise, this is likely an error with the compiler/CDK toolchain "
                   "being used to build the canister. Please report the error to IC devs on the forum: "
                   "https://forum.dfinity.org and include which language/CDK was used to create the canister.")
_GRACEFUL = "Consider gracefully handling failures from this canister or altering the canister to handle exceptions."

# ErrorCode values (IC0xyz: the first digit is the reject code).
CANISTER_NOT_FOUND = 301
CANISTER_SNAPSHOT_NOT_FOUND = 305
INSUFFICIENT_CYCLES_FOR_CREATE_CANISTER = 403
CANISTER_REJECTED_MESSAGE = 406
INVALID_MANAGEMENT_PAYLOAD = 408
CANISTER_TRAPPED = 502
CANISTER_CALLED_TRAP = 503
CANISTER_CONTRACT_VIOLATION = 504
CANISTER_INVALID_WASM = 505
CANISTER_DID_NOT_REPLY = 506
CANISTER_STOPPED = 508
CANISTER_STOPPING = 509
CANISTER_NOT_STOPPED = 510
CANISTER_STOPPING_CANCELLED = 511
CANISTER_INVALID_CONTROLLER = 512
CANISTER_NON_EMPTY = 514
CANISTER_INSTRUCTION_LIMIT_EXCEEDED = 522
COMPOSITE_QUERY_CALLED_IN_REPLICATED_MODE = 527
CANISTER_METHOD_NOT_FOUND = 536
CANISTER_WASM_MODULE_NOT_FOUND = 537

_REJECT_CODES = {1: REJECT_SYS_FATAL, 2: REJECT_SYS_TRANSIENT, 3: REJECT_DESTINATION_INVALID,
                 4: REJECT_CANISTER_REJECT, 5: REJECT_CANISTER_ERROR, 6: REJECT_SYS_UNKNOWN}


def reject_code_of(error_code: int) -> int:
    """The reject code an error code maps to (its first digit)."""
    return _REJECT_CODES[error_code // 100]


def user_error_text(error_code: int, description: str) -> str:
    """``UserError``'s ``Display``: ``IC0503: <description>``."""
    return f"IC{error_code:04d}: {description}"


def doc_help(suggestion: str, anchor: str) -> str:
    """``ErrorHelp::UserError``'s ``Display``: the suggestion and its documentation link."""
    return f"{suggestion} See documentation: {DOC_BASE}{anchor}" if suggestion else ""


class IcError(Exception):
    """A ``UserError`` of the replica: an error code and its description (help included)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(user_error_text(code, description))
        self.code = code
        self.description = description

    def reject(self) -> Response:
        """The reject a caller receives for it."""
        return ("reject", b"", reject_code_of(self.code), user_error_text(self.code, self.description))


_TRAP_CODES = {
    TrapKind.CALLED_TRAP: CANISTER_CALLED_TRAP,
    TrapKind.TRAPPED: CANISTER_TRAPPED,
    TrapKind.INSTRUCTION_LIMIT: CANISTER_INSTRUCTION_LIMIT_EXCEEDED,
    TrapKind.CONTRACT_VIOLATION: CANISTER_CONTRACT_VIOLATION,
    TrapKind.USER_CONTRACT_VIOLATION: CANISTER_CONTRACT_VIOLATION,
    TrapKind.OUT_OF_CYCLES: CANISTER_CONTRACT_VIOLATION,
    TrapKind.ENV_VAR: CANISTER_CONTRACT_VIOLATION,
}
_TRAP_HELP = {
    TrapKind.CALLED_TRAP: doc_help(_GRACEFUL, "trapped-explicitly"),
    TrapKind.TRAPPED: doc_help(_GRACEFUL, "trapped"),
    TrapKind.INSTRUCTION_LIMIT: doc_help("Try optimizing this method to consume fewer instructions or split the "
                                         "work across multiple messages.", "instruction-limit-exceeded"),
    TrapKind.CONTRACT_VIOLATION: _TOOLCHAIN_HELP,
    TrapKind.OUT_OF_CYCLES: "",
    TrapKind.ENV_VAR: "",
}


def _kind(trap: str) -> TrapKind:
    return getattr(trap, "kind", TrapKind.CONTRACT_VIOLATION)


def _display(trap: str) -> str:
    """The ``HypervisorError`` ``Display`` of a trap (a System API violation reads "Canister violated
    contract: …")."""
    if _kind(trap) in (TrapKind.CONTRACT_VIOLATION, TrapKind.USER_CONTRACT_VIOLATION):
        return f"Canister violated contract: {trap}"
    return str(trap)


def _help(trap: str) -> str:
    """The help line of a trap: the kind's, or for a ``UserContractViolation`` its own suggestion."""
    kind = _kind(trap)
    if kind == TrapKind.USER_CONTRACT_VIOLATION:
        suggestion, anchor = getattr(trap, "help", ("", ""))
        return doc_help(suggestion, anchor)
    return _TRAP_HELP[kind]


def trap_description(principal: str, trap: str) -> tuple[int, str]:
    """The error code and description of a trap of canister ``principal`` (``into_user_error``)."""
    help_ = _help(trap)
    description = f"Error from Canister {principal}: {_display(trap)}"
    return _TRAP_CODES[_kind(trap)], f"{description}.\n{help_}" if help_ else description


def trap_reject(principal: str, trap: str) -> Response:
    """The reject a caller receives when the callee (or the callback answering it) trapped."""
    code, description = trap_description(principal, trap)
    return IcError(code, description).reject()


def cleanup_reject(principal: str, callback_trap: str, cleanup_trap: str) -> Response:
    """A callback trapped and its ``call_on_cleanup`` trapped too (``HypervisorError::Cleanup``): the
    callback's code, both texts, and no help line."""
    code = _TRAP_CODES[_kind(callback_trap)]
    text = (f"Error from Canister {principal}: {_display(callback_trap)}\n\ncall_on_cleanup also failed:\n\n"
            f"{_display(cleanup_trap)}")
    return IcError(code, text).reject()


def did_not_reply(principal: str) -> Response:
    """The call context ended without a reply (``CanisterDidNotReply``)."""
    return IcError(CANISTER_DID_NOT_REPLY, f"Canister {principal} did not reply to the call").reject()


def method_not_found(principal: str, kind: str, method: str) -> Response:
    """The callee exports no such method (``HypervisorError::MethodNotFound``)."""
    help_ = doc_help("Check that the method being called is exported by the target canister.", "method-not-found")
    return IcError(CANISTER_METHOD_NOT_FOUND,
                   f"Error from Canister {principal}: Canister has no {kind} method '{method}'..\n{help_}").reject()


def no_wasm_module_error(principal: str) -> IcError:
    """The canister is empty (``HypervisorError::WasmModuleNotFound``)."""
    help_ = doc_help("Please install code to this canister before calling it.", "wasm-module-not-found")
    return IcError(CANISTER_WASM_MODULE_NOT_FOUND,
                   f"Error from Canister {principal}: Attempted to execute a message, but the canister contains "
                   f"no Wasm module..\n{help_}")


def no_wasm_module(principal: str) -> Response:
    """The callee is empty: the reject its caller receives."""
    return no_wasm_module_error(principal).reject()


def stopped(principal: str, status: str) -> Response:
    """A request to a stopped or stopping canister (``StateError``'s text, reject code 5)."""
    return ("reject", b"", REJECT_CANISTER_ERROR, f"Canister {principal} is {status}")


def callee_missing(principal: str) -> Response:
    """A request to a canister that does not exist (``StateError::CanisterNotFound``, code 3)."""
    return ("reject", b"", REJECT_DESTINATION_INVALID, f"Canister {principal} not found")


def check_ingress_size(limit: int, canister: str, method: str, arg: bytes) -> None:
    """Refuse an ingress message the replica's HTTP endpoint refuses (413 Payload Too Large): more
    than ``limit`` bytes of argument and method name (``max_ingress_bytes_per_message``, 2 MiB on
    application subnets; the text is ``rs/http_endpoints/public/src/call.rs``'s, which names the
    message by its request id)."""
    size = len(arg) + len(method.encode())
    if size > limit:
        raise MessageTooLargeError(
            f"Request to {canister}.{method} is too large. Message byte size {size} is larger than the max allowed "
            f"{limit}. (the IC's MAX_INGRESS_BYTES_PER_MESSAGE_APP_SUBNET; send large data in several calls)")
