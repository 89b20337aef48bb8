"""The figures PlotWork draws, read back from their matplotlib objects: what a scientist would put in a paper draft.

A real sweep of tests/plot_experiments.py `Fit` (whose final loss is known from its parameters) is run once
through the command line; the figures of its results are checked for labels, colours, line counts, axes,
legend placement and print size, and the command line's --plot for its options and PNG files.
"""
import itertools
import json
import struct

import numpy as np
import pytest
from conftest import ROOT, requires, run_cli
from plot_experiments import final_loss

from cluster_work import load_results

pytestmark = requires("matplotlib")  # PlotWork draws with it (the plot extra)
SCRIPT = str(ROOT / "tests" / "plot_experiments.py")
RATES, RIDGES, SIZES = [0.003, 0.01, 0.03], [0.0, 0.1], [(200, 10), (800, 40)]
CONFIG = """\
name: DEFAULT
repetitions: 2
iterations: 4
path: results
---
name: fit
grid:
  optimizer:
    learning_rate: [0.003, 0.01, 0.03]
  ridge: [0.0, 0.1]
list:
  data:
    samples: [200, 800]
    features: [10, 40]
---
name: rate
grid:
  optimizer:
    learning_rate: [0.001, 0.003, 0.01, 0.03, 0.1]
---
name: size
grid:
  data:
    samples: [100, 200, 300, 400]
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plots")
    (folder / "config.yml").write_text(CONFIG)
    run_cli("Fit", "config.yml", cwd=folder, script=SCRIPT, check_rc=0)
    return folder


def results_of(folder, base):
    frame = load_results(folder / "results")
    return frame[frame.experiment.str.startswith(f"{base}__")]


def drawn(figure):
    """The figure rendered (so that layout and legend have their final places); its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def looks(ax):
    from matplotlib.colors import to_rgba
    return [(to_rgba(line.get_color()), line.get_linestyle(), line.get_marker()) for line in ax.lines]


def luminance(colour):
    """Relative luminance (WCAG) of a colour: 1 is white."""
    from matplotlib.colors import to_rgba
    channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgba(colour)[:3]]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast_on_white(colour):
    return 1.05 / (luminance(colour) + 0.05)


def png_size(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">II", data[16:24])


def fit_label(rate, ridge, samples, features):
    return f"learning_rate={rate:g}, ridge={ridge:g}, samples={samples}, features={features}"


# -- labels, colours and legends ---------------------------------------------------------------------------------

@pytest.mark.processes
def test_twelve_series_are_labelled_by_what_varies_and_each_looks_different(sweep):
    import plotwork
    figure = plotwork.plot_results(results_of(sweep, "fit"), "mean_2std", "loss")
    ax = figure.axes[0]
    assert len(ax.lines) == 12
    expected = [fit_label(rate, ridge, *size) for rate, ridge, size in itertools.product(RATES, RIDGES, SIZES)]
    assert [line.get_label() for line in ax.lines] == expected  # the sweep's order, outer loops first
    assert len(set(looks(ax))) == 12  # no two curves alike, although the palette has fewer than 12 colours
    renderer = drawn(figure)
    legend = ax.get_legend()
    shown = [text.get_text().replace("\n", " ") for text in legend.get_texts()]
    assert shown == expected
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))  # off the data
    assert figure.bbox.contains(*legend.get_window_extent(renderer).p1)  # and on the page


@pytest.mark.processes
def test_one_swept_parameter_is_drawn_on_an_ordered_colour_scale(sweep):
    import matplotlib
    from matplotlib.colors import to_rgba

    import plotwork
    frame = results_of(sweep, "rate")
    figure = plotwork.plot_results(frame.iloc[::-1], "mean_2std", "loss")  # whatever order the rows come in
    ax = figure.axes[0]
    rates = [0.001, 0.003, 0.01, 0.03, 0.1]
    assert [line.get_label() for line in ax.lines] == [f"learning_rate={rate}" for rate in rates]
    scale = matplotlib.colormaps["viridis"]
    colours = [to_rgba(line.get_color()) for line in ax.lines]
    assert colours == [pytest.approx(scale(position)) for position in np.linspace(0, 0.75, len(rates))]
    assert all(contrast_on_white(colour) >= 2 for colour in colours)  # no pale yellow end on white
    drawn(figure)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [line.get_label() for line in ax.lines]


def test_series_beyond_the_palette_change_line_style_then_marker():
    import pandas as pd

    from plotwork.series import styles

    table = pd.DataFrame({"a": range(60), "b": [x % 7 for x in range(60)]})
    drawn_as = [(look["color"], look["linestyle"], look["marker"]) for _, look in styles(table)]
    assert len(set(drawn_as)) == 60
    assert all(contrast_on_white(colour) >= 2 for colour, *_ in drawn_as)


# -- best_n -----------------------------------------------------------------------------------------------------

@pytest.mark.processes
@pytest.mark.parametrize("mode, ends", [("min", "lowest"), ("max", "highest")], ids=["min", "max"])
def test_best_n_draws_the_means_of_the_n_best_experiments_in_the_direction_asked(sweep, mode, ends):
    import plotwork
    points = [(rate, ridge, *size) for rate, ridge, size in itertools.product(RATES, RIDGES, SIZES)]

    def mean_final(point):
        params = dict(zip(["learning_rate", "ridge", "samples", "features"], point))
        return np.mean([final_loss(params, rep, 4) for rep in range(2)])

    best = sorted(points, key=mean_final, reverse=mode == "max")[:3]
    figure = plotwork.plot_results(results_of(sweep, "fit"), "best_n", "loss", n=3, mode=mode)
    ax = figure.axes[0]
    assert [line.get_label() for line in ax.lines] == [fit_label(*point) for point in best]  # best first
    finals = [line.get_ydata()[-1] for line in ax.lines]
    assert finals == pytest.approx([mean_final(point) for point in best])  # each line an experiment's mean
    assert ax.get_legend().get_title().get_text() == f"3 of 12 with the {ends} final loss"


# -- param_sweep ------------------------------------------------------------------------------------------------

@pytest.mark.processes
@pytest.mark.parametrize("base, param, xlabel, lines, points, scale", [
    ("fit", None, "learning_rate", 4, 3, "log"),  # the most values; the zipped list makes one line dimension
    ("fit", "samples", "samples (with features)", 6, 2, "linear"),  # a zipped parameter: its partner goes along
    ("fit", "optimizer.learning_rate", "learning_rate", 4, 3, "log"),
    ("rate", None, "learning_rate", 1, 5, "log"),
    ("size", "samples", "samples", 1, 4, "linear"),  # evenly spaced: a linear axis
], ids=["most-values", "zipped", "dotted-name", "log-spaced", "linear"])
def test_param_sweep_puts_the_swept_parameter_on_x(sweep, base, param, xlabel, lines, points, scale):
    import plotwork
    options = {"param": param} if param else {}
    figure = plotwork.plot_results(results_of(sweep, base), "param_sweep", "loss", **options)
    ax = figure.axes[0]
    assert ax.get_xlabel() == xlabel
    assert ax.get_xscale() == scale
    assert len(ax.containers) == lines
    assert {len(bars.lines[0].get_xdata()) for bars in ax.containers} == {points}
    if scale == "log":  # the swept values as tick labels
        values = sorted({x for bars in ax.containers for x in bars.lines[0].get_xdata()})
        assert [tick.get_text() for tick in ax.get_xticklabels()] == [f"{v:g}" for v in values]


@pytest.mark.processes
def test_param_sweep_names_the_parameters_it_can_sweep(sweep):
    import plotwork
    with pytest.raises(ValueError, match=r"no parameter 'nope'; varied: optimizer.learning_rate, ridge"):
        plotwork.plot_results(results_of(sweep, "fit"), "param_sweep", "loss", param="nope")
    with pytest.raises(ValueError, match="takes no option 'n'"):
        plotwork.plot_results(results_of(sweep, "fit"), "param_sweep", "loss", n=3)


# -- print size -------------------------------------------------------------------------------------------------

@pytest.mark.processes
@pytest.mark.parametrize("plotter", ["mean_2std", "best_n", "param_sweep"])
def test_figures_are_of_print_size_with_print_fonts(sweep, plotter):
    import plotwork
    figure = plotwork.plot_results(results_of(sweep, "fit"), plotter, "loss")
    assert tuple(figure.get_size_inches()) == (7, 4.5) and figure.dpi == 200
    ax = figure.axes[0]
    drawn(figure)
    sizes = [label.get_fontsize() for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]]
    assert min(sizes) >= 8 and ax.xaxis.label.get_fontsize() >= 9
    assert min(text.get_fontsize() for text in ax.get_legend().get_texts()) >= 8


def test_a_steered_campaign_draws_no_line_too_pale_for_white_and_a_colour_bar_for_many_points(cli, tmp_path):
    import plotwork
    document = {"name": "search", "repetitions": 1, "iterations": 9, "path": "results", "grid": {"c": list(range(9))},
                "steer": {"policy": "successive_halving", "metric": "loss", "reduction_factor": 3}}
    (tmp_path / "config.yml").write_text(json.dumps(document))  # JSON is YAML
    cli("Steered", "config.yml", cwd=tmp_path, check_rc=0)
    figure = plotwork.plot_results(load_results(tmp_path / "results"), "steered", "loss")
    ax = figure.axes[0]
    survivors = [line for line in ax.lines if len(line.get_xdata()) == 9]
    assert survivors and all(contrast_on_white(line.get_color()) >= 2 for line in ax.lines)
    assert survivors[0].get_linewidth() > min(line.get_linewidth() for line in ax.lines)  # what went on stands out
    figure = plotwork.plot_results(load_results(tmp_path / "results"), "mean_2std", "loss")
    ax, bar = figure.axes  # 9 points along one parameter: a colour bar, not a legend of 9 entries
    assert ax.get_legend() is None and bar.get_ylabel() == "c"
    drawn(figure)
    assert [tick.get_text() for tick in bar.get_yticklabels()] == [str(c) for c in range(9)]
    result = cli("Steered", "config.yml", "--plot", "loss", "--plotter", "best_n", cwd=tmp_path, check_rc=0)
    [path] = result.stdout.split()  # best_n takes the direction of the steer block (min by default)
    assert png_size(tmp_path / path) == (1400, 900)


# -- the command line -------------------------------------------------------------------------------------------

@pytest.mark.processes
def test_plot_passes_options_and_writes_print_size_pngs(sweep):
    result = run_cli("Fit", "config.yml", "-e", "fit", "--plot", "loss", "--plotter", "best_n", "--mode", "min",
                     "--plot-option", "n=2", cwd=sweep, script=SCRIPT, check_rc=0)
    [path] = result.stdout.split()
    assert path.endswith("fit_loss_best_n.png") and png_size(sweep / path) == (1400, 900)
    result = run_cli("Fit", "config.yml", "-e", "rate", "--plot", "loss", "--plotter", "param_sweep",
                     "--plot-option", "param=learning_rate", cwd=sweep, script=SCRIPT, check_rc=0)
    assert png_size(sweep / result.stdout.split()[0]) == (1400, 900)


@pytest.mark.processes
@pytest.mark.parametrize("args, message", [
    (("--plotter", "best_n"), "best_n ranks experiments by their final loss: say which end is best, --mode min or "
                              "--mode max"),
    (("--plotter", "best_n", "--mode", "min", "--plot-option", "mode=max"),
     "--mode min and --plot-option mode=max disagree"),
    (("--plot-option", "n=3"), "plotter mean_2std takes no option 'n'; its options: none"),
    (("--plotter", "param_sweep", "--plot-option", "lr"), "'lr' must look like name=value"),
    (("--plotter", "param_sweep", "--plot-option", "param=nope"), "param_sweep: no parameter 'nope'"),
], ids=["no-direction", "two-directions", "unknown-option", "not-an-assignment", "unknown-param"])
def test_bad_plot_options_are_one_line_exit_2_and_write_nothing(sweep, tmp_path, args, message):
    (tmp_path / "config.yml").write_text(CONFIG.replace("path: results", f"path: {sweep / 'results'}"))
    plots = sweep / "results" / "plots"
    before = {path: path.stat().st_mtime_ns for path in plots.glob("*")}
    result = run_cli("Fit", "config.yml", "-e", "fit", "--plot", "loss", *args, cwd=tmp_path, script=SCRIPT,
                     check_rc=2)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --plot") and message in line, line
    assert {path: path.stat().st_mtime_ns for path in plots.glob("*")} == before


@pytest.mark.processes
def test_help_documents_the_plot_options(sweep):
    text = " ".join(run_cli("Fit", "--help", cwd=sweep, script=SCRIPT, check_rc=0).stdout.split())
    assert "--plot-option NAME=VALUE [NAME=VALUE ...]" in text and "--mode {min,max}" in text
    assert "n=5 (best_n), param=learning_rate (param_sweep)" in text
