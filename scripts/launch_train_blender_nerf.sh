#!/usr/bin/env bash
# Train activation-nerf on the Blender scenes with the authors' settings.
# Usage and options: launch_train_blender_nerf.sh -h (shared code: scripts/_launch_common.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_launch_common.sh"

METHOD=activation-nerf
DATAPARSER=blender-data
DATA_ROOT=data/blender
SCENES=(chair drums ficus hotdog lego materials mic ship)
REQUIRED_FILE=transforms_train.json
DESCRIPTION="Train activation-nerf on the Blender scenes with the authors' settings."
METHOD_OPTS=(
    --vis tensorboard
    --viewer.quit-on-train-completion True
    --pipeline.datamanager.train-num-rays-per-batch 512
)
DATAPARSER_OPTS=()

launch_main "$@"
