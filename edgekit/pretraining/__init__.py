"""Self-supervised pretraining (``edgekit pretrain``): S3L's scaled-down SimCLR, MoCo v2 and BYOL.

See :mod:`.trainer` (the run, :func:`edgekit.pretrain`), :mod:`.methods` (the methods'
registry), :mod:`.views` (the augmentation), :mod:`.knn` (the k-NN probe) and :mod:`.config`
(the options, free of torch like this package's top level)."""
from .config import PretrainConfig

__all__ = ["PretrainConfig"]
