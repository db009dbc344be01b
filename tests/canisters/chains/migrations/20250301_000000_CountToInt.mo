// Changes a field's type: Nat -> Int (every Nat is an Int, so the value carries over).
module {
  public func migration(old : { var count : Nat }) : { var count : Int } {
    { var count = old.count };
  };
};
