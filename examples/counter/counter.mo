// A counter: the smallest useful canister.
//
// `persistent actor`: every variable not marked `transient` is stable, i.e. it keeps its value
// across upgrades (enhanced orthogonal persistence: the heap itself is kept).
import Prim "mo:⛔";

persistent actor Counter {
  var count : Nat = 0;
  var changes : Nat = 0; // how many updates changed the count

  // Adds one; returns the new count.
  public func inc() : async Nat {
    count += 1;
    changes += 1;
    count;
  };

  // Adds `n`; returns the new count.
  public func add(n : Nat) : async Nat {
    count += n;
    changes += 1;
    Prim.debugPrint("counter: added " # debug_show n # ", count is now " # debug_show count);
    count;
  };

  // Back to zero; returns the count it had.
  public func reset() : async Nat {
    let old = count;
    count := 0;
    changes += 1;
    Prim.debugPrint("counter: reset from " # debug_show old);
    old;
  };

  public query func get() : async Nat { count };

  public query func stats() : async { count : Nat; changes : Nat } { { count; changes } };
};
