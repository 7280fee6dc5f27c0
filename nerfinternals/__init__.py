"""nerfinternals: activation-informed sampling for trained coarse-to-fine radiance fields (nerfstudio plugin)."""

import warnings as _warnings

__version__ = "0.1.0"

# nerfstudio 1.1.5 uses torch APIs that torch 2.14 deprecates; the warnings are printed on every
# import and say nothing about the user's run, so our command-line tools leave them out.
for _message in (r"`torch\.jit\.script` is deprecated", r"`torch\.cuda\.amp\.custom_(fwd|bwd)"):
    _warnings.filterwarnings("ignore", message=_message, category=FutureWarning)
# The same for deprecations inside nerfstudio's camera code and its eval dataloader's worker count.
for _message in (
    r"Using a non-tuple sequence for multidimensional indexing",
    r"Using torch\.cross without specifying the dim",
    r"This DataLoader will create \d+ worker processes",
):
    _warnings.filterwarnings("ignore", message=_message, category=UserWarning)
