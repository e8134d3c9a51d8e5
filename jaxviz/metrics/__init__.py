"""Which map to trust: metrics of attribution maps, each returning one score per image, ``jit``-able, their
perturbations chunked by ``batch_size``, every random draw from an explicit key.

* :mod:`.faithfulness`: deletion and insertion (RISE), pixel flipping, region perturbation, faithfulness
  correlation, MuFidelity;
* :mod:`.road`: ROAD (noisy linear imputation; MoRF and LeRF);
* :mod:`.robustness`: max-sensitivity, local Lipschitz estimate, infidelity;
* :mod:`.randomization`: the sanity checks (model-parameter randomization, random logit) and map similarities;
* :mod:`.localization`: pointing game, relevance mass, relevance rank;
* :mod:`.complexity`: sparseness (Gini), complexity (entropy).

``f(model, variables, images, target, maps, **options)`` for the metrics that score perturbed inputs;
``f(method, model, variables, images, target, **options)`` for those that re-run the attribution method;
``f(maps, ...)`` for those that read the map alone.
"""

from jaxviz._lazy import lazy

#: metric name -> "module:function", for the CLI and for tables.
METRICS = {
    "deletion": "faithfulness:deletion", "insertion": "faithfulness:insertion",
    "pixel_flipping": "faithfulness:pixel_flipping", "region_perturbation": "faithfulness:region_perturbation",
    "faithfulness_correlation": "faithfulness:faithfulness_correlation", "mu_fidelity": "faithfulness:mu_fidelity",
    "road": "road:road", "max_sensitivity": "robustness:max_sensitivity",
    "local_lipschitz": "robustness:local_lipschitz", "infidelity": "robustness:infidelity",
    "model_parameter_randomization": "randomization:model_parameter_randomization",
    "random_logit": "randomization:random_logit", "pointing_game": "localization:pointing_game",
    "relevance_mass": "localization:relevance_mass", "relevance_rank": "localization:relevance_rank",
    "sparseness": "complexity:sparseness", "complexity": "complexity:complexity",
}

__getattr__, __dir__ = lazy(__name__, ("faithfulness", "road", "robustness", "randomization", "localization",
                                       "complexity"), METRICS)
