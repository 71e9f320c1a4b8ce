"""Method recipes: each a small composition of views, backbone, heads and a loss, driven by ``training_step``.

Importing this package registers every built-in method's config and builder
(:mod:`contrastkit.method_registry`), so that ``contrastkit train`` can build it from YAML.
"""

from contrastkit.methods.ariel import ARIEL, ARIELConfig
from contrastkit.methods.base import (
    EpochContext,
    FitContext,
    Method,
    MethodHooks,
    StepContext,
    trainable_parameters,
    views_of,
)
from contrastkit.methods.dcc import CondensationConfig, SetClassifier, get_loops, matching_loss
from contrastkit.methods.directclr import DirectCLR, DirectCLRConfig
from contrastkit.methods.grace import GRACE, GRACEConfig
from contrastkit.methods.hcsc import HCSC, HCSCConfig, PCLConfig
from contrastkit.methods.moco import MoCo, MoCoConfig
from contrastkit.methods.simclr import SimCLR, SimCLRConfig
from contrastkit.methods.supercon import SuperCon, SuperConConfig, supercon_classifier
from contrastkit.methods.supervised import SupervisedClassifier, SupervisedConfig

__all__ = ["EpochContext", "FitContext", "Method", "MethodHooks", "StepContext", "trainable_parameters", "views_of"]
__all__ += ["DirectCLR", "DirectCLRConfig", "SimCLR", "SimCLRConfig"]
__all__ += ["HCSC", "HCSCConfig", "MoCo", "MoCoConfig", "PCLConfig"]
__all__ += ["ARIEL", "ARIELConfig", "GRACE", "GRACEConfig"]  # graph contrast (node level)
__all__ += ["SuperCon", "SuperConConfig", "supercon_classifier", "SupervisedClassifier", "SupervisedConfig"]
__all__ += [
    "CondensationConfig",
    "SetClassifier",
    "get_loops",
    "matching_loss",
]  # dataset condensation (DC / DSA / DCC); its training (condense) is contrastkit.train.condensation
