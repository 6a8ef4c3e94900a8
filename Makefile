# The two set-up commands of the README. Both create or reuse .venv and install what they need.
.PHONY: demo test check bootstrap

bootstrap:
	@scripts/bootstrap.sh

# The main job on built-in defaults: validate, summarise, build, render and a short training run.
demo: bootstrap
	@scripts/demo.sh

# The whole suite, on two worker processes (what CI runs).
test: bootstrap
	.venv/bin/python -m pytest -n 2 --dist loadgroup

# The fast tier while working: the house style, then the tests that start no Python process,
# run no zoo-wide check and take no more than a few seconds (markers in pyproject.toml).
check: bootstrap
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -n 2 -m "not slow and not subprocess and not zoo"
