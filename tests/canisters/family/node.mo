// A node of the family tests: an actor class its parent instantiates several times, upgrades
// (the `system` syntax with `wasm_memory_persistence`), stops and deletes, and whose environment
// variables the parent sets with update_settings.
import Prim "mo:⛔";

persistent actor class Node(tag : Text, start : Nat) = this {
  var value : Nat = start;
  var upgrades : Nat = 0;
  var current : Text = tag; // the tag of the latest install or upgrade

  system func postupgrade() {
    upgrades += 1;
    current := tag;
  };

  public func add(n : Nat) : async Nat {
    value += n;
    value;
  };

  public query func get() : async { tag : Text; value : Nat; upgrades : Nat } {
    { tag = current; value; upgrades };
  };

  // The canister's environment variable `name` (ic0.env_var_*).
  public func env(name : Text) : async ?Text {
    Prim.envVar<system>(name);
  };

  public func envNames() : async [Text] {
    Prim.envVarNames<system>();
  };

  public func boom(message : Text) : async () {
    Prim.trap(message);
  };

  // A callback traps, and so does its call_on_cleanup (the `finally` block).
  public func cleanupFails() : async () {
    try {
      await async ();
      assert false;
    } finally {
      Prim.debugPrint("cleanup runs");
      assert false;
    };
  };

  // Calls `other`'s add(1): this node's call context stays open until that call is answered.
  public func relay(other : Principal) : async Nat {
    let o = Prim.actorOfPrincipal<actor { add : Nat -> async Nat }>(other);
    await o.add(1);
  };

  public query func self() : async Principal {
    Prim.principalOfActor(this);
  };
};
