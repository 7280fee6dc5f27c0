"""The samplers of the product: fine-sample budgets, the post hoc density grid, empty-ray skipping, hybrid.

References independent of the code under test: nerfstudio's own samplers, fields and renderers composed
by hand, stock nerfstudio models built with other sample counts, hand-computed trilinear values, the
scene's known background colour.
"""

from __future__ import annotations

import os

import pytest
import torch
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.model_components.ray_samplers import PDFSampler
from nerfstudio.models.mipnerf import MipNerfModel
from nerfstudio.models.nerfacto import NerfactoModelConfig
from nerfstudio.models.vanilla_nerf import VanillaModelConfig

from nerfinternals.grid import DensityGrid, grid_points
from nerfinternals.loading import load_pipeline
from nerfinternals.metrics import offline_lpips
from tests.runs import _NERF, _NERFACTO, REPO, build_model, camera_bundle

SCENE_BOX = SceneBox(aabb=torch.tensor([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]))


def _stock_model(config, ours):
    """A stock nerfstudio model of ``config`` carrying ``ours``' weights (the keys are equal: test_models)."""
    with offline_lpips():
        stock = config.setup(scene_box=SCENE_BOX, num_train_data=2).eval()
    state = {k: v for k, v in ours.state_dict().items() if ".lpips." not in f".{k}"}
    missing, unexpected = stock.load_state_dict(state, strict=False)
    assert not unexpected and all(".lpips." in f".{k}" for k in missing)
    return stock


# ---- fine-sample budgets -------------------------------------------------------------------------------
def test_nerf_stock_sampler_with_k_fine_samples_is_nerfstudios_pdf_sampler_without_originals():
    model, bundle = build_model("nerf"), camera_bundle()
    k = 5
    ours, _ = model.render_sampled(bundle, "stock", fine_samples=k)
    # by hand from nerfstudio's parts: coarse pass, a PDFSampler of K samples without the originals, fine pass
    rays = model.collider(bundle.flatten())
    uniform = model.sampler_uniform(rays)
    coarse = model.field_coarse.forward(uniform)
    weights = uniform.get_weights(coarse[FieldHeadNames.DENSITY])
    fine_samples = PDFSampler(num_samples=k, include_original=False).eval()(rays, uniform, weights)
    assert fine_samples.shape == (rays.shape[0], k)
    fine = model.field_fine.forward(fine_samples)
    rgb = model.renderer_rgb(fine[FieldHeadNames.RGB], fine_samples.get_weights(fine[FieldHeadNames.DENSITY]))
    assert torch.allclose(ours["rgb"].reshape(-1, 3), rgb, atol=1e-6)
    # K = 0: the model's own budget, nerfstudio's pipeline bit for bit
    assert torch.equal(
        model.render_sampled(bundle, "stock")[0]["rgb"], model.render_stock(bundle)["rgb_fine"]
    )


def test_mipnerf_stock_sampler_with_k_equals_stock_mipnerf_built_with_k():
    from nerfinternals.models import ActivationMipNerfModelConfig

    torch.manual_seed(0)  # stock Mip-NeRF's MLP sizes (fixed in nerfstudio), few samples
    ours_model = ActivationMipNerfModelConfig(
        num_coarse_samples=8, num_importance_samples=8, collider_params=_NERF["collider_params"]
    )
    ours_model = ours_model.setup(scene_box=SCENE_BOX, num_train_data=2).eval()
    bundle = camera_bundle()
    k = 5
    stock = _stock_model(
        VanillaModelConfig(
            _target=MipNerfModel,
            num_coarse_samples=_NERF["num_coarse_samples"],
            num_importance_samples=k,
            collider_params=_NERF["collider_params"],
        ),
        ours_model,
    )
    expected = stock.get_outputs_for_camera_ray_bundle(bundle)["rgb_fine"]
    ours, _ = ours_model.render_sampled(bundle, "stock", fine_samples=k)
    assert torch.allclose(ours["rgb"], expected, atol=1e-6)


def test_nerfacto_stock_sampler_with_k_equals_stock_nerfacto_built_with_k():
    """K sets the field's samples and scales the later proposal stage by K / (the field's stock count)."""
    ours_model, bundle = build_model("nerfacto-stock"), camera_bundle()
    assert ours_model.fine_counts(4) == ([4], 4)  # 8 proposal + 8 field samples, K = 4: 8 * 4 / 8 = 4
    assert ours_model.fine_counts(0) == ([8], 8)
    stock = _stock_model(
        NerfactoModelConfig(
            implementation="torch",
            num_proposal_samples_per_ray=(16, 4),
            num_nerf_samples_per_ray=4,
            **{
                k: v
                for k, v in _NERFACTO.items()
                if k
                not in (
                    "num_proposal_samples_per_ray",
                    "num_nerf_samples_per_ray",
                    "proposal_mlp_layer_width",
                )
            },
        ),
        ours_model,
    )
    expected = stock.get_outputs_for_camera_ray_bundle(bundle)["rgb"]
    ours, _ = ours_model.render_sampled(bundle, "stock", fine_samples=4)
    assert torch.allclose(ours["rgb"], expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["nerf", "mipnerf", "nerfacto"])
def test_fine_budget_sets_the_final_pass_multiply_adds(models, kind):
    from nerfinternals.internals import linear_macs

    model = models(kind)
    if kind == "nerfacto":  # 8 samples of proposal network 2 and 8 of the field; K = 4 halves both
        per_prop, per_field = linear_macs(model._proposal_net(1)), linear_macs(model.field)
        assert model.fine_macs_per_ray(4) == 4 * per_prop + 4 * per_field
        assert model.fine_macs_per_ray(0) == 8 * per_prop + 8 * per_field
    else:
        fine = model.field_fine if kind == "nerf" else model.field
        assert model.fine_macs_per_ray(4) == 4 * linear_macs(fine)
        # NeRF: nerfstudio merges the 8 + 1 uniform bin edges with 8 + 1 new ones: 17 samples (see test_benchmark)
        assert model.fine_macs_per_ray(0) == (17 if kind == "nerf" else 8) * linear_macs(fine)
    # the grid's estimate costs no multiply-adds per ray: only the final pass
    assert model.macs_per_ray(None, sampler="grid", fine_samples=4) == model.fine_macs_per_ray(4)


# ---- the density grid ----------------------------------------------------------------------------------
def test_density_grid_is_trilinear_between_its_nodes():
    # density = x + 2y + 3z is reproduced exactly by trilinear interpolation
    grid = DensityGrid(lambda p: p @ torch.tensor([1.0, 2.0, 3.0]), resolution=5, device="cpu")
    points = torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.55, 0.05, 0.95]])
    assert torch.allclose(grid.density(points), points @ torch.tensor([1.0, 2.0, 3.0]), atol=1e-6)
    assert grid.density(torch.tensor([[1.5, 0.5, 0.5], [-0.5, 0.5, 0.5]])).abs().max() == 0  # outside
    assert grid.evaluations == 125 and grid.nbytes == 125 * 4
    assert grid_points(3)[:2].tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]
    assert not grid.volume.requires_grad and grid.volume.grad_fn is None  # filled without autograd


@pytest.mark.parametrize("kind", ["nerf", "nerfacto", "nerfacto-stock", "nerfacto-bounded"])
def test_grid_nodes_hold_the_replaced_networks_density(models, kind):
    """At the grid's nodes the lookup equals the replaced network's own density function (nerfacto: the
    first proposal network's ``density_fn``, through scene contraction where the model has it)."""
    model = models(kind)
    res = 5
    grid = model.density_grid(res)
    assert model.density_grid(res) is grid  # cached
    torch.manual_seed(1)
    positions = (torch.rand(200, 3) * 2 - 1) * (3.0 if kind == "nerfacto" else 1.4)
    unit, inside = model.grid_coordinates(positions)
    if kind == "nerf":
        expected = model.field_coarse.density_fn(positions).reshape(-1)
    else:
        expected = model.density_fns[0](positions).reshape(-1)
    assert torch.allclose(model.grid_density(unit, res) * inside, expected, rtol=1e-5, atol=1e-6)
    # and at the nodes themselves, the grid holds those values
    nodes = grid_points(res)
    assert torch.allclose(grid.density(nodes), model.grid_density(nodes, res), rtol=1e-5, atol=1e-5)


def test_grid_is_refilled_when_the_replaced_network_changes(models):
    model = build_model("nerf")
    grid = model.density_grid(4)
    assert model.density_grid(4) is grid
    with torch.no_grad():  # what an optimiser step does: update the parameters in place
        model.field_coarse.mlp_base.layers[0].bias.add_(0.5)
    assert model.density_grid(4) is not grid
    model.field_fine.mlp_base.layers[0].bias.data.add_(0.5)  # the fine network is not the grid's
    assert model.density_grid(4) is model.density_grid(4)


def test_grid_box_of_ndc_runs_is_the_ndc_cube():
    model = build_model("nerf")
    model.config.use_ndc_collider = True
    unit, inside = model.grid_coordinates(
        torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.5]])
    )
    assert unit[:2].tolist() == [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]] and inside.tolist() == [True, True, False]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"grid_resolution": 1}, "--grid-resolution must be at least 2"),
        ({"grid_resolution": 4096}, r"needs 256\.0 GiB .* at most 512"),
        ({"fine_samples": 1}, "--fine-samples must be 0 .* or at least 2"),
        ({"fine_samples": -4}, "--fine-samples must be 0"),
        ({"inference_sampler": "occupancy"}, "unknown sampler 'occupancy'"),
        ({"empty_threshold": -1.0}, "--empty-threshold must be at least 0"),
    ],
)
def test_bad_sampler_settings_are_refused(models, settings, message):
    model = models("nerf")
    before = model.inference_settings()
    with pytest.raises(ValueError, match=message):
        model.set_inference(**settings)
    assert model.inference_settings() == before


# ---- empty-ray skipping on a trained run -------------------------------------------------------------
RUN = REPO / "outputs/demo/spheres/activation-nerf/run/config.yml"


@pytest.fixture(scope="module")
def spheres():
    """The shipped activation-nerf run (spheres on a white background) and its first test view."""
    if not RUN.is_file():
        pytest.skip("no shipped activation-nerf run")
    from nerfinternals.common import eval_views
    from nerfinternals.demo import DEMO_SCENE, ensure_scene

    old = os.getcwd()
    os.chdir(REPO)
    try:
        ensure_scene(REPO / DEMO_SCENE)
        pipeline = load_pipeline(RUN.relative_to(REPO), device="cpu")[1]
    finally:
        os.chdir(old)
    ((_, bundle, _),) = eval_views(pipeline.model, pipeline.datamanager.fixed_indices_eval_dataloader, 1, 0.5)
    return pipeline.model, bundle


def _grid_keeps_by_hand(model, bundle, resolution: int = 64, threshold: float = 1e-3):
    """(H, W) mask of the rays the density grid finds non-empty, built by hand: the grid's density (its nodes
    hold the coarse network's: test_grid_nodes_hold_the_replaced_networks_density) at nerfstudio's uniform
    coarse samples, the scene box mapped to the unit cube here, nerfstudio's weights accumulated along the
    ray and compared with the threshold. Also the accumulation itself. Call after a render (near plane)."""
    height, width = bundle.shape
    rays = model.collider(bundle.flatten())
    samples = model.sampler_uniform(rays)  # nerfstudio's stock coarse sampler: N uniform samples
    lo, hi = model.scene_box.aabb.float()
    unit = (samples.frustums.get_positions() - lo) / (hi - lo)
    density = model.density_grid(resolution).density(unit) * ((unit >= 0) & (unit <= 1)).all(dim=-1)
    accumulation = samples.get_weights(density[..., None]).sum(dim=(-2, -1))
    return (accumulation >= threshold).view(height, width), accumulation.view(height, width)


@pytest.mark.parametrize("sampler", ["stock", "activation", "grid", "hybrid"])
def test_skip_empty_threshold_zero_is_the_render_without_skipping(spheres, sampler):
    model, bundle = spheres
    plain, _ = model.render_sampled(bundle, sampler, fine_samples=16)
    skipped, _ = model.render_sampled(bundle, sampler, fine_samples=16, skip_empty=True, empty_threshold=0.0)
    assert skipped["gate_mask"].all()
    for name in ("rgb", "accumulation", "depth"):
        assert torch.equal(plain[name], skipped[name]), name
    # the scene has rays a positive threshold skips: threshold 0 keeps them, it does not find none
    keeps, _ = _grid_keeps_by_hand(model, bundle)
    assert 0.1 < (~keeps).float().mean() < 0.9
    # and the skipping path is live for this sampler: a positive threshold does skip rays (the activation
    # estimate accumulates between 0.05 and 0.5 on every ray of this view: 0.5 skips them all)
    threshold = 0.5 if sampler == "activation" else 0.05
    positive, _ = model.render_sampled(
        bundle, sampler, fine_samples=16, skip_empty=True, empty_threshold=threshold
    )
    assert not positive["gate_mask"].all()
    assert not torch.equal(positive["rgb"], plain["rgb"])


@pytest.mark.parametrize("sampler", ["stock", "grid", "hybrid"])
def test_skipped_rays_are_background_and_the_rest_as_without_skipping(spheres, sampler):
    model, bundle = spheres
    plain, _ = model.render_sampled(bundle, sampler)
    skipped, _ = model.render_sampled(bundle, sampler, skip_empty=True)
    rendered = skipped["gate_mask"][..., 0]
    assert 0.2 < rendered.float().mean() < 0.9  # spheres in the middle, background around them
    white = torch.ones(3)  # the scene's background (Blender format, white)
    assert torch.equal(skipped["rgb"][~rendered], white.expand(int((~rendered).sum()), 3))
    assert (skipped["accumulation"][~rendered] == 0).all()
    assert torch.allclose(skipped["rgb"][rendered], plain["rgb"][rendered], atol=1e-5)
    # and what was skipped was background in the full render too (stock: 1 of 388 pixels is not, here)
    off = (plain["rgb"][~rendered] - white).abs().amax(dim=-1) > 0.05
    assert off.float().mean() < 0.01


def test_hybrid_is_activation_on_the_rays_the_grid_keeps_and_background_elsewhere(spheres):
    """Hybrid with skipping: the rays the grid finds empty (a mask built by hand from the grid's density) are
    the background colour, the others are the activation sampler's render of them."""
    model, bundle = spheres
    activation, _ = model.render_sampled(bundle, "activation", layer=1)
    hybrid, _ = model.render_sampled(bundle, "hybrid", layer=1, skip_empty=True)
    keeps, accumulation = _grid_keeps_by_hand(model, bundle)
    clear = (accumulation - 1e-3).abs() > 1e-6  # rays not at the threshold within float error
    assert torch.equal(hybrid["gate_mask"][..., 0][clear], keeps[clear])
    kept = hybrid["gate_mask"][..., 0]
    assert 0.2 < kept.float().mean() < 0.9  # spheres in the middle, background around them
    white = torch.ones(3)  # the scene's background (Blender format, white)
    assert torch.equal(hybrid["rgb"][~kept], white.expand(int((~kept).sum()), 3))
    assert (hybrid["accumulation"][~kept] == 0).all()
    assert torch.allclose(hybrid["rgb"][kept], activation["rgb"][kept], atol=1e-5)
    # the activation render is not background where the grid finds empty rays: the skipping shows
    assert (activation["rgb"][~kept] - white).abs().amax() > 1e-3 or (
        activation["accumulation"][~kept] > 0
    ).any()
    # without skipping, hybrid is the activation sampler on every ray, bit for bit
    assert torch.equal(model.render_sampled(bundle, "hybrid", layer=1)[0]["rgb"], activation["rgb"])


def test_mipnerf_grid_nodes_hold_stock_mipnerfs_density_of_a_cell_sized_gaussian():
    """Mip-NeRF's grid: each node holds stock nerfstudio Mip-NeRF's density of a Gaussian at the node whose
    per-axis variance is GRID_CELL_VARIANCE x the cell size squared (computed here from the scene box);
    not the density of a point. Between nodes: trilinear. The grid sampler renders from it."""
    from nerfinternals.models import ActivationMipNerfModelConfig

    torch.manual_seed(0)  # stock Mip-NeRF's MLP sizes (fixed in nerfstudio), few samples
    counts = dict(num_coarse_samples=8, num_importance_samples=8, collider_params=_NERF["collider_params"])
    ours = ActivationMipNerfModelConfig(**counts).setup(scene_box=SCENE_BOX, num_train_data=2).eval()
    stock = _stock_model(VanillaModelConfig(_target=MipNerfModel, **counts), ours)
    res = 5
    lo, hi = SCENE_BOX.aabb
    nodes = grid_points(res)
    positions = lo + nodes * (hi - lo)
    variance = ((hi - lo) / (res - 1)) ** 2 * type(ours).GRID_CELL_VARIANCE  # (3,): per axis
    field = stock.field  # nerfstudio's own field, with our weights

    def density(covs):
        encoded = field.position_encoding(positions, covs=covs)
        return field.field_output_density(field.mlp_base(encoded)).reshape(-1)

    expected = density(torch.diag_embed(variance.expand_as(positions)))
    grid = ours.density_grid(res)
    assert torch.allclose(grid.density(nodes), expected, rtol=1e-5, atol=1e-5)
    point = density(torch.zeros(*positions.shape, 3))
    assert not torch.allclose(point, expected, rtol=1e-3, atol=1e-4)  # the covariance matters
    # halfway between two nodes along x: the mean of their values
    a, b = nodes[0], nodes[res * res]  # (0, 0, 0) and (1 / (res - 1), 0, 0)
    mid = grid.density(((a + b) / 2)[None])
    assert torch.allclose(mid, (expected[0] + expected[res * res]) / 2, atol=1e-6)
    # the grid sampler renders finite colours from it (and needs no coarse pass)
    outputs, _ = ours.render_sampled(camera_bundle(), "grid", grid_resolution=res)
    assert torch.isfinite(outputs["rgb"]).all() and outputs["rgb"].shape == (9, 13, 3)
