persistent actor {
  type List<T> = ?(T, List<T>);
  type Pair<A, B> = (A, B);
  var l : List<Pair<Nat, Text>> = null;
  var tree : Tree = #leaf;
  type Tree = { #leaf; #node : (Tree, Char, Tree) };
};
