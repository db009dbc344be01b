// Adds a field.
module {
  public func migration(_ : {}) : { var accounts : [(Text, Nat)] } {
    { var accounts = [] };
  };
};
