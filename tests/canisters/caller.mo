// Inter-canister calls. The callee's principal is the init argument: install with Candid
// `(principal "<callee id>")`. The callee is callee.mo.
import Prim "mo:⛔";

persistent actor class Caller(callee : Principal) = this {
  type Callee = actor {
    bump : (Nat) -> async Nat;
    peek : query () -> async Nat;
    echo : (Text, Blob) -> async (Text, Blob);
    whoami : () -> async Principal;
    fail : (Text) -> async Nat;
    reject : (Text) -> async Nat;
    acceptCycles : (Nat) -> async Nat;
  };

  let target : Callee = Prim.actorOfPrincipal<Callee>(callee);
  var completed : Nat = 0; // callbacks that ran to completion
  var errors : [Text] = []; // messages of the rejects caught so far
  var lastRefund : Nat = 0;

  public query func calleeId() : async Principal { Prim.principalOfActor(target) };

  public query func self() : async Principal { Prim.principalOfActor(this) };

  // bump on the callee; returns the callee's new total.
  public func callBump(by : Nat) : async Nat {
    let r = await target.bump(by);
    completed += 1;
    r;
  };

  // A query method of the callee, called from an update (as an inter-canister call).
  public func callPeek() : async Nat {
    let r = await target.peek();
    completed += 1;
    r;
  };

  public func callEcho(t : Text, b : Blob) : async (Text, Blob) {
    let r = await target.echo(t, b);
    completed += 1;
    r;
  };

  // The principal the callee saw as its caller: this canister's id.
  public func callWhoami() : async Principal {
    let r = await target.whoami();
    completed += 1;
    r;
  };

  // The callee traps; the reject is caught here. Returns "<error code>: <message>".
  public func callFail(message : Text) : async Text {
    try {
      ignore await target.fail(message);
      "no error";
    } catch (e) {
      completed += 1;
      let text = debug_show (Prim.errorCode(e)) # ": " # Prim.errorMessage(e);
      errors := Prim.Array_tabulate<Text>(errors.size() + 1, func i = if (i < errors.size()) errors[i] else text);
      text;
    };
  };

  // The callee rejects explicitly (`throw`); caught here. Returns "<error code>: <message>".
  public func callReject(message : Text) : async Text {
    try {
      ignore await target.reject(message);
      "no error";
    } catch (e) {
      completed += 1;
      debug_show (Prim.errorCode(e)) # ": " # Prim.errorMessage(e);
    };
  };

  // The callee traps and the error is NOT caught: this call is rejected too.
  public func callFailUncaught(message : Text) : async Nat {
    await target.fail(message);
  };

  // `k` calls in flight at once, awaited in order; returns the callee's final total.
  public func fanOut(k : Nat, by : Nat) : async Nat {
    let calls = Prim.Array_init<?(async Nat)>(k, null);
    var i = 0;
    while (i < k) {
      calls[i] := ?target.bump(by);
      i += 1;
    };
    var last = 0;
    for (c in calls.vals()) {
      switch c {
        case (?call) { last := await call; completed += 1 };
        case null {};
      };
    };
    last;
  };

  // Attaches `amount` cycles; the callee accepts up to `accept`; the rest is refunded.
  public func sendCycles(amount : Nat, accept : Nat) : async { accepted : Nat; refunded : Nat } {
    Prim.cyclesAdd<system>(amount);
    let accepted = await target.acceptCycles(accept);
    lastRefund := Prim.cyclesRefunded();
    completed += 1;
    { accepted; refunded = lastRefund };
  };

  public query func stats() : async { completed : Nat; errors : [Text]; lastRefund : Nat } {
    { completed; errors; lastRefund };
  };
};
