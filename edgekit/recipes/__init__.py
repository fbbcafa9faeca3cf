"""Recipes: one YAML file per shipped pipeline in ``models/``, run stage by stage, cached.

:mod:`.load` reads a recipe, applies ``--set`` overrides (OmegaConf) and validates it
against the stages' typed configurations; :mod:`.run` runs its stages through the library
(``edgekit run models/NAME.yaml -o DIR``, :func:`edgekit.run_recipe`).
"""
