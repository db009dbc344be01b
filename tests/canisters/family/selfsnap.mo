// A canister that snapshots itself and loads its own snapshot back through the management
// canister (it must be one of its own controllers). The load is a one-way call: its reply arrives
// on the restored state, where no continuation waits for it.
import Prim "mo:⛔";

persistent actor Self {
  type Snapshot = { id : Blob; taken_at_timestamp : Nat64; total_size : Nat64 };

  var counter : Nat = 0;
  var last : ?Blob = null;

  transient let ic = actor "aaaaa-aa" : actor {
    take_canister_snapshot : { canister_id : Principal; replace_snapshot : ?Blob } -> async Snapshot;
    load_canister_snapshot : { canister_id : Principal; snapshot_id : Blob } -> ();
    list_canister_snapshots : { canister_id : Principal } -> async [Snapshot];
    delete_canister_snapshot : { canister_id : Principal; snapshot_id : Blob } -> async ();
  };

  func me() : Principal { Prim.principalOfActor(Self) };

  public func set(n : Nat) : async () { counter := n };

  public query func get() : async Nat { counter };

  // Take a snapshot of this canister (replacing the previous one); its id.
  public func snap() : async Blob {
    let s = await ic.take_canister_snapshot({ canister_id = me(); replace_snapshot = last });
    last := ?s.id;
    s.id;
  };

  public func restore() : async () {
    switch last {
      case (?id) ic.load_canister_snapshot({ canister_id = me(); snapshot_id = id });
      case null Prim.trap("no snapshot taken");
    };
  };

  public func snapshots() : async [Blob] {
    let all = await ic.list_canister_snapshots({ canister_id = me() });
    Prim.Array_tabulate<Blob>(all.size(), func i = all[i].id);
  };
};
