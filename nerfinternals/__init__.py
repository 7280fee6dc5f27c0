"""nerfinternals: activation-informed sampling for trained coarse-to-fine radiance fields (nerfstudio plugin)."""

__version__ = "0.1.0"
