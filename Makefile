# The two set-up commands of the README. Both create or reuse .venv and install what they need.
.PHONY: demo test bootstrap

bootstrap:
	@scripts/bootstrap.sh

# The main job on built-in defaults: validate, summarise, build, render and a short training run.
demo: bootstrap
	@scripts/demo.sh

test: bootstrap
	.venv/bin/python -m pytest
