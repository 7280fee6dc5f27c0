"""Per-operation times of the cost model (:mod:`nerfinternals.cost`), measured by
``python -m benchmarks.calibrate_cost --install`` on x86_64 CPU, 2 cores, torch 2.14.1+cu130, 2 threads,
2026-12-01 (median of 7; seconds per unit). Generated: do not edit."""

CONSTANTS = {
    "mac": {
        "256": 1.609587669312157e-11,
        "512": 1.3533771054796001e-11,
        "1024": 1.1505365372444301e-11,
        "4032": 1.12981342136274e-11,
        "4096": 1.0682098570491752e-11,
        "16384": 1.0808669030062858e-11,
        "25344": 2.674636455501428e-11,
        "65536": 1.5743873082213787e-11,
        "81664": 1.502887246007693e-11,
    },
    "hash": 4.687091350566615e-09,
    "encode": 7.282128711766984e-10,
    "ipe": 9.095256767009379e-09,
    "grid": 1.7327484128082382e-08,
    "composite": 4.21160889496619e-09,
    "draw": 1.337625121777819e-08,
}
