// The first step of the chain: a fresh install starts here, from no state at all.
module {
  public type Task = { id : Nat; title : Text; done : Bool };

  public func migration(_ : {}) : { var nextId : Nat; var tasks : [Task] } {
    { var nextId = 0; var tasks = [] };
  };
};
