"""A hostile gateway for the test suite and the fault matrix built on it.

``server`` is the scripted HTTP server, ``scenarios`` the catalogue of misbehaviours,
``entry_points`` runs one public campusllm entry point against a scenario, and ``matrix`` is
the table of expected outcomes (with the cells known to fail today).
"""
