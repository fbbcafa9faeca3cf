"""Self-supervised pretraining (``edgekit pretrain``): S3L's scaled-down SimCLR, MoCo v2 and BYOL.

See :mod:`.trainer` (the run), :mod:`.methods` (the methods' registry), :mod:`.views` (the
augmentation), :mod:`.knn` (the k-NN probe) and :mod:`.config` (the options)."""
from .config import PretrainConfig
from .trainer import pretrain

__all__ = ["PretrainConfig", "pretrain"]
