// expect: actor-method-removed
// The runtime check would accept dropping `ping`; moc (and graphcopy) reject it.
persistent actor {
  type Peer = actor { notify : shared Nat -> (); balance : shared query () -> async Int };
  var peers : [?Peer] = [];
  var self_ : ?(actor { hello : shared () -> async Text }) = null;
};
