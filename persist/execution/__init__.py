"""Running messages against canisters and committing them, one transaction per message.

Execution is where the store (SQL) and the host (wasmtime) meet:

* :mod:`.instances` -- the live instance of a canister at exactly its committed state (cached per store);
* :mod:`.commit` -- writing what a message changed (pages, globals, metadata, progress) under the
  version compare-and-set, and making it the instance's new baseline;
* :mod:`.routing` -- the message queue in SQL: responses, outgoing calls, call contexts, ingress records;
* :mod:`.messages` -- executing one message of each kind (ingress update, queued request, response
  callback and cleanup, timer, query, inspect_message);
* :mod:`.scheduler` -- draining the queue and firing due timers;
* :mod:`.install_code` -- ``install_code``: install, reinstall and upgrade, with the IC's options and checks;
* :mod:`.clock` -- the time a message sees.

The message queue lives in SQL (``messages``, ``call_contexts``, ``ingress``): a request to a
canister, a response to a caller's callback, and the state of every open call context are rows.
Executing a message and consuming its row happen in the same transaction as the canister's page
and metadata changes, so a process killed at any point leaves either the state before the message
(with the message still queued) or the state after it (with its consequences queued). The next
command on the store drains the queue, so nothing waits for a reply no one will deliver.

Rules, as on the IC:
* an update's changes commit; a query's are discarded; a trap or an exhausted instruction limit
  discards the message's changes (its debug prints and the trap are still logged, as the IC's
  canister logs keep them);
* calls made by a message are sent only if it commits; their responses run the caller's reply or
  reject callback from its table, and ``call_on_cleanup``'s function when a callback traps;
* a call context that ends without a reply is rejected with CANISTER_ERROR.

Execution imports the store and the host, never Candid, ``migrate`` or ``cli``.
"""
