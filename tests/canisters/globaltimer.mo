// The low-level global timer: an explicit `system func timer`, called when the canister's
// global timer expires (moc arms it right after install/upgrade). It re-arms itself every
// `interval` nanoseconds until `stop` is called.
import Prim "mo:⛔";

persistent actor {
  var executions : Nat = 0;
  var interval : Nat64 = 1_000_000_000; // 1 s
  var running : Bool = true;
  var lastAt : Nat64 = 0;

  system func timer(setGlobalTimer : Nat64 -> ()) : async () {
    executions += 1;
    lastAt := Prim.time();
    // 0 deactivates the global timer.
    setGlobalTimer(if (running) Prim.time() + interval else 0);
  };

  public func setInterval(ns : Nat64) : async () { interval := ns };

  // Stops re-arming (takes effect at the next expiry).
  public func stop() : async () { running := false };

  public query func count() : async Nat { executions };

  public query func stats() : async { executions : Nat; interval : Nat64; running : Bool; lastAt : Nat64 } {
    { executions; interval; running; lastAt };
  };
};
