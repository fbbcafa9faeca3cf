"""Semi-supervised training (``edgekit train --semi``): R2-D2, pseudo-labelling and the labelled-only
baseline, registered regimes over one phase runner (:mod:`.base`)."""
from . import pseudo_label, r2d2, supervised  # noqa: F401  (registration)
from .base import Phase, Regime, SemiRun, get_regime, list_regimes, register_regime, run_phases

__all__ = ["Phase", "Regime", "SemiRun", "get_regime", "list_regimes", "register_regime", "run_phases"]
