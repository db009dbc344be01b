// Converts every task: `done : Bool` becomes a status, and each task gets a priority.
import Prim "mo:prim";

module {
  type OldTask = { id : Nat; title : Text; done : Bool };
  type Task = { id : Nat; title : Text; status : { #open; #done }; priority : Nat };

  public func migration(old : { var tasks : [OldTask] }) : { var tasks : [Task] } {
    let tasks = Prim.Array_tabulate<Task>(
      old.tasks.size(),
      func i {
        let t = old.tasks[i];
        ({ id = t.id; title = t.title; status = if (t.done) #done else #open; priority = 1 });
      },
    );
    { var tasks };
  };
};
