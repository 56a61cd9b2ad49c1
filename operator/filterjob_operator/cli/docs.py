"""The commands that describe or check without running anything: crd, filters, samples, validate."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from filterjob_operator.adapters import sources
from filterjob_operator.cli.common import invalid
from filterjob_operator.core import samples
from filterjob_operator.core.spec import JobSpecError, load_job
from filterjob_worker.core import catalog


@click.command()
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--local", is_flag=True, help="Accept plain paths, as `filterjob run` does.")
def validate(job_file: Path, local: bool) -> None:
    """Check a FilterJob file and print what is wrong with it, if anything."""
    console = Console(stderr=True)
    try:
        job = load_job(job_file, local=local)
        if local:  # the paths are this machine's: a symlink may lead the destination into the source
            sources.refuse_overlap(job)
    except JobSpecError as e:
        invalid(console, e)
    click.echo(f"{job_file}: valid FilterJob {job.key} with {len(job.spec.filters)} filter steps")


@click.command()
@click.option("--reference", is_flag=True, help="Print the FilterJob reference (Markdown) instead.")
def crd(reference: bool) -> None:
    """Print the FilterJob CustomResourceDefinition (YAML)."""
    import yaml  # noqa: PLC0415

    from filterjob_operator.core.crd import build_crd  # noqa: PLC0415
    from filterjob_operator.core.reference import render_reference  # noqa: PLC0415

    if reference:
        click.echo(render_reference(), nl=False)
        return
    click.echo(yaml.safe_dump(build_crd(), sort_keys=False), nl=False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the JSON Schema of a filters list instead.")
def filters(as_json: bool) -> None:
    """List the filter catalog with parameters."""
    if as_json:
        click.echo(json.dumps(catalog.json_schema(), indent=2))
        return
    console = Console()
    for fdef in catalog.CATALOG.values():
        # Descriptions hold brackets ("[left, top, right, bottom]") that Rich would take for markup.
        console.print(f"[bold]{fdef.name}[/]  {escape(fdef.description)}", highlight=False, soft_wrap=True)
        for param in fdef.params:
            line = f"    {param.name}: {param.summary()} — {param.description}"
            console.print(escape(line), highlight=False, soft_wrap=True)
        if problem := fdef.check({}):
            console.print(escape(f"    ({problem})"), highlight=False, soft_wrap=True)


def _size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 640x480, got {value!r}") from None
    if w < 1 or h < 1:
        raise click.BadParameter(f"width and height must be positive, got {value!r}")
    return w, h


@click.command("samples")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", "-n", type=click.IntRange(min=0), default=24, show_default=True)
@click.option("--size", callback=_size, default="640x480", show_default=True, help="WIDTHxHEIGHT.")
@click.option("--broken", type=click.IntRange(min=0), default=0, show_default=True, help="Also write N bad files.")
@click.option("--seed", type=int, default=0, show_default=True)
def samples_command(directory: Path, count: int, size: tuple[int, int], broken: int, seed: int) -> None:
    """Write synthetic sample images into DIRECTORY."""
    made = samples.make_samples(directory, count=count, size=size, broken=broken, seed=seed)
    click.echo(f"wrote {len(made.good)} images and {len(made.broken)} broken files to {directory}")
