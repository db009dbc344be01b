// expect: type-mismatch char-nat32
persistent actor {
  type List<T> = ?(T, List<T>);
  type Pair<A, B> = (A, B);
  var l : List<Pair<Text, Nat>> = null;
  var tree : Tree = #leaf;
  type Tree = { #leaf; #node : (Tree, Nat32, Tree) };
};
