#!/usr/bin/env python
"""``ns-train`` (same arguments) with LPIPS built offline, for stock nerfstudio methods on a machine
without network.

Stock nerfacto / vanilla-nerf build torchmetrics' LPIPS when the model is set up, which downloads the
AlexNet backbone weights and fails without network; LPIPS is only an evaluation metric. Here the model
builds :class:`nerfinternals.metrics.OfflineLPIPS` instead (weights from the torch hub cache when
present, else LPIPS is reported as null); training is unchanged.
"""

from __future__ import annotations

import sys

from nerfstudio.scripts.train import entrypoint

from nerfinternals.metrics import offline_lpips

if __name__ == "__main__":
    sys.argv[0] = "ns-train"
    with offline_lpips():
        entrypoint()
