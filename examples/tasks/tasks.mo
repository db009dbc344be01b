// A to-do list whose state evolves through an enhanced migration chain (moc --enhanced-migration,
// mops [canisters.tasks.migrations]): its variables have no initializers; the migrations in
// migrations/ give them their values, on a fresh install all of them, on an upgrade the new ones.
import Prim "mo:prim";

persistent actor {
  type Task = { id : Nat; title : Text; done : Bool };

  var nextId : Nat;
  var tasks : [Task];
  var owner : Text;

  public func add(title : Text) : async Nat {
    let id = nextId;
    nextId += 1;
    let n = tasks.size();
    tasks := Prim.Array_tabulate<Task>(n + 1, func i = if (i < n) tasks[i] else ({ id; title; done = false }));
    id;
  };

  public func complete(id : Nat) : async Bool {
    var found = false;
    tasks := Prim.Array_tabulate<Task>(
      tasks.size(),
      func i {
        let t = tasks[i];
        if (t.id == id) { found := true; { t with done = true } } else t;
      },
    );
    found;
  };

  public func setOwner(o : Text) : async () { owner := o };

  public query func count() : async Nat { tasks.size() };
  public query func list() : async [Task] { tasks };
  public query func getOwner() : async Text { owner };
};
