"""A stand-in for a product package (the original's ``apm``, ``metadata``, …): its sub-packages' ``tasks`` modules are
discovered by the backend app when ``TASK_ROOT_MODULES`` names it."""
