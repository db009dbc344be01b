module {
  type OldAccount = { owner : Principal; var balance : Nat; memo : ?Text };
  type Account = { owner : Principal; var balance : Int; memo : ?Text; tags : [Text] };
  public func migration(old : { var accounts : [OldAccount] }) : { var accounts : [Account]; extra : Nat } {
    let n = old.accounts.size();
    ignore n;
    { var accounts = []; extra = 1 };
  };
};
