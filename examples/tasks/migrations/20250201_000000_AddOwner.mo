// Adds a field: who the list belongs to.
module {
  public func migration(_ : {}) : { var owner : Text } {
    { var owner = "nobody" };
  };
};
