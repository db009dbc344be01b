persistent actor {
  type Peer = actor { notify : shared Nat -> (); balance : shared query () -> async Nat; ping : shared () -> async () };
  var peers : [?Peer] = [];
  var self_ : ?(actor { hello : shared () -> async Text }) = null;
};
