// The callee of caller.mo: a small service other canisters call.
import Prim "mo:⛔";

persistent actor Callee {
  var total : Nat = 0;
  var calls : Nat = 0;
  var lastCaller : ?Principal = null;
  var cyclesReceived : Nat = 0;

  // Adds `by` to the total and returns the new total.
  public shared ({ caller }) func bump(by : Nat) : async Nat {
    calls += 1;
    lastCaller := ?caller;
    total += by;
    total;
  };

  public query func peek() : async Nat { total };

  // Echoes its argument; exercises Text/Blob round trips through an inter-canister call.
  public func echo(t : Text, b : Blob) : async (Text, Blob) {
    calls += 1;
    (t, b);
  };

  // Who called? (the caller's principal: the caller canister's id for an inter-canister call)
  public shared ({ caller }) func whoami() : async Principal { caller };

  // Changes state, then traps: the change is rolled back and the caller gets a reject.
  public func fail(message : Text) : async Nat {
    total += 1_000_000;
    Prim.trap(message);
  };

  // Rejects (without trapping): `throw` makes an explicit reject with code #canister_reject.
  public func reject(message : Text) : async Nat {
    throw Prim.error(message);
  };

  // Accepts up to `max` of the cycles attached to the call; returns how many it accepted.
  public func acceptCycles(max : Nat) : async Nat {
    let available = Prim.cyclesAvailable();
    let accepted = Prim.cyclesAccept<system>(if (available < max) available else max);
    cyclesReceived += accepted;
    accepted;
  };

  public query func stats() : async {
    total : Nat;
    calls : Nat;
    lastCaller : ?Principal;
    cyclesReceived : Nat;
  } {
    { total; calls; lastCaller; cyclesReceived };
  };
};
