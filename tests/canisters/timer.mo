// Timers through the Motoko runtime's timer queue (`Prim.setTimer`, what mo:core's Timer uses).
// The runtime multiplexes all timers onto the canister's one global timer (ic0.global_timer_set)
// and exports canister_global_timer. Timers are not persisted across upgrades.
import Prim "mo:⛔";

persistent actor {
  var fired : Nat = 0; // one-shot timer executions
  var ticks : Nat = 0; // recurring timer executions
  var lastFiredAt : Nat64 = 0; // Prim.time() at the last execution of either kind
  var failing : Nat = 0; // executions of the trapping job (never completes)

  func oneShot() : async () {
    fired += 1;
    lastFiredAt := Prim.time();
  };

  func tick() : async () {
    ticks += 1;
    lastFiredAt := Prim.time();
  };

  func trapping() : async () {
    failing += 1; // rolled back by the trap below
    Prim.trap("timer job traps");
  };

  // One-shot timer `delayNs` nanoseconds from now; returns its id.
  public func after(delayNs : Nat64) : async Nat {
    Prim.setTimer<system>(delayNs, false, oneShot);
  };

  // Recurring timer every `intervalNs` nanoseconds; returns its id.
  public func every(intervalNs : Nat64) : async Nat {
    Prim.setTimer<system>(intervalNs, true, tick);
  };

  // One-shot timer whose job traps.
  public func afterTrapping(delayNs : Nat64) : async Nat {
    Prim.setTimer<system>(delayNs, false, trapping);
  };

  public func cancel(id : Nat) : async () {
    Prim.cancelTimer(id);
  };

  public query func count() : async Nat { fired + ticks };

  public query func stats() : async { fired : Nat; ticks : Nat; failing : Nat; lastFiredAt : Nat64; now : Nat64 } {
    { fired; ticks; failing; lastFiredAt; now = Prim.time() };
  };
};
