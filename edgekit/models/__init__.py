"""edgekit's own architectures, registered into :mod:`edgekit.registry` on import."""
