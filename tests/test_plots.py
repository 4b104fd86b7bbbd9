"""The figures' layout helper against matplotlib's own tight layout."""

from __future__ import annotations

import io
from collections import Counter

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from tokenshift.queries.plots import _tight_layout  # noqa: E402

RECT = (0, 0.2, 1, 0.93)


def _figure() -> plt.Figure:
    fig, axes = plt.subplots(2, 3, figsize=(9, 5), sharex=True)
    for k, ax in enumerate(axes.flat):
        ax.plot(range(5), [x ** (k % 3) for x in range(5)], "-o", label=f"series {k}")
        ax.set_title(f"panel {k}")
        ax.set_ylabel("a long y label (%)" if k % 3 == 0 else "y")
        ax.set_xticks(range(5), [f"checkpoint-{x}" for x in range(5)], rotation=20)
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center")
    fig.suptitle("title")
    return fig


def _drawn(layout, monkeypatch) -> tuple[tuple, bytes, Counter]:
    calls: Counter = Counter()
    measure = Axes.get_tightbbox

    def counted(self, *args, **kwargs):
        calls[id(self)] += 1
        return measure(self, *args, **kwargs)

    fig = _figure()
    with monkeypatch.context() as m:
        m.setattr(Axes, "get_tightbbox", counted)
        layout(fig)
        assert all("get_tightbbox" not in ax.__dict__ for ax in fig.axes)  # the class's method again
    p = fig.subplotpars
    png = io.BytesIO()
    fig.savefig(png, dpi=60, format="png")
    plt.close(fig)
    return (p.left, p.right, p.bottom, p.top, p.wspace, p.hspace), png.getvalue(), calls


def test_tight_layout_measures_each_axes_once_for_the_same_layout_and_pixels(monkeypatch):
    plain = _drawn(lambda fig: fig.tight_layout(rect=RECT), monkeypatch)
    once = _drawn(lambda fig: _tight_layout(fig, RECT), monkeypatch)
    assert once[0] == plain[0] and once[0][2] > RECT[1]
    assert once[1] == plain[1]
    assert sorted(plain[2].values()) == [2] * 6 and sorted(once[2].values()) == [1] * 6
