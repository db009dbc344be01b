// expect: record-field-added remove-variant-tag mutable-invariant drop-stable-variable add-variant-tag
persistent actor {
  type Account = { owner : Principal; var balance : Int; memo : ?Text };
  type Event = { #deposit : Nat; #transfer : { to : Principal; amount : Nat }; #fee : Nat };
  var accounts : [var Account] = [var];
  var log : [Event] = [];
  var listener : ?(shared Event -> ()) = null;
  var updated : Int = 0;
};
