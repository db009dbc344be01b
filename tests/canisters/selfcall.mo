// Self-calls: a canister awaiting calls to its own public methods.
//
// State rules exercised (as on the IC): changes made before an `await` are committed when the
// message awaits; a trap in a callee rolls back only the callee's message; a trap in a callback
// rolls back only what that callback changed since the last `await`.
import Prim "mo:⛔";

persistent actor Self {
  var counter : Nat = 0; // changed by `bump`, `boom` (rolled back) and the callbacks below
  var completed : Nat = 0; // callbacks (code after an `await`) that ran to completion
  var caught : Nat = 0; // errors caught by `try ... catch`

  // Plain update method; also the target of the self-calls.
  public func bump() : async Nat {
    counter += 1;
    counter;
  };

  // Changes state, then traps: the change is rolled back.
  public func boom() : async Nat {
    counter += 1000;
    Prim.trap("boom: deliberate trap");
  };

  public query func get() : async Nat { counter };

  public query func callbacks() : async Nat { completed };

  public query func stats() : async { counter : Nat; completed : Nat; caught : Nat } {
    { counter; completed; caught };
  };

  // Awaits a call to another public method of this actor; returns the value bump returned.
  public func selfCall() : async Nat {
    let n = await Self.bump();
    completed += 1;
    n;
  };

  // Awaits a call that traps and catches the reject; returns (reject code, message).
  public func selfCallCatch() : async { code : Text; message : Text } {
    try {
      ignore await Self.boom();
      { code = "none"; message = "boom did not trap" };
    } catch (e) {
      caught += 1;
      completed += 1;
      { code = debug_show (Prim.errorCode(e)); message = Prim.errorMessage(e) };
    };
  };

  // Changes state before the await (+10, committed), the callee bumps (+1, committed), then the
  // callback changes state (+100) and traps: only the +100 is rolled back, `completed` unchanged.
  public func callbackTraps() : async () {
    counter += 10;
    ignore await Self.bump();
    counter += 100;
    Prim.trap("callback trap after a state change");
  };

  // A chain of nested self-calls, `depth` deep; returns depth. Each level counts one callback.
  public func chain(depth : Nat) : async Nat {
    if (depth == 0) return 0;
    let below = await Self.chain(depth - 1 : Nat);
    completed += 1;
    below + 1;
  };

  // `k` self-calls in flight at once, then awaited in order; returns the sum of their results.
  public func fanOut(k : Nat) : async Nat {
    let calls = Prim.Array_init<?(async Nat)>(k, null);
    var i = 0;
    while (i < k) {
      calls[i] := ?Self.bump();
      i += 1;
    };
    var sum = 0;
    for (c in calls.vals()) {
      switch c {
        case (?call) { sum += await call; completed += 1 };
        case null {};
      };
    };
    sum;
  };

  // One-way method (no reply): the caller does not wait for it.
  public func ping() : () {
    counter += 1;
  };

  // Sends the one-way `ping` to itself; returns at once.
  public func selfPing() : async () {
    Self.ping();
  };
};
