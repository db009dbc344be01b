"""Example canisters (Motoko sources with their built .wasm/.did/.most); see examples/build.py."""
