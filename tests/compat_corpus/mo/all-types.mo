// Every kind of stable type moc can print, to check the printer byte for byte against moc's own
// `.most` output (not a pair: tests/test_compat_corpus.py compiles it alone).
persistent actor {
  type List<T> = ?(T, List<T>);
  type Tree = { #leaf; #node : (Tree, Nat, Tree) };
  type R = { var x : Nat; y : [var Int]; z : [Text] };
  type Map<K, V> = { #leaf; #node : (Map<K, V>, K, V, Map<K, V>) };
  var l : List<Nat> = null;
  let t : Tree = #leaf;
  var r : R = { var x = 0; y = [var]; z = [] };
  var c : Char = 'a';
  var b : Blob = "";
  var p : ?Principal = null;
  var f : ?(shared (Nat, Text) -> async Nat) = null;
  var q : ?(shared query Nat -> async ()) = null;
  var o : ?(shared Nat -> ()) = null;
  var cq : ?(shared composite query () -> async (Nat, Int)) = null;
  var a : ?(actor { foo : shared Nat -> async (); bar : shared query () -> async Text }) = null;
  var n : Null = null;
  var u : () = ();
  var an : Any = 1;
  var no : ?None = null;
  var tup : (Nat8, Nat16, Nat32, Nat64, Int8, Int16, Int32, Int64, Float, Bool) = (0, 0, 0, 0, 0, 0, 0, 0, 0.0, true);
  var reg : ?Region = null;
  var w : ?weak [var Nat] = null;
  var labels : { _123_ : Nat; type_ : Nat } = { _123_ = 2; type_ = 3 };
  var v : { #a; #b : Int; #c : { x : Nat } } = #a;
  var emptyrec : {} = {};
  var emptyvar : ?{ #} = null;
  var named : ?(shared (amount : Nat, to : Principal) -> async (ok : Bool)) = null;
  var g : ?(shared ((Nat, Text)) -> async ((Nat, Int))) = null;
  var verylongname_verylongname_verylongname : { aaaaaaaaaaaaa : Nat; bbbbbbbbbbbbbbbb : [var Text]; ccccccccccccccccc : (Nat, Int, Text, Nat, Int, Text, Nat, Int, Text) } = { aaaaaaaaaaaaa = 0; bbbbbbbbbbbbbbbb = [var]; ccccccccccccccccc = (0, 0, "", 0, 0, "", 0, 0, "") };
  var m : Map<Text, { #aaaaaaaaaaaaaaaa; #bbbbbbbbbbbbbbbbbbbbb : Nat; #ccccccccccccccccccccccc : ?Text; #ddddddddddd }> = #leaf;
  var ff : ?(shared ({ aaaaaaaaaaaaaaaaaa : Nat; bbbbbbbbbbbbbbbbbbbbbb : Text }, Nat) -> async ?{ cccccccccccccccc : Nat; dddddddddddddd : Int }) = null;
  let hof : ?(shared query () -> async ?(shared () -> ())) = null;
  var deep : [var ?[var { var a : ?{ b : [var (Nat, ?Text, { #x; #y : [var Nat] })] } }]] = [var];
};
