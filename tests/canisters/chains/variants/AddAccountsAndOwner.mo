// AddAccounts edited after it was applied: it now also reads `owner` and writes it back, tagged.
module {
  public func migration(old : { var owner : Text }) : { var accounts : [(Text, Nat)]; var owner : Text } {
    { var accounts = []; var owner = "edited " # old.owner };
  };
};
