#!/usr/bin/env bash
# Train activation-nerf on the LLFF scenes (NDC) with the authors' settings.
# Usage and options: launch_train_llff_nerf.sh -h (shared code: scripts/_launch_common.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_launch_common.sh"

METHOD=activation-nerf
DATAPARSER=llff-data
DATA_ROOT=data/nerf_llff_data
SCENES=(fern flower fortress horns leaves orchids room trex)
REQUIRED_FILE=poses_bounds.npy
DESCRIPTION="Train activation-nerf on the LLFF scenes (NDC) with the authors' settings."
METHOD_OPTS=(
    --vis tensorboard
    --viewer.quit-on-train-completion True
    --pipeline.datamanager.train-num-rays-per-batch 512
    --max-num-iterations 500000
    --pipeline.model.background-color last_sample
    --pipeline.model.use-ndc-collider True
)
DATAPARSER_OPTS=(--scale-factor 0.75 --downscale-factor 4)

launch_main "$@"
