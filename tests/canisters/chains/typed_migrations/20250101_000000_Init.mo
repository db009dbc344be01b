module {
  public type Account = { owner : Principal; var balance : Nat; memo : ?Text };
  public type List<T> = ?(T, List<T>);
  public func migration(_ : {}) : {
    var accounts : [Account];
    var log : List<{ #deposit : Nat; #withdraw : Nat }>;
  } {
    { var accounts = []; var log = null };
  };
};
