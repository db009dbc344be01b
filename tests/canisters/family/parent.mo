// The parent of the family tests: it creates Node canisters (actor class instances), keeps them in
// a stable binary search tree keyed by number, and manages them through the management canister.
import Prim "mo:⛔";
import Node "node";

persistent actor Parent {
  type Tree = { #leaf; #node : (Tree, Nat, Node.Node, Tree) };
  type Status = { #running; #stopping; #stopped };

  var nodes : Tree = #leaf;
  var count : Nat = 0;

  transient let ic = actor "aaaaa-aa" : actor {
    stop_canister : { canister_id : Principal } -> async ();
    start_canister : { canister_id : Principal } -> async ();
    delete_canister : { canister_id : Principal } -> async ();
    update_settings : {
      canister_id : Principal;
      settings : { environment_variables : ?[{ name : Text; value : Text }] };
    } -> async ();
    canister_status : { canister_id : Principal } -> async { status : Status; module_hash : ?Blob; cycles : Nat };
    canister_info : { canister_id : Principal; num_requested_changes : ?Nat64 } -> async {
      total_num_changes : Nat64;
      controllers : [Principal];
      module_hash : ?Blob;
    };
  };

  func insert(t : Tree, k : Nat, v : Node.Node) : Tree {
    switch t {
      case (#leaf) #node(#leaf, k, v, #leaf);
      case (#node(l, key, val, r)) {
        if (k < key) #node(insert(l, k, v), key, val, r) else if (k > key) #node(l, key, val, insert(r, k, v)) else #node(
          l,
          k,
          v,
          r,
        );
      };
    };
  };

  func find(t : Tree, k : Nat) : Node.Node {
    switch t {
      case (#leaf) Prim.trap("no node " # debug_show k);
      case (#node(l, key, val, r)) { if (k < key) find(l, k) else if (k > key) find(r, k) else val };
    };
  };

  func entries(t : Tree) : [(Nat, Node.Node)] {
    switch t {
      case (#leaf) [];
      case (#node(l, key, val, r)) {
        let left = entries(l);
        let right = entries(r);
        let n = left.size();
        Prim.Array_tabulate<(Nat, Node.Node)>(
          n + 1 + right.size(),
          func i = if (i < n) left[i] else if (i == n) (key, val) else right[i - n - 1],
        );
      };
    };
  };

  func without(k : Nat) : Tree {
    var t : Tree = #leaf;
    for ((key, val) in entries(nodes).vals()) { if (key != k) t := insert(t, key, val) };
    t;
  };

  // A new Node canister; its number in the tree.
  public func spawn(tag : Text, start : Nat) : async Nat {
    let n = await Node.Node(tag, start);
    count += 1;
    nodes := insert(nodes, count, n);
    count;
  };

  public query func principalOf(k : Nat) : async Principal {
    Prim.principalOfActor(find(nodes, k));
  };

  public query func keys() : async [Nat] {
    let all = entries(nodes);
    Prim.Array_tabulate<Nat>(all.size(), func i = all[i].0);
  };

  // Upgrade every node from here, keeping its heap (enhanced orthogonal persistence).
  public func upgradeAll(tag : Text) : async Nat {
    var done = 0;
    for ((_, n) in entries(nodes).vals()) {
      ignore await (system Node.Node)(#upgrade_with_persistence { wasm_memory_persistence = #keep; canister = n })(
        tag,
        0,
      );
      done += 1;
    };
    done;
  };

  public func addTo(k : Nat, x : Nat) : async Nat {
    await find(nodes, k).add(x);
  };

  // Every node's tag, value and upgrade count, in key order.
  public func describe() : async [(Nat, Text, Nat, Nat)] {
    let all = entries(nodes);
    var out : [(Nat, Text, Nat, Nat)] = [];
    for ((k, n) in all.vals()) {
      let d = await n.get();
      let prev = out;
      out := Prim.Array_tabulate<(Nat, Text, Nat, Nat)>(
        prev.size() + 1,
        func i = if (i < prev.size()) prev[i] else (k, d.tag, d.value, d.upgrades),
      );
    };
    out;
  };

  // Stop the node (the status it reports then), delete it, and forget it.
  public func stopAndDelete(k : Nat) : async Text {
    let p = Prim.principalOfActor(find(nodes, k));
    await ic.stop_canister({ canister_id = p });
    let st = await ic.canister_status({ canister_id = p });
    await ic.delete_canister({ canister_id = p });
    nodes := without(k);
    debug_show st.status;
  };

  // Node k relays a call to node j while the parent stops node k: stop_canister answers only once
  // k's call context has closed (so the relayed result is in before the stop returns).
  public func stopWhileBusy(k : Nat, j : Nat) : async (Nat, Text) {
    let n = find(nodes, k);
    let p = Prim.principalOfActor(n);
    let relayed = n.relay(Prim.principalOfActor(find(nodes, j)));
    await ic.stop_canister({ canister_id = p });
    let st = await ic.canister_status({ canister_id = p });
    let got = await relayed;
    await ic.start_canister({ canister_id = p });
    (got, debug_show st.status);
  };

  // Deleting a running node: the management canister's reject, as the parent sees it.
  public func deleteRunning(k : Nat) : async Text {
    try {
      await ic.delete_canister({ canister_id = Prim.principalOfActor(find(nodes, k)) });
      "deleted";
    } catch e { debug_show (Prim.errorCode(e)) # " " # Prim.errorMessage(e) };
  };

  public func setEnv(k : Nat, vars : [{ name : Text; value : Text }]) : async () {
    await ic.update_settings({
      canister_id = Prim.principalOfActor(find(nodes, k));
      settings = { environment_variables = ?vars };
    });
  };

  public func childEnv(k : Nat, name : Text) : async ?Text {
    await find(nodes, k).env(name);
  };

  public func childEnvNames(k : Nat) : async [Text] {
    await find(nodes, k).envNames();
  };

  // What the parent receives when the node traps (the reject's code and message).
  public func childTraps(k : Nat, message : Text) : async Text {
    try {
      await find(nodes, k).boom(message);
      "no error";
    } catch e { Prim.errorMessage(e) };
  };

  public func childCleanupFails(k : Nat) : async Text {
    try {
      await find(nodes, k).cleanupFails();
      "no error";
    } catch e { Prim.errorMessage(e) };
  };

  public func info(k : Nat) : async (Nat64, [Principal]) {
    let i = await ic.canister_info({
      canister_id = Prim.principalOfActor(find(nodes, k));
      num_requested_changes = ?20;
    });
    (i.total_num_changes, i.controllers);
  };
};
