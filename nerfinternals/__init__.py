"""nerfinternals: activation-informed sampling for trained coarse-to-fine radiance fields (nerfstudio plugin)."""

import numpy as _np
import torch as _torch

__version__ = "0.1.0"

# nerfacto checkpoints hold numpy scalars (learning-rate scheduler state); torch >= 2.6 loads with
# weights_only=True by default and refuses them, so nerfstudio's eval_setup / ns-eval fail on them.
# Importing this plugin (which loading one of our config.yml files does) allows exactly these types.
_torch.serialization.add_safe_globals(
    [_np.core.multiarray.scalar, _np.dtype, type(_np.dtype(_np.float64)), type(_np.dtype(_np.float32))]
)
