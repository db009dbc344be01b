// The first migration of every test chain: a fresh install starts from `{}`.
module {
  public func migration(_ : {}) : { var count : Nat; var owner : Text } {
    { var count = 0; var owner = "" };
  };
};
