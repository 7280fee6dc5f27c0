"""The estimators and the render loop: every sampler renders what the stored reference renders hold."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference_renders import CASES, DATA, REPO, RUNS, load_view, render_case


@pytest.fixture(scope="module")
def references():
    if not DATA.is_file():
        pytest.skip("no reference renders (python -m tests.reference_renders)")
    return dict(np.load(DATA))


@pytest.fixture(scope="module", params=list(RUNS))
def shipped(request):
    if not (REPO / RUNS[request.param]).is_file():
        pytest.skip(f"no shipped activation-{request.param} run")
    return request.param, *load_view(request.param)


def test_every_sampler_renders_the_reference_pixels(shipped, references):
    kind, model, bundle = shipped
    for case in CASES:
        rendered = render_case(model, bundle, case)
        stored = {k.rsplit("/", 1)[1]: v for k, v in references.items() if k.startswith(f"{kind}/{case}/")}
        assert set(rendered) == set(stored), (case, sorted(rendered), sorted(stored))
        for name, value in rendered.items():
            np.testing.assert_allclose(
                value, stored[name], atol=1e-6, rtol=0, err_msg=f"{kind} {case} {name}"
            )
