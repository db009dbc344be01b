// A step that traps: the upgrade that runs it must be rolled back as a whole.
import Prim "mo:prim";

module {
  public func migration(old : { var count : Int }) : { var count : Int } {
    if (old.count >= 0) {
      Prim.trap("20250501_000000_Fails: the count is not negative");
    };
    { var count = old.count };
  };
};
