"""Build-time tooling: the pinned Motoko compiler (``toolchain.moc``) and its JavaScript driver."""
