// Version 2 of counter.mo: an upgrade that keeps the count.
//
// Upgrading counter.mo -> counter_v2.mo is compatible: the stable variables of version 1 keep their
// names and types (so `count` and `changes` carry over), and the new ones start at their
// initial values. The Candid interface only grows.
import Prim "mo:⛔";

persistent actor Counter {
  var count : Nat = 0;
  var changes : Nat = 0;
  var step : Nat = 1; // new in version 2
  var upgrades : Nat = 0; // new in version 2: upgrades *into* this version or later

  system func postupgrade() {
    upgrades += 1;
    Prim.debugPrint("counter v2: upgraded, count is " # debug_show count);
  };

  // Adds `step`; returns the new count.
  public func inc() : async Nat {
    count += step;
    changes += 1;
    count;
  };

  public func add(n : Nat) : async Nat {
    count += n;
    changes += 1;
    Prim.debugPrint("counter: added " # debug_show n # ", count is now " # debug_show count);
    count;
  };

  public func reset() : async Nat {
    let old = count;
    count := 0;
    changes += 1;
    Prim.debugPrint("counter: reset from " # debug_show old);
    old;
  };

  public func setStep(n : Nat) : async () { step := n };

  public query func get() : async Nat { count };

  public query func stats() : async { count : Nat; changes : Nat; step : Nat; upgrades : Nat } {
    { count; changes; step; upgrades };
  };
};
