// expect: compatible
persistent actor {
  type Seq<X> = ?(X, Seq<X>);
  var l : Seq<(Int, Text)> = null;
  var tree : T = #leaf;
  type T = { #leaf; #node : (T, Char, T); #many : [T] };
};
