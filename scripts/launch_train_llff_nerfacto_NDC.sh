#!/usr/bin/env bash
# Train activation-nerfacto on the LLFF scenes in NDC (llff-data) with the authors' settings.
# Usage and options: launch_train_llff_nerfacto_NDC.sh -h (shared code: scripts/_launch_common.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_launch_common.sh"

METHOD=activation-nerfacto
DATAPARSER=llff-data
DATA_ROOT=data/nerf_llff_data
SCENES=(fern flower fortress horns leaves orchids room trex)
REQUIRED_FILE=poses_bounds.npy
DESCRIPTION="Train activation-nerfacto on the LLFF scenes in NDC (llff-data) with the authors' settings."
METHOD_OPTS=(
    --vis tensorboard
    --viewer.quit-on-train-completion True
    --pipeline.model.camera-optimizer.mode off
    --pipeline.model.use-average-appearance-embedding False
    --pipeline.model.distortion-loss-mult 0
    --max-num-iterations 30000
    --pipeline.model.proposal-initial-sampler uniform
    --pipeline.model.disable-scene-contraction False
    --pipeline.model.use-ndc-collider True
    --pipeline.datamanager.train-num-rays-per-batch 1024
    --pipeline.datamanager.eval-num-rays-per-batch 2048
    --pipeline.model.eval-num-rays-per-chunk 2048
)
DATAPARSER_OPTS=(--scale-factor 0.75 --downscale-factor 4)

launch_main "$@"
