"""Selection views and report views: every choice is made on other images than those it is reported on.

A choice (``--auto``'s configuration, the benchmark's fastest configuration within a PSNR budget, a
constant such as Mip-NeRF's grid cell variance) is made on the *selection views* and its figures are
reported on the *report views*; the two never share an image.

- Datasets with a val split of their own (Blender: ``transforms_val.json``; nerfstudio-data with
  ``val_filenames`` / ``test_filenames``): the val split selects, the test split reports.
- Datasets whose val and test splits are the same images (LLFF, nerfstudio-data's fraction / interval /
  filename / all splits), or share a camera under other file names (a Blender folder whose
  ``transforms_val.json`` repeats test cameras, as ``../shared/lego400`` does): the eval images, sorted
  by name (numbers by value: ``r_2`` before ``r_10``), alternate: even positions (0, 2, 4, ...) select,
  odd positions (1, 3, 5, ...) report. With fewer than 2 eval images there is nothing to choose on apart
  from the reported views: :func:`split_views` refuses.

- ``selection="train"``: the run's training cameras select (``train_views`` of them, evenly spaced in name
  order) and every eval image reports. A sampler's loss against stock is a property of its estimate,
  measurable on any camera with ground truth, and training cameras are many in every run and never
  reported on.

A configuration keeps a budget on the selection views when it keeps it on *every* selection view
(:func:`worst_view_delta`, :data:`SELECTION_RULE`), not on their mean: views disagree, and a mean over a
few of them let picks through that lost 0.3-0.8 dB on the report views of real captures.

Each side is in that name order; ``max_images`` keeps the first N of each side. Views are named by their image file, relative to the
dataset folder (``val/r_0.png``, ``test/r_0.png``, ``images/IMG_0001.JPG``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from nerfstudio.data.utils.dataloaders import FixedIndicesEvalDataloader

from nerfinternals.common import eval_views
from nerfinternals.loading import InputError

SEPARATE_SPLITS = "val split selects, test split reports"
ALTERNATE = "eval images sorted by name: even positions select, odd positions report"
TRAIN = "training cameras select ({n} evenly spaced), every eval image reports"
RULE = "val split selects unless it shares a file or a camera with the test split; else eval images alternate"
"""Which rule :func:`split_views` follows (a condition of ``--auto``'s recorded choices)."""
SELECTION_RULE = "within the budget on every selection view"
"""How a configuration is judged on the selection views (a condition of ``--auto``'s recorded choices)."""
SELECTIONS = ("eval", "train")
"""Where the selection views come from: eval images never reported on, or training cameras."""
TRAIN_VIEWS = 8
"""How many training cameras select by default with ``selection="train"``."""


def worst_view_delta(psnrs: list[float], base_psnrs: list[float]) -> float:
    """The lowest per-view PSNR difference to base (both in the same view order): what
    :data:`SELECTION_RULE` holds against the budget."""
    if not psnrs:
        raise ValueError("no views")
    return min(p - b for p, b in zip(psnrs, base_psnrs, strict=True))


def evenly_spaced(count: int, n: int) -> list[int]:
    """``n`` positions of ``range(count)``, evenly spaced from the first to the last (all when n >= count)."""
    if n >= count:
        return list(range(count))
    if n == 1:
        return [0]
    return [round(i * (count - 1) / (n - 1)) for i in range(n)]


def name_order(names: list[str]) -> list[int]:
    """Indices of ``names`` in name order, numbers compared by value (``r_2`` before ``r_10``)."""

    def key(i: int) -> list:
        return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", names[i])]

    return sorted(range(len(names)), key=key)


@dataclass
class Side:
    """One side of a :class:`ViewSplit`: a dataset and the indices of its images on this side."""

    dataset: object
    indices: list[int]
    names: list[str]

    def loader(self, device) -> FixedIndicesEvalDataloader:
        return FixedIndicesEvalDataloader(
            input_dataset=self.dataset, image_indices=self.indices, device=device
        )

    def views(self, model, rescale: float = 1.0):
        """(image index, (H, W) ray bundle, (H, W, 3) target) of each view (:func:`eval_views`)."""
        return eval_views(model, self.loader(model.device), None, rescale)


@dataclass
class ViewSplit:
    selection: Side
    report: Side
    rule: str

    def record(self) -> dict:
        """``selection_views``, ``report_views`` (image names) and the ``view_rule``, for JSON outputs."""
        return {
            "selection_views": self.selection.names,
            "report_views": self.report.names,
            "view_rule": self.rule,
        }


def _cameras(outputs) -> torch.Tensor:
    """(N, 18): each view's camera-to-world matrix and intrinsics (fx, fy, cx, cy, width, height)."""
    cameras = outputs.cameras
    intrinsics = [cameras.fx, cameras.fy, cameras.cx, cameras.cy, cameras.width, cameras.height]
    return torch.cat([cameras.camera_to_worlds.flatten(1)] + [x.float().view(-1, 1) for x in intrinsics], 1)


def shared_cameras(a, b) -> bool:
    """Whether any view of dataparser outputs ``a`` is seen from the same camera as a view of ``b``."""
    ca, cb = _cameras(a), _cameras(b)
    scale = 1.0 + max(ca.abs().max().item(), cb.abs().max().item())
    return bool(((ca[:, None] - cb[None]).abs().amax(-1) <= 1e-6 * scale).any())


def _names(outputs, root: Path | None) -> list[str]:
    names = []
    for path in outputs.image_filenames:
        path = Path(path)
        try:
            names.append(path.resolve().relative_to(root).as_posix() if root else path.name)
        except ValueError:
            names.append(path.name)
    return names


def split_views(
    datamanager, max_images: int | None = None, selection: str = "eval", train_views: int = TRAIN_VIEWS
) -> ViewSplit:
    """The selection and report views of a pipeline's datamanager (module docstring for the rules)."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    parser = datamanager.dataparser
    root = getattr(parser.config, "data", None)
    root = Path(root).resolve() if root else None
    if root is not None and root.is_file():
        root = root.parent
    outputs = {"test": parser.get_dataparser_outputs(split="test")}

    def dataset(split: str):
        return datamanager.dataset_type(
            dataparser_outputs=outputs[split], scale_factor=datamanager.config.camera_res_scale_factor
        )

    limit = slice(None) if max_images is None else slice(0, max(max_images, 0))
    if selection == "train":
        if train_views < 1:
            raise InputError(f"choosing on training cameras needs at least 1 of them, got {train_views}")
        outputs["train"] = parser.get_dataparser_outputs(split="train")
        train, test = _names(outputs["train"], root), _names(outputs["test"], root)
        train_order, test_order = name_order(train), name_order(test)[limit]
        train_order = [train_order[i] for i in evenly_spaced(len(train_order), train_views)]
        sides = [
            Side(dataset("train"), train_order, [train[i] for i in train_order]),
            Side(dataset("test"), test_order, [test[i] for i in test_order]),
        ]
        if not sides[1].indices:
            raise InputError("no eval images to report on")
        return ViewSplit(*sides, rule=TRAIN.format(n=len(sides[0].indices)))
    try:
        outputs["val"] = parser.get_dataparser_outputs(split="val")
    except Exception:  # no val split (a Blender folder without transforms_val.json, a split list without one)
        outputs["val"] = None
    files = {
        split: [str(Path(p).resolve()) for p in o.image_filenames] if o else []
        for split, o in outputs.items()
    }
    separate = (
        files["val"]
        and files["test"]
        and not set(files["val"]) & set(files["test"])
        and not shared_cameras(outputs["val"], outputs["test"])
    )
    if separate:
        sides = []
        for split in ("val", "test"):
            names = _names(outputs[split], root)
            order = name_order(names)[limit]
            sides.append(Side(dataset(split), order, [names[i] for i in order]))
        return ViewSplit(*sides, rule=SEPARATE_SPLITS)
    names = _names(outputs["test"], root)
    if len(names) < 2:
        raise InputError(
            f"{len(names)} eval image(s) and no separate val split: too few to choose on other images "
            "than those reported (needs at least 2)"
        )
    order = name_order(names)
    test = dataset("test")
    sides = [Side(test, half[limit], [names[i] for i in half[limit]]) for half in (order[0::2], order[1::2])]
    return ViewSplit(*sides, rule=ALTERNATE)
