"""Built-in reproductions: one module per experiment, each calling ``register_experiment`` at import time.

:func:`contrastkit.reproduce.get_experiment` imports every module here (names not starting with ``_``) on first use.
Keep module-level imports light; import training code inside the experiment's ``run`` function.
"""
