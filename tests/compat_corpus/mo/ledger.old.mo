persistent actor {
  type Account = { owner : Principal; var balance : Nat };
  type Event = { #deposit : Nat; #withdraw : Nat; #transfer : { to : Principal; amount : Nat } };
  var accounts : [var Account] = [var];
  var log : [Event] = [];
  var listener : ?(shared Event -> ()) = null;
  let created : Int = 0;
};
