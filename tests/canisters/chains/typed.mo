// A chain whose migrations define their own (generic, recursive) types: its .most has type
// definitions and lines long enough to break, compiled from a migrations directory.
persistent actor {
  type Account = { owner : Principal; var balance : Int; memo : ?Text; tags : [Text] };
  public type List<T> = ?(T, List<T>);
  var accounts : [Account];
  var log : List<{ #deposit : Nat; #withdraw : Nat }>;
  let extra : Nat;

  public query func size() : async Nat { accounts.size() + extra };
  public func clear() : async () { accounts := []; log := null };
};
