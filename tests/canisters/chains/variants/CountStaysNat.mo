// CountToInt edited after it was applied: `count` stays a Nat.
module {
  public func migration(old : { var count : Nat }) : { var count : Nat } {
    { var count = old.count };
  };
};
