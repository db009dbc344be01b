// Reads `count` as a Nat (a canister that already converted it to Int cannot run this).
module {
  public func migration(old : { var count : Nat }) : { var count : Nat } {
    { var count = old.count + 1 };
  };
};
