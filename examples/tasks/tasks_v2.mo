// The next release of tasks.mo: tasks have a status and a priority. Compiled with the chain plus
// next-migration/20250301_000000_AddPriority.mo, which converts the tasks a canister already holds.
import Prim "mo:prim";

persistent actor {
  type Task = { id : Nat; title : Text; status : { #open; #done }; priority : Nat };

  var nextId : Nat;
  var tasks : [Task];
  var owner : Text;

  public func add(title : Text) : async Nat {
    let id = nextId;
    nextId += 1;
    let n = tasks.size();
    tasks := Prim.Array_tabulate<Task>(
      n + 1,
      func i = if (i < n) tasks[i] else ({ id; title; status = #open; priority = 1 }),
    );
    id;
  };

  public func complete(id : Nat) : async Bool {
    var found = false;
    tasks := Prim.Array_tabulate<Task>(
      tasks.size(),
      func i {
        let t = tasks[i];
        if (t.id == id) { found := true; { t with status = #done } } else t;
      },
    );
    found;
  };

  public func prioritize(id : Nat, priority : Nat) : async Bool {
    var found = false;
    tasks := Prim.Array_tabulate<Task>(
      tasks.size(),
      func i {
        let t = tasks[i];
        if (t.id == id) { found := true; { t with priority } } else t;
      },
    );
    found;
  };

  public func setOwner(o : Text) : async () { owner := o };

  public query func count() : async Nat { tasks.size() };
  public query func list() : async [Task] { tasks };
  public query func getOwner() : async Text { owner };
};
