"""The ``resgraph`` command line.

Commands live in the modules that implement them and are imported only when run, so
``validate``, ``summary``, ``build`` and ``render`` answer without importing torch.
Every :class:`ResgraphError` becomes ``error: ...`` on stderr (one line per problem, see
:func:`resgraph.errors.error_lines`) and exit status 1 (its ``exit_status``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from resgraph.errors import ResgraphError, error_lines

# name -> ("module:function" of a click command, one-line help shown by --help)
COMMANDS = {
    "validate": ("resgraph.commands:validate", "Check specs: schema, lowering, shapes, joins."),
    "summary": ("resgraph.commands:summary", "Parameters, MACs and shapes per stage or layer."),
    "schema": ("resgraph.commands:schema", "Print the JSON Schema of the spec language."),
    "show": ("resgraph.show:show", "Print a spec with its base chain merged in."),
    "lower": ("resgraph.commands:lower_cmd", "Print the IR after a pass (debugging aid)."),
    "build": ("resgraph.emit.commands:build", "Write standalone PyTorch source for specs."),
    "import-weights": (
        "resgraph.emit.commands:import_weights",
        "Convert a state_dict from another implementation to resgraph's names.",
    ),
    "render": ("resgraph.render:render_cmd", "Draw the network with graphviz."),
    "train": ("resgraph.train.cli:train", "Train a spec with the paper's recipe."),
    "eval": ("resgraph.train.cli:evaluate", "Report the test error of trained weights."),
    "pack": ("resgraph.train.cli:pack", "Pack an image folder into WebDataset tar shards."),
    "export": ("resgraph.export:export_cmd", "Export a network as ONNX or a torch.export program."),
    "diff": ("resgraph.diff:diff_cmd", "Compare two specs stage by stage."),
    "sample": ("resgraph.sample:sample_cmd", "Draw networks from a design space under budgets."),
    "sweep": ("resgraph.sweep:sweep_cmd", "Train every spec of a folder as Ray Tune trials."),
    "analyze": ("resgraph.analyze:analyze_cmd", "Error EDFs of design spaces from their sweeps."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise click.ClickException(f"command '{name}' is not available: {exc}") from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table, so --help imports no command module (nor torch).
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Like click's, except that a usage mistake (an unknown option, a bad value) is one
        ``error:`` line naming the command's help, like every other mistake."""
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare command: its help
            click.echo(exc.format_message(), err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path} --help" if exc.ctx else "resgraph --help"
            click.echo(f"error: {exc.format_message()} (see '{where}')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ResgraphError as exc:
            for line in error_lines(exc):
                click.echo(line, err=True)
            ctx.exit(exc.exit_status)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="resgraph")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Import this Python module first: the ops it defines join the registry, for block "
    "definitions to use (repeatable). A spec can never load code itself.",
)
def main(plugins: tuple[str, ...]) -> None:
    """resgraph: define, check, generate, render and train residual networks from YAML specs."""
    if plugins:
        from resgraph.plugins import load_plugin

        for name in plugins:
            load_plugin(name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
