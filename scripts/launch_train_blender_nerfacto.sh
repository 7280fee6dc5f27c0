#!/usr/bin/env bash
# Train activation-nerfacto on the Blender scenes with the authors' settings.
# Usage and options: launch_train_blender_nerfacto.sh -h (shared code: scripts/_launch_common.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_launch_common.sh"

METHOD=activation-nerfacto
DATAPARSER=blender-data
DATA_ROOT=data/blender
SCENES=(chair drums ficus hotdog lego materials mic ship)
REQUIRED_FILE=transforms_train.json
DESCRIPTION="Train activation-nerfacto on the Blender scenes with the authors' settings."
METHOD_OPTS=(
    --vis tensorboard
    --viewer.quit-on-train-completion True
    --pipeline.model.camera-optimizer.mode off
    --pipeline.model.use-average-appearance-embedding False
    --pipeline.model.distortion-loss-mult 0
    --max-num-iterations 16500
    --pipeline.model.background-color white
    --pipeline.model.proposal-initial-sampler uniform
    --pipeline.model.near-plane 2.0
    --pipeline.model.far-plane 6.0
    --pipeline.model.disable-scene-contraction True
    --pipeline.datamanager.train-num-rays-per-batch 2048
    --pipeline.datamanager.eval-num-rays-per-batch 2048
    --pipeline.model.eval-num-rays-per-chunk 2048
)
DATAPARSER_OPTS=()

launch_main "$@"
