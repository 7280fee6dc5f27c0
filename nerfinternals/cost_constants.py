"""Per-operation times of the cost model (:mod:`nerfinternals.cost`), measured by
``python -m benchmarks.calibrate_cost --install`` on x86_64 CPU, 2 cores, torch 2.14.1+cu130, 2 threads,
2026-12-01 (median of 7; seconds per unit). Generated: do not edit."""

CONSTANTS = {
    "mac": {
        "256": 5.723794937149973e-09,
        "512": 2.8608261942936804e-09,
        "1024": 1.4316148757865512e-09,
        "4032": 3.632853447457377e-10,
        "4096": 3.5910335183166487e-10,
        "16384": 1.8632317893238108e-10,
        "25344": 3.094425032838962e-10,
        "65536": 1.4237509155630674e-10,
        "81664": 1.220562267452907e-10,
    },
    "hash": 2.477307734489011e-07,
    "encode": 3.029609849720178e-08,
    "ipe": 1.1306169359603711e-07,
    "grid": 4.989970703167534e-07,
    "composite": 3.072348021826432e-08,
    "draw": 4.503619384782498e-07,
}
