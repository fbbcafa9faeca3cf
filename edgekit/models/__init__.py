"""edgekit's own architectures, declared in :mod:`edgekit.models.zoo` (:mod:`edgekit.models.entries`)
and adopted by :mod:`edgekit.registry`, which imports them; no model module imports the registry."""
