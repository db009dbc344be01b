// The first migration of a chain adopted by a canister that had none: it reads the old variables.
module {
  public func migration(old : { var count : Nat; var owner : Text }) : { var count : Nat; var owner : Text } {
    { var count = old.count; var owner = old.owner };
  };
};
