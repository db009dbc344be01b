// expect: compatible
persistent actor {
  type Account = { owner : Principal; var balance : Nat };
  type Event = { #deposit : Nat; #withdraw : Nat; #transfer : { to : Principal; amount : Nat }; #fee : Nat };
  var accounts : [var Account] = [var];
  var log : [Event] = [];
  var listener : ?(shared { #deposit : Nat; #withdraw : Nat; #transfer : { to : Principal; amount : Nat } } -> ()) = null;
  var created : Int = 0;
  var updated : Int = 0;
};
