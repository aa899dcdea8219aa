"""Benchmark pairs, one module per transport; each calls :func:`harness.register` on import."""
