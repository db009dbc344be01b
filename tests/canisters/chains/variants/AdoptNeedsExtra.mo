// An adopting first migration that reads a variable the old canister never had.
module {
  public func migration(old : { var count : Nat; var owner : Text; var extra : Nat }) : {
    var count : Nat;
    var owner : Text;
  } {
    { var count = old.count + old.extra; var owner = old.owner };
  };
};
