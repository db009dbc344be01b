module {
  type OldAccount = { owner : Principal; var balance : Nat; memo : ?Text };
  type Account = { owner : Principal; var balance : Int; memo : ?Text; tags : [Text] };
  public func migration(old : { var accounts : [OldAccount] }) : { var accounts : [Account]; extra : Nat } {
    // The old accounts are dropped on purpose: the test only needs the types.
    ignore old;
    { var accounts = []; extra = 1 };
  };
};
