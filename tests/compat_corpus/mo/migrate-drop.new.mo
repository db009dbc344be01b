// expect: compatible
// The migration consumes `a`: a deliberate discard (warning only).
(with migration = func (_ : { var a : Nat }) : {} = {})
persistent actor {
  var b : Text = "";
  public func get() : async Text { b };
};
