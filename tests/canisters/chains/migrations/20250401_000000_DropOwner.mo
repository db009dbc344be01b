// Drops a field: it reads `owner` and writes nothing back.
module {
  public func migration(_ : { var owner : Text }) : {} {
    {};
  };
};
